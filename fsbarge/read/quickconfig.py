"""The `[database] url` and `[journal] path` of a configuration file, for read commands, without
fsbarge.config.

Why: importing the configuration module (its validator, dataclasses, difflib) was about a third of
a read command's start-up, and a read command needs one or two keys. A file that is plainly fine
(readable UTF-8 TOML whose [database] table holds only a one-line `url` string and perhaps a
boolean `single_instance`, and whose [journal] holds only a one-line `path`) is answered here; for
anything else these return None and fsbarge.config reads the file, so every mistake is still
reported by it, in its words. tests/test_quickconfig.py checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Mapping

from typing import Any

from fsbarge.paths import DEFAULT_DATABASE_URL, default_journal_path

__all__ = ["database_url", "journal_path"]


def _plain(value: Any) -> str | None:
    """A non-empty one-line string, stripped (None for anything else)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or any(ord(ch) < 0x20 or ch == "\x7f" for ch in value):
        return None
    return value


def _document(path: str) -> dict[str, Any] | None:
    import tomllib

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, ValueError):  # unreadable, not UTF-8 (a BOM included), not TOML
        return None


def database_url(path: str, env: Mapping[str, str], doc: dict[str, Any] | None = None) -> str | None:
    """The file's [database] url (stripped; the default when absent), or None: ask fsbarge.config
    (also whenever $FSBARGE_DATABASE_URL is set at all: it then decides)."""
    if env.get("FSBARGE_DATABASE_URL"):
        return None
    doc = _document(path) if doc is None else doc
    if doc is None:
        return None
    table = doc.get("database", {})
    if not isinstance(table, dict) or not set(table) <= {"url", "single_instance"}:
        return None
    if not isinstance(table.get("single_instance", False), bool):
        return None
    url = _plain(table.get("url", DEFAULT_DATABASE_URL))
    return url if url is not None and "://" in url else None


def journal_path(path: str, env: Mapping[str, str]) -> str | None:
    """The file's [journal] path (default: beside a SQLite database), as the daemon reading this
    file uses it, or None: ask fsbarge.config."""
    doc = _document(path)
    url = database_url(path, env, doc) if doc is not None else None
    if doc is None or url is None:
        return None
    table = doc.get("journal", {})
    if not isinstance(table, dict) or not set(table) <= {"path"}:
        return None
    return _plain(table["path"]) if "path" in table else default_journal_path(url)
