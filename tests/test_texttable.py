"""fsbarge.read.texttable draws a table exactly as tabulate does: generated tables of the kinds fsbarge
prints (and of kinds it hands back to tabulate) compared character for character."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tabulate import tabulate as reference

from fsbarge.read import texttable

# cells like fsbarge's (extensions, uuids, times, "-", empty, None, ints) and the awkward ones the
# fast path must hand to tabulate (numbers that are not plain integers, padding, newlines, non-ASCII)
CELLS = st.one_of(
    st.none(),
    st.just(""),
    st.sampled_from(["1000", "0044", "-", "ringing", "2026-11-22T10:00:00.123Z", "sofia/internal/1000@x", "True", "1.5", "1e3",
                     "1,000", "-3", " pad", "two\nlines", "caf\u00e9", "\x1b[31mred\x1b[0m", "nan", "inf", "1_000"]),
    st.integers(min_value=-5, max_value=10**6),
    st.booleans(),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12),
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[list[object]], list[str]]:
    ncols = draw(st.integers(min_value=1, max_value=5))
    rows = draw(st.lists(st.lists(CELLS, min_size=ncols, max_size=ncols), min_size=1, max_size=6))
    headers = draw(st.lists(st.sampled_from(["id", "node", "agent", "requested_at (UTC)", "x", "mode since"]), min_size=ncols, max_size=ncols))
    return rows, headers


@settings(max_examples=400, deadline=None)
@given(tables(), st.booleans())
def test_a_table_with_headers_is_tabulates(table, numparse: bool) -> None:
    rows, headers = table
    assert texttable.tabulate(rows, headers=headers, disable_numparse=not numparse) == reference(
        rows, headers=headers, disable_numparse=not numparse)


@settings(max_examples=200, deadline=None)
@given(tables())
def test_a_plain_table_is_tabulates(table) -> None:
    rows, _ = table
    assert texttable.tabulate(rows, tablefmt="plain", disable_numparse=True) == reference(rows, tablefmt="plain", disable_numparse=True)


def numeric(text: str) -> bool:
    """What tabulate could read as a number or a flag (the fast path hands those back to it)."""
    try:
        float(text.replace(",", ""))
    except ValueError:
        return text in ("True", "False")
    return True


FAST_CELLS = st.one_of(
    st.none(), st.just(""), st.sampled_from(["1000", "0044", "-", "ringing", "2026-11-22T10:00:00.123Z", "a b"]),
    st.integers(min_value=0, max_value=10**6),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12).filter(lambda t: not numeric(t)),
)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=5).flatmap(
    lambda n: st.lists(st.lists(FAST_CELLS, min_size=n, max_size=n), min_size=1, max_size=6)), st.booleans())
def test_the_fast_path_itself_draws_what_tabulate_draws(rows, numparse: bool) -> None:
    headers = [f"h{i}" for i in range(len(rows[0]))]
    assert texttable._fast(rows, headers, "simple", numparse) == reference(rows, headers=headers, disable_numparse=not numparse)
    assert texttable._fast(rows, [], "plain", numparse) == reference(rows, tablefmt="plain", disable_numparse=not numparse)


def test_the_usual_tables_are_drawn_without_importing_tabulate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the module: an audit list page of ASCII cells never imports tabulate; a cell
    it cannot draw exactly does."""
    monkeypatch.delitem(sys.modules, "tabulate", raising=False)
    texttable.tabulate([[4, "2026-11-22T10:00:00.123Z", None, "1002"]], headers=["id", "started", "ended", "agent"], disable_numparse=True)
    assert "tabulate" not in sys.modules
    texttable.tabulate([["two\nlines"]], headers=["x"])
    assert "tabulate" in sys.modules
