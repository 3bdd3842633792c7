"""Command-line tools around a module: ``wizsock term | scan | join | status | ping | info | trace``.

One module per tool, each with ``add_arguments(parser)`` and ``run(args) -> int``
(registered in :mod:`wizsock.cli`); what they share is in :mod:`.common` (module
options, exit codes, tables and ``--json``) and :mod:`.progress` (feedback on a terminal).
"""
