"""The tools' exit codes and the one exception a tool raises to end with one of them.

Apart from :mod:`wizsock.tools.common` so that the error reporter
(:mod:`wizsock.tools.explain`), which common itself uses, needs nothing of common.
"""
from __future__ import annotations

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_NO_MODULE", "EXIT_JOIN", "EXIT_OFFLINE",
           "EXIT_UNREACHABLE", "EXIT_INTERRUPTED", "ToolError"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_MODULE = 3
EXIT_JOIN = 4
EXIT_OFFLINE = 5
EXIT_UNREACHABLE = 6
EXIT_INTERRUPTED = 130


class ToolError(Exception):
    """A failure the tool reports as one line on stderr, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code
