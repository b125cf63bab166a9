"""The one exception type that reaches the user: its message is printed as one line."""


class SiptoolError(Exception):
    """A user-facing error: bad input file, unreachable peer, bad arguments."""

    exit_code = 2
