"""Text safe to show, write and log: names that are not valid UTF-8, and one-line error reasons."""

from __future__ import annotations

import re

BYTES_LITERAL = re.compile(r"b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\"")


def printable(text: str) -> str:
    """`text` with every byte that is not valid UTF-8 (a file name's surrogate escape) written as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def describe(error: BaseException) -> str:
    """"ClassName: first line of the message", or the class name alone when the message is empty."""
    text = first_line(error)
    name = error.__class__.__name__
    return f"{name}: {text}" if text != name else name


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an error's message, without the raw bytes some libraries quote
    (they may be a patient's data), at most `limit` characters; the error's class name when empty."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = without_bytes(lines[0]) if lines else error.__class__.__name__
    return text[:limit]


def without_bytes(text: str) -> str:
    """`text` printable, with every quoted bytes literal (b'...') replaced by <bytes>."""
    return BYTES_LITERAL.sub("<bytes>", printable(text))


def unicode_key(text: str) -> str:
    """`text` unchanged when it is valid Unicode, else its ascii() form: a key that survives Qt's
    strings (which replace lone surrogates) and never equals another path's key."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return ascii(text)
    return text
