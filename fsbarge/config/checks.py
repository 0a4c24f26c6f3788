"""The checks every section is made of: a table with only known keys, a one-line string, a boolean,
seconds, a list of extensions or of distinct choices. Each stops at the first problem with a
`ConfigError` naming its key.

Why not a schema library: see the README ("How it is built", config). These few typed checks give
each mistake today's wording, which is what a library's messages would have to be mapped back to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn

from fsbarge.config.errors import ConfigError, show, unknown_key

__all__ = ["CONTROL", "Reader"]

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EXTENSION = re.compile(r"[0-9]+")


class Reader:
    """Reads one document for one file: fails with the file's name, collects its warnings."""

    def __init__(self, path: str, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.warnings: list[str] = []

    def fail(self, key: str, problem: str) -> NoReturn:
        raise ConfigError(self.path, key, problem)

    def warn(self, key: str, problem: str) -> None:
        self.warnings.append(str(ConfigError(self.path, key, problem)))

    def table(self, value: Any, key: str, allowed: tuple[str, ...], header: str) -> dict[str, Any]:
        """``value`` as a table (``header`` is how it is written) whose keys are all ``allowed``."""
        if not isinstance(value, dict):
            self.fail(key, f"must be a table ({header}), got {show(value)}")
        for k in value:
            if k not in allowed:
                self.fail(f"{key}.{k}" if key else k, unknown_key(k, allowed))
        return value

    def section(self, doc: dict[str, Any], name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        """The ``[name]`` table of the document, empty when left out."""
        return self.table(doc.get(name, {}), name, allowed, f"[{name}]")

    def tables(self, value: Any, key: str) -> list[Any]:
        """``value`` as an array of tables (``[[key]]``)."""
        if isinstance(value, dict):
            self.fail(key, f"must be an array of tables: write [[{key}]], not [{key}]")
        if not isinstance(value, list):
            self.fail(key, f"must be an array of tables ([[{key}]]), got {show(value)}")
        return value

    def string(self, value: Any, key: str, *, secret: bool = False) -> str:
        """A string; a ``secret`` one is never shown, not even what else it was."""
        if not isinstance(value, str):
            self.fail(key, "must be a string" if secret else f"must be a string, got {show(value)}")
        return value

    def text(self, table: dict[str, Any], name: str, key: str, default: str | None = None) -> str:
        """A required (when ``default`` is None) non-empty one-line string, stripped."""
        if name not in table:
            if default is None:
                self.fail(key, "missing")
            return default
        value = self.string(table[name], key).strip()
        if not value:
            self.fail(key, "must not be empty")
        if CONTROL.search(value):
            self.fail(key, "must not contain line breaks or control characters")
        return value

    def boolean(self, table: dict[str, Any], name: str, key: str, default: bool) -> bool:
        value = table.get(name, default)
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {show(value)}")
        return value

    def seconds(self, table: dict[str, Any], name: str, key: str, default: float) -> float:
        """A timeout: more than 0, at most an hour (TOML's true is not a number here)."""
        value = table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
            self.fail(key, f"must be a number of seconds greater than 0 (at most 3600), got {show(value)}")
        return float(value)

    def extensions(self, table: dict[str, Any], name: str, key: str, *, required: bool) -> tuple[str, ...]:
        """A list of distinct extensions, each a string of digits."""
        if name not in table:
            if required:
                self.fail(key, 'missing (a list of extensions like ["1000", "1001"])')
            return ()
        value = table[name]
        if not isinstance(value, list):
            self.fail(key, f'must be an array of extensions like ["1000", "1001"], got {show(value)}')
        seen: set[str] = set()
        for i, ext in enumerate(value):
            if not isinstance(ext, str) or not _EXTENSION.fullmatch(ext):
                self.fail(f"{key}[{i}]", f'must be a string of digits like "1000", got {show(ext)}')
            if ext in seen:
                self.fail(f"{key}[{i}]", f'"{ext}" is listed twice')
            seen.add(ext)
        return tuple(value)

    def choices(self, value: list[Any], key: str, allowed: tuple[str, ...], noun: str) -> tuple[str, ...]:
        """A list of distinct ``noun``s (e.g. "mode") out of ``allowed``."""
        for i, item in enumerate(value):
            if item not in allowed:  # also rejects non-strings
                listed = ", ".join(f'"{a}"' for a in allowed)
                self.fail(f"{key}[{i}]", f"unknown {noun} {show(item)}; {noun}s are {listed}")
            if item in value[:i]:
                self.fail(f"{key}[{i}]", f'"{item}" is listed twice')
        return tuple(value)
