"""The one rule every parser uses for a number in text: ASCII digits only, and not too many.

`str.isdigit()` accepts '²' and '①', which `int()` then refuses, and `int()` refuses more than
4,300 digits: both turned malformed input into tracebacks. A field that breaks the rule is None,
which each parser reports as its own error or problem."""

from __future__ import annotations

import re

_ASCII = re.compile(r"[0-9]{1,20}")
_ASCII_B = re.compile(rb"[0-9]{1,20}")


def uint(text: str | bytes | None, max_digits: int = 10, maximum: int | None = None) -> int | None:
    """The value of `text` (surrounding blanks allowed) if it is 1..max_digits ASCII digits and, when
    given, at most `maximum`; else None."""
    if text is None:
        return None
    text = text.strip()
    if not text or len(text) > max_digits:
        return None
    if not (_ASCII_B if isinstance(text, bytes) else _ASCII).fullmatch(text):
        return None
    value = int(text)
    return None if maximum is not None and value > maximum else value


def port(text: str | bytes | None) -> int | None:
    """A UDP/TCP port 0-65535."""
    return uint(text, 5, 65535)
