"""What the daemon cannot fix by itself, said once and shown until it clears.

A failure that needs an operator (a database file the daemon may not write, a journal line the
database refuses, FreeSWITCH gone silent) must be visible without reading logs at 3am, and must
not flood them: each problem is one log line when it starts (or changes), one when it clears,
and stays listed meanwhile in ``fsbarge status`` (exit 1, "degraded", with the reason) and in
the metrics. The daemon reports problems here by key; the heartbeat carries them to the
database (``nodes.problems``) and to a small status file beside the journal, which
``fsbarge status`` on the same host reads when the database itself is the problem.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog

from fsbarge.paths import status_file_path  # noqa: F401 - re-exported for the daemon

__all__ = ["Health", "problems_json", "write_status_file"]

log = structlog.get_logger("fsbarge.health")


class Health:
    """The daemon's current problems by key (``"database"``, ``"shipper"``, ``"node pbx1"``...)."""

    def __init__(self) -> None:
        self._problems: dict[str, str] = {}
        #: how many times a problem was reported new (the metric's counter)
        self.reported_total = 0

    def report(self, key: str, message: str, **fields: Any) -> None:
        """Record a problem; logged once, again only when its message changes."""
        if self._problems.get(key) == message:
            return
        self._problems[key] = message
        self.reported_total += 1
        log.error(message, problem=key, **fields)

    def clear(self, key: str) -> None:
        """The problem went away by itself (or was repaired): one line, and it leaves the status."""
        message = self._problems.pop(key, None)
        if message is not None:
            log.info("problem cleared", problem=key, was=message)

    def clear_prefix(self, prefix: str) -> None:
        for key in [k for k in self._problems if k.startswith(prefix)]:
            self.clear(key)

    def has(self, key: str) -> bool:
        return key in self._problems

    @property
    def keys(self) -> list[str]:
        """The problems' keys, sorted (the metric's labels: stable, unlike messages)."""
        return sorted(self._problems)

    @property
    def problems(self) -> list[str]:
        """The messages, in a stable order (by key)."""
        return [self._problems[k] for k in sorted(self._problems)]


# --------------------------------------------------------------------------- the local status file


def write_status_file(path: Path, doc: dict[str, Any]) -> None:
    """Replace the file atomically (a reader never sees half of it); no fsync: a heartbeat is cheap
    to lose, and this runs every few seconds. Errors are the caller's to swallow."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
    os.replace(tmp, path)


def problems_json(problems: Iterable[str]) -> str:
    """The heartbeat's ``problems`` column: a JSON list ("[]" when healthy, so a cleared problem is written)."""
    return json.dumps(list(problems), ensure_ascii=False)
