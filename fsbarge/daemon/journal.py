"""The audit journal: every audit change is fsync'd here before FreeSWITCH is told anything.

The line format is fsbarge.core.journalline's, the state folded from the changes fsbarge.core.journalstate's.

The database is brought up to date from this file by :class:`fsbarge.daemon.shipper.Shipper`, so a
locked, slow or dead database never delays a supervisor, and a ``kill -9`` at any point loses
nothing that was decided. The journal also holds what the daemon needs to resume without the
database: the interventions still open (with their mode history), each node's last Core-UUID and
last-seen time, and the supervisor channels whose requests were already decided.

Format: one change per line, ``<crc32 hex> <json>\\n``, appended with ``O_APPEND``. A torn last
line (a crash mid-write) is dropped and the file truncated to the last whole line. A line whose
checksum does not match, or that lacks what its kind needs (a uid, a kind...), is never trusted:
it becomes a ``damaged`` note in its place (its position and bytes), which the shipper writes into
the audit's hash chain, so the loss is on record for good (``fsbarge audit verify``). Every
change carries a unique ``id`` so the shipper can apply it twice without effect. Compaction
rewrites the file (temp file, fsync, rename) keeping only what is still needed: changes not yet
shipped and the state above.

When the file cannot be written (disk full), a change that cannot be undone (a close: the call
did end; a refused key; a refusal) is *held* in memory (bounded) with its real time and written
before anything else as soon as the file takes writes again (the heartbeat tries every few
seconds); the problem is reported once to the daemon's health, not logged per attempt.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import gevent.lock
import structlog

from fsbarge.core.changeline import coerce, from_line, malformed
from fsbarge.core.changes import SHIPPED, Change, Damaged, Decided, NodeSeen, with_seq
from fsbarge.daemon.health import Health
from fsbarge.core.journalline import decode_line, encode_line  # noqa: F401 - importable from here (quarantine, tests)
from fsbarge.core.journalline import damage_note as _damage_note
from fsbarge.core.journalline import decode as _decode  # noqa: F401 - tests' fault injection reads lines with it
from fsbarge.core.journalline import encode as _encode
from fsbarge.core.journalstate import Resumable, lost_opens

__all__ = ["Journal", "JournalError", "decode_line", "encode_line"]

log = structlog.get_logger("fsbarge.journal")

MAX_HELD = 10000  # changes held in memory while the file cannot be written (about 3 MB)


class JournalError(Exception):
    """The journal cannot be read or written (disk full, permissions): one line for the operator."""


def _describe(exc: OSError, path: Path) -> str:
    return f"cannot write the audit journal {path}: {exc.strerror or exc}"


class Journal:
    """An append-only, checksummed, fsync'd change log plus the state folded from it."""

    def __init__(
        self, path: str | Path, *, sync: Callable[[int], None] = os.fsync, health: Health | None = None,
        max_held: int = MAX_HELD,
    ) -> None:
        self.path = Path(path)
        self._sync = sync
        #: where a file that cannot be written or compacted is reported (once, not per attempt)
        self.health = health or Health()
        self.max_held = max_held
        self._held: list[Change] = []  # changes not written yet (the file refused them)
        self.held_lost = 0  # changes dropped because max_held were already held
        self.compact_failing = False
        self._entries: list[Change] = []  # every change in the file, in order
        self._shipped = 0  # how many of _entries the database has (a prefix)
        self._next_seq = 1
        self._size = 0
        #: what the daemon resumes from, folded from every change (fsbarge.core.journalstate)
        self.state = Resumable()
        self.records, self.nodes, self.help, self.decided = self.state.records, self.state.nodes, self.state.help, self.state.decided
        #: notes standing for the lines found damaged or malformed when the file was opened
        self.damage: list[Damaged] = []
        #: interventions whose open was damaged while they ran (journalstate.lost_opens)
        self.lost_opens: list[dict[str, Any]] = []
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
            line = decode_line(data[pos:nl])
            why = "checksum mismatch" if line is None else malformed(line)
            if why is not None:
                note = _damage_note(self.path, pos, data[pos:nl], why if line is None else "malformed: " + why)
                self.damage.append(note)
                self._entries.append(note)  # shipped in its place: the chain records the loss
                log.error(
                    "skipping a damaged audit journal line; what it held is lost (the audit chain records it)",
                    path=str(self.path), offset=pos, bytes=nl - pos, why=note.why,
                )
            else:
                assert line is not None
                self._remember(from_line(line))
            pos = good_end = nl + 1
        if self.damage:
            self.lost_opens = lost_opens(self._entries)
        if good_end < len(data):
            try:
                os.ftruncate(self._fd, good_end)
            except OSError as exc:
                raise JournalError(_describe(exc, self.path)) from exc
        self._size = good_end

    @property
    def damaged(self) -> int:
        """Lines skipped because they could not be trusted."""
        return len(self.damage)

    def _remember(self, change: Change, *, fold: bool = True) -> None:
        self._entries.append(change)
        self._next_seq = max(self._next_seq, change.seq + 1)
        if fold:
            self.state.fold(change)

    # -- appending ------------------------------------------------------------

    def append(self, changes: Iterable[Change | Mapping[str, Any]], *, sync: bool = True) -> None:
        """Append changes (seq numbers assigned here) and, by default, fsync before returning.

        Changes held while the file could not be written go first (and make this append fsync'd),
        so they keep their place before anything decided after them. On failure none of
        ``changes`` is kept: the file is cut back to where it was, the state is not changed, the
        problem is reported to health (once) and JournalError says why. ``append([])`` only
        retries what is held.
        """
        with self._lock:
            self._append(changes, sync)

    def _append(self, changes: Iterable[Change | Mapping[str, Any]], sync: bool) -> None:
        held = len(self._held)
        batch = [with_seq(coerce(c), self._next_seq + i) for i, c in enumerate([*self._held, *changes])]  # type: ignore[arg-type]
        if not batch:
            return
        data = b"".join(_encode(c) for c in batch)
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(28, "No space left on device")
            if sync or held:
                self._sync(self._fd)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            error = _describe(exc, self.path)
            self.health.report(
                "journal", error + "; new interventions are refused, changes that cannot be undone are held in "
                "memory until it can be written", path=str(self.path),
            )
            raise JournalError(error) from exc
        self._size += len(data)
        for i, change in enumerate(batch):
            self._remember(change, fold=i >= held)  # held changes were folded when they were held
        if held:
            self._held = []
            log.info("the audit journal takes writes again; held changes written", held=held, path=str(self.path))
        self.health.clear("journal")

    def hold(self, changes: Iterable[Change | Mapping[str, Any]]) -> int:
        """Keep changes the file refused but that stand (a close: the call did end) until it takes
        writes again; the daemon's state follows them at once (a closed record is not re-attached).
        Returns how many could not be kept (``max_held`` already held): those are lost, and said."""
        with self._lock:
            lost = 0
            for change in changes:
                if len(self._held) >= self.max_held:
                    lost += 1
                    continue
                typed = coerce(change)
                self._held.append(typed)  # type: ignore[arg-type]
                self.state.fold(typed)  # type: ignore[arg-type]
            if lost:
                self.held_lost += lost
                self.health.report(
                    "journal lost", f"{self.held_lost} audit {'change' if self.held_lost == 1 else 'changes'} lost: "
                    "the audit journal could not be written and "
                    f"{self.max_held} were already held in memory", path=str(self.path),
                )
            return lost

    @property
    def held(self) -> int:
        """Changes waiting in memory for the file to take writes again."""
        return len(self._held)

    # -- shipping -------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Audit changes not yet in the database (those held in memory included)."""
        return sum(1 for c in self._entries[self._shipped :] if isinstance(c, SHIPPED)) + len(self._held)

    def unshipped(self, limit: int = 500) -> list[Change]:
        """The next entries for the shipper, oldest first (it applies the audit kinds only)."""
        return self._entries[self._shipped : self._shipped + limit]

    def shipped(self, count: int) -> None:
        """The database now has the first ``count`` entries :meth:`unshipped` returned (appends
        only add at the end, and only the shipper compacts, so positions are stable between)."""
        self._shipped = min(len(self._entries), self._shipped + count)

    def droppable(self) -> int:
        """How many lines compaction would remove now (the summaries it rewrites do not count)."""
        return sum(1 for c in self._entries if not (isinstance(c, NodeSeen | Decided) and c.summary)) - len(self._kept())

    def _kept(self) -> list[Change]:
        """The changes the file must still hold: unshipped audit changes and the changes of the
        interventions still open (node and decided state is rewritten as summaries)."""
        kept = []
        for i, c in enumerate(self._entries):
            if not isinstance(c, SHIPPED):
                continue
            if i >= self._shipped or c.uid in self.records or c.uid in self.help:
                kept.append(c)
        return kept

    def _summaries(self) -> list[Change]:
        out: list[Change] = []
        if self.decided:
            out.append(Decided(uuids=tuple(self.decided), summary=True))
        for node, state in self.nodes.items():
            out.append(NodeSeen(node=node, core_uuid=state.get("core_uuid"), last_seen=state.get("last_seen"), summary=True))
        return out

    def compact(self) -> int:
        """Rewrite the file with only what is still needed; returns the lines removed."""
        with self._lock:
            return self._compact()

    def _compact(self) -> int:
        if self.droppable() <= 0:
            return 0
        if self._held:  # they go first (the state already counts them): no rewrite before they are on disk
            try:
                self._append([], True)
            except JournalError:
                return 0
        kept = self._kept()
        summaries = [with_seq(c, self._next_seq + i) for i, c in enumerate(self._summaries())]
        shipped_ids = {id(c) for c in self._entries[: self._shipped]}
        lines = summaries + kept
        data = b"".join(_encode(c) for c in lines)
        tmp = self.path.with_name(self.path.name + ".tmp")
        new_fd = -1
        try:
            # opened for appending before the rename: once renamed it *is* the journal, whatever follows
            new_fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o640)
            # a full disk writes what fits and says so only by the count: never rename half a journal
            if os.write(new_fd, data) != len(data):
                raise OSError(28, "No space left on device")
            self._sync(new_fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            if new_fd >= 0:
                os.close(new_fd)
            try:
                tmp.unlink(missing_ok=True)  # a half-written copy must not keep the space
            except OSError:
                pass
            self.compact_failing = True
            self.health.report(
                "journal compaction", "could not compact the audit journal; it keeps growing: " + _describe(exc, self.path),
                path=str(self.path),
            )
            return 0
        try:  # the rename made durable; if not, a crash brings the old, longer file back: nothing lost
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                self._sync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass
        if self.compact_failing:
            self.compact_failing = False
            self.health.clear("journal compaction")
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
