"""Every exit code siptool uses, in one place (listed in the README)."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """What a CI job can branch on."""

    OK = 0  # analysed / call passed / every check passed
    FAILED = 1  # a --fail-on finding, a failed call or check, a dead trunk
    BAD_INPUT = 2  # bad arguments, unreadable capture, bad suite
    INTERNAL = 3  # a bug in siptool (one line; SIPTOOL_DEBUG=1 shows the traceback)
    INTERRUPTED = 130  # Ctrl-C
