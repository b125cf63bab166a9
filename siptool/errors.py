"""The one exception type that reaches the user: its message is printed as one line."""

from .status import ExitStatus


class SiptoolError(Exception):
    """A user-facing error: bad input file, unreachable peer, bad arguments."""

    exit_code = ExitStatus.BAD_INPUT
