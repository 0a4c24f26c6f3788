"""The audit journal: every audit change is fsync'd here before FreeSWITCH is told anything.

The database is brought up to date from this file by :class:`fsbarge.shipper.Shipper`, so a
locked, slow or dead database never delays a supervisor, and a ``kill -9`` at any point loses
nothing that was decided. The journal also holds what the daemon needs to resume without the
database: the interventions still open (with their mode history), each node's last Core-UUID and
last-seen time, and the supervisor channels whose requests were already decided.

Format: one change per line, ``<crc32 hex> <json>\\n``, appended with ``O_APPEND``. A line whose
checksum does not match is skipped with a warning; a torn last line (a crash mid-write) is
dropped and the file truncated to the last whole line. Every change carries a unique ``id`` so
the shipper can apply it twice without effect. Compaction rewrites the file (temp file, fsync,
rename) keeping only what is still needed: changes not yet shipped and the state above.
"""

from __future__ import annotations

import json
import os
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import gevent.lock
import structlog

__all__ = ["Journal", "JournalError"]

log = structlog.get_logger("fsbarge.journal")

REMEMBER_DECIDED = 1000  # supervisor channels whose request is remembered across a restart
# What a change kind means for the open-record state (see Journal._fold).
OPEN, MODE, CLOSE, NODE, DECIDED = "open", "mode", "close", "node", "decided"
# help requests: help_open {uid, node, record: {agent, agent_uuid, customer, requested_at, source,
# reason}}; help_close {uid, outcome, answered_by, answered_at, ended_at, intervention_uid}
HELP_OPEN, HELP_CLOSE = "help_open", "help_close"
SHIPPED_KINDS = (OPEN, MODE, CLOSE, HELP_OPEN, HELP_CLOSE)


class JournalError(Exception):
    """The journal cannot be read or written (disk full, permissions): one line for the operator."""


def _encode(change: Mapping[str, Any]) -> bytes:
    payload = json.dumps(change, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def _decode(line: bytes) -> dict[str, Any] | None:
    """A change from one line (without its newline), or None when the line is damaged."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    payload = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        change = json.loads(payload)
    except ValueError:
        return None
    return change if isinstance(change, dict) and isinstance(change.get("seq"), int) else None


def _describe(exc: OSError, path: Path) -> str:
    return f"cannot write the audit journal {path}: {exc.strerror or exc}"


class Journal:
    """An append-only, checksummed, fsync'd change log plus the state folded from it."""

    def __init__(self, path: str | Path, *, sync: Callable[[int], None] = os.fsync) -> None:
        self.path = Path(path)
        self._sync = sync
        self._entries: list[dict[str, Any]] = []  # every change in the file, in order
        self._shipped = 0  # how many of _entries the database has (a prefix)
        self._next_seq = 1
        self._size = 0
        #: interventions still open, by uid (journal order); the daemon resumes from these
        self.records: dict[str, dict[str, Any]] = {}
        #: per node: the last Core-UUID seen and when events were last processed
        self.nodes: dict[str, dict[str, Any]] = {}
        #: help requests still ringing, by uid
        self.help: dict[str, dict[str, Any]] = {}
        #: supervisor channels whose request was decided (audited), most recent last
        self.decided: deque[str] = deque(maxlen=REMEMBER_DECIDED)
        self.damaged = 0  # lines skipped because their checksum did not match
        # sync may yield (the daemon fsyncs in gevent's threadpool): appends and compaction
        # of several node greenlets must not interleave.
        self._lock = gevent.lock.RLock()
        self._fd = -1
        self._open()

    # -- loading ------------------------------------------------------------

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
            with open(self._fd, "rb", closefd=False) as f:
                data = f.read()
        except OSError as exc:
            raise JournalError(_describe(exc, self.path)) from exc
        good_end = 0
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:  # a torn last line: the crash came mid-write
                log.warning("dropping a torn last line of the audit journal", path=str(self.path), bytes=len(data) - pos)
                break
            change = _decode(data[pos:nl])
            if change is None:
                self.damaged += 1
                log.error("skipping a damaged audit journal line", path=str(self.path), offset=pos)
            else:
                self._remember(change)
            pos = good_end = nl + 1
        if good_end < len(data):
            os.ftruncate(self._fd, good_end)
        self._size = good_end

    def _remember(self, change: dict[str, Any]) -> None:
        self._entries.append(change)
        self._next_seq = max(self._next_seq, change["seq"] + 1)
        self._fold(change)

    def _fold(self, change: Mapping[str, Any]) -> None:
        """Keep the resumable state up to date with one change."""
        kind = change.get("kind")
        if kind == OPEN:
            record = dict(change.get("record") or {})
            if record.get("supervisor_uuid"):
                self.decided.append(record["supervisor_uuid"])
            if record.get("outcome") == "active":
                self.records[change["uid"]] = {**record, "uid": change["uid"], "modes": [], "current_mode": None}
        elif kind == MODE:
            rec = self.records.get(change.get("uid", ""))
            if rec is not None:
                entry = {k: change[k] for k in ("mode", "at", "source", "refused")}
                rec["modes"].append(entry)
                if not change["refused"]:
                    rec["current_mode"] = change["mode"]
        elif kind == CLOSE:
            self.records.pop(change.get("uid", ""), None)
        elif kind == HELP_OPEN:
            self.help[change["uid"]] = {**(change.get("record") or {}), "uid": change["uid"]}
        elif kind == HELP_CLOSE:
            self.help.pop(change.get("uid", ""), None)
        elif kind == NODE:
            self.nodes.setdefault(change["node"], {}).update(
                {k: v for k, v in change.items() if k in ("core_uuid", "last_seen") and v is not None}
            )
        elif kind == DECIDED:
            self.decided.extend(u for u in change.get("uuids", []) if u not in self.decided)

    # -- appending ------------------------------------------------------------

    def append(self, changes: Iterable[Mapping[str, Any]], *, sync: bool = True) -> None:
        """Append changes (seq numbers assigned here) and, by default, fsync before returning.

        On failure nothing is kept: the file is cut back to where it was, the state is not
        changed, and JournalError says why.
        """
        with self._lock:
            self._append(changes, sync)

    def _append(self, changes: Iterable[Mapping[str, Any]], sync: bool) -> None:
        batch = [{**c, "seq": self._next_seq + i} for i, c in enumerate(changes)]
        if not batch:
            return
        data = b"".join(_encode(c) for c in batch)
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(28, "short write (disk full?)")
            if sync:
                self._sync(self._fd)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            raise JournalError(_describe(exc, self.path)) from exc
        self._size += len(data)
        for change in batch:
            self._remember(change)

    # -- shipping -------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Audit changes not yet in the database."""
        return sum(1 for c in self._entries[self._shipped :] if c.get("kind") in SHIPPED_KINDS)

    def unshipped(self, limit: int = 500) -> list[dict[str, Any]]:
        """The next entries for the shipper, oldest first (it applies the audit kinds only)."""
        return self._entries[self._shipped : self._shipped + limit]

    def shipped(self, count: int) -> None:
        """The database now has the first ``count`` entries :meth:`unshipped` returned (appends
        only add at the end, and only the shipper compacts, so positions are stable between)."""
        self._shipped = min(len(self._entries), self._shipped + count)

    def droppable(self) -> int:
        """How many lines compaction would remove now (the summaries it rewrites do not count)."""
        return sum(1 for c in self._entries if not c.get("summary")) - len(self._kept())

    def _kept(self) -> list[dict[str, Any]]:
        """The changes the file must still hold: unshipped audit changes and the changes of the
        interventions still open (node and decided state is rewritten as summaries)."""
        kept = []
        for i, c in enumerate(self._entries):
            kind = c.get("kind")
            if kind not in SHIPPED_KINDS:
                continue
            if i >= self._shipped or c.get("uid") in self.records or c.get("uid") in self.help:
                kept.append(c)
        return kept

    def _summaries(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.decided:
            out.append({"kind": DECIDED, "uuids": list(self.decided), "summary": True})
        for node, state in self.nodes.items():
            out.append({"kind": NODE, "node": node, **state, "summary": True})
        return out

    def compact(self) -> int:
        """Rewrite the file with only what is still needed; returns the lines removed."""
        with self._lock:
            return self._compact()

    def _compact(self) -> int:
        if self.droppable() <= 0:
            return 0
        kept = self._kept()
        summaries = [{**c, "seq": self._next_seq + i} for i, c in enumerate(self._summaries())]
        shipped_ids = {id(c) for c in self._entries[: self._shipped]}
        lines = summaries + kept
        data = b"".join(_encode(c) for c in lines)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            try:
                os.write(fd, data)
                self._sync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                self._sync(dir_fd)
            finally:
                os.close(dir_fd)
            new_fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        except OSError as exc:
            log.warning("could not compact the audit journal; it keeps growing", error=_describe(exc, self.path))
            return 0
        removed = len(self._entries) - len(lines)
        os.close(self._fd)
        self._fd = new_fd
        self._size = len(data)
        self._next_seq += len(summaries)
        self._entries = lines
        # Kept changes of open records that were shipped come before the unshipped ones (journal
        # order), so "a prefix is shipped" still holds: summaries + shipped kept changes.
        self._shipped = len(summaries) + sum(1 for c in kept if id(c) in shipped_ids)
        return removed

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
