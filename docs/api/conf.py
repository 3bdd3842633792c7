"""Sphinx configuration of the wizsock API reference (docs/api).

Built strictly in CI (scripts/test): ``sphinx-build -W --keep-going -n -b html
docs/api docs/api/_build``.  The build is offline (the machines that build it have
no route to docs.python.org), so there is no intersphinx; references to other
projects' types are listed in ``nitpick_ignore_regex`` instead of failing.
"""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

project = "wizsock"
author = "wizsock contributors"
copyright = "wizsock contributors"

# The docstrings are reStructuredText prose (no Google/NumPy sections), so no
# napoleon: it would read a property's "Read-only view: ..." as a type.
extensions = [
    "sphinx.ext.autodoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}   # members: listed in each page
autodoc_inherit_docstrings = False   # trio's/socket's own docstrings belong to their docs

# Names from the standard library and other projects (no intersphinx offline), and the
# engine's internal classes that public signatures mention.
nitpick_ignore_regex = [
    (r"py:.*", r"(trio|serial|socket|ssl|_socket|_ssl|asyncio|threading|os|typing|collections"
               r"|contextlib|types|enum|dataclasses|pathlib|argparse|logging|pytest|_pytest"
               r"|paho|ipaddress)(\..*)?"),
    (r"py:class", r"(Mark|Config|FixtureRequest|Stream|Nursery|Awaitable|Callable|Iterator"
                  r"|NoReturn|PathLike|Path|Any|AbstractAsyncContextManager|AsyncIterator)"),
    # annotations written as strings (the plugin imports wizsock's parts on use)
    (r"py:class", r"'(Emulator|Module)'"),
    (r"py:mod", r"wizsock\._\w+"),
    (r"py:class", r"(wizsock\.engine\.core\.)?Engine(\..*)?"),
    (r"py:class", r"wizsock\.engine\.api\._Group"),
    (r"py:class", r"Faults"),       # the emulator's fault injector, an argument of Emulator
    (r"py:class", r"'?TimingProfile'?"),   # the emulator's timing profile, likewise
    # the session's link states, in the signature of Link.state_changed (the sans-I/O
    # session is documented in docs/design.md, not in the API reference)
    (r"py:class", r"wizsock\.engine\.session\.\w+"),
    (r"py:class", r"Form|wizsock\.protocol\.grammar\.Sig"),      # the codec table's internals
    # the facade's annotations as written (autodoc shows them unevaluated where one names a
    # type imported for the checker only): module aliases, typing_extensions.Buffer, and the
    # type aliases of wizsock.socket / wizsock.ssl
    (r"py:class", r"(_stdsocket|_wsocket|_stdssl)\..*"),
    (r"py:class", r"Buffer|Self|FilePath|RoutePolicy|Address|AddrInfo"),
    # the record TypeVar of parse_response(expect=...): autodoc cannot link a TypeVar
    (r"py:class", r"wizsock\.protocol(\.grammar)?\.T"),
    (r"py:class", r"wizsock\.(engine|facade)\.\w+\._T"),   # Module.run's result TypeVar, likewise
]

html_theme = "alabaster"
html_static_path = []
html_title = "wizsock API reference"
