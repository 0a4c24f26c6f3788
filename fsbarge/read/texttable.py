"""Text tables exactly as tabulate draws them, for the common case, without importing tabulate.

Why: tabulate 0.10 reads its own version with importlib.metadata when imported, and that import
(email, zipfile, csv, ...) was a third of a read command's start-up once SQLAlchemy was gone. The
tables fsbarge prints are simple: one-line cells of printable ASCII, strings and whole numbers.
Those are drawn here; anything else (a newline, an escape code, a non-ASCII or padded cell, a
number that is not a plain non-negative integer, a format other than "simple" with headers or
"plain" without) is handed to tabulate itself, so the output is always tabulate's.
tests/test_texttable.py compares the two on generated tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["tabulate"]

_PRINTABLE = frozenset(map(chr, range(0x20, 0x7F)))
_DIGITS = frozenset("0123456789")
_NONE, _INT, _STR = 0, 2, 5  # tabulate's order of generality (bool 1 counts as a string column here)


class _Fallback(Exception):
    """A table the fast path does not draw exactly as tabulate would."""


def _cell(value: Any, numparse: bool) -> tuple[str, int]:
    """(the text, its kind) of one cell, as tabulate formats and classifies it."""
    if value is None:
        return "", _NONE
    if isinstance(value, bool):
        if numparse:
            raise _Fallback
        return str(value), _STR
    if isinstance(value, int):
        if numparse and value < 0:
            raise _Fallback
        return str(value), (_INT if numparse else _STR)
    if not isinstance(value, str):
        raise _Fallback
    if not value:
        return "", _NONE
    if not _PRINTABLE.issuperset(value) or value[0] == " " or value[-1] == " ":
        raise _Fallback
    if numparse:
        if _DIGITS.issuperset(value):
            return value, _INT
        if value in ("True", "False"):
            raise _Fallback
        try:
            float(value.replace(",", ""))
        except ValueError:
            return value, _STR
        raise _Fallback
    return value, _STR


def _fast(rows: Sequence[Sequence[Any]], headers: Sequence[str], tablefmt: str, numparse: bool) -> str:
    if tablefmt not in ("simple", "plain") or (tablefmt == "simple") != bool(headers) or not rows:
        raise _Fallback
    ncols = len(headers) if headers else len(rows[0])
    if any(len(r) != ncols for r in rows):
        raise _Fallback
    cells = [[_cell(v, numparse) for v in r] for r in rows]
    head = [str(h) for h in headers]
    if any(not _PRINTABLE.issuperset(h) or h != h.strip() for h in head):
        raise _Fallback
    right = [max((c[i][1] for c in cells), default=_NONE) == _INT for i in range(ncols)]
    widths = [max(max(len(c[i][0]) for c in cells), len(head[i]) + 2 if head else 0) for i in range(ncols)]

    def line(texts: Sequence[str]) -> str:
        return "  ".join(t.rjust(w) if r else t.ljust(w) for t, w, r in zip(texts, widths, right)).rstrip()

    out = [line(head), "  ".join("-" * w for w in widths)] if head else []
    out += [line([c[0] for c in r]) for r in cells]
    return "\n".join(out)


def tabulate(
    rows: Sequence[Sequence[Any]], headers: Sequence[str] = (), tablefmt: str = "simple", disable_numparse: bool = False
) -> str:
    """tabulate.tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=...)."""
    rows = [list(r) for r in rows]
    try:
        return _fast(rows, list(headers), tablefmt, not disable_numparse)
    except _Fallback:
        from tabulate import tabulate as drawn

        return drawn(rows, headers=list(headers), tablefmt=tablefmt, disable_numparse=disable_numparse)
