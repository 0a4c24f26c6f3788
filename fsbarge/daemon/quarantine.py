"""Audit changes the database will not take, set aside so that nothing behind them waits.

The shipper applies the journal in order; one change the database refuses for a reason retrying
cannot clear (a value the store rejects, a trigger or constraint that aborts it, a record it
names that the database does not have) would otherwise stop every later change behind it, for
good. Such a change is moved here instead, with its error, together with every later change of
the same intervention (never a mode or a close applied on top of a missing open). The daemon
shows them (``fsbarge status``: degraded, "N audit changes quarantined: ..."); once the cause is
fixed, ``fsbarge audit quarantine retry`` applies them, intervention by intervention, in journal
order, and what still fails stays.

The file sits beside the journal (``<journal>.quarantine``), one entry per line in the journal's
own checksummed format, ``{"change": ..., "error": ..., "at": ...}``. The daemon appends to it
and the retry command rewrites it, each under an exclusive ``flock`` of ``<file>.lock``; the
daemon notices a rewrite by the file's identity (inode, size, mtime) and reloads.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from fsbarge.core.changeline import coerce, from_line, to_line
from fsbarge.core.changes import Change, ident
from fsbarge.daemon.journal import decode_line, encode_line

__all__ = ["FOLLOWS", "UNKNOWN_RECORD", "Quarantine", "RetryResult", "describe", "quarantine_path", "read_entries", "retry"]

FOLLOWS = "held with an earlier quarantined change of the same intervention"
UNKNOWN_RECORD = "names a record the database does not have"


def quarantine_path(journal_path: str | Path) -> Path:
    """Beside the journal: ``journal`` -> ``journal.quarantine``."""
    return Path(str(journal_path) + ".quarantine")


def read_entries(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a quarantine file, without locking it (``audit quarantine list``: a reader
    needs no write access; a line being appended right now is simply not shown yet)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    entries = []
    for line in data.split(b"\n"):
        entry = decode_line(line) if line else None
        if entry is not None and isinstance(entry.get("change"), dict):
            entries.append(entry)
    return entries


class Quarantine:
    """The set-aside changes of one journal, as the file holds them."""

    def __init__(
        self, path: str | Path, *, sync: Callable[[int], None] = os.fsync, sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self._sync = sync
        # None: wait for the lock in the kernel (a command); the daemon passes gevent.sleep, so a
        # retry holding the lock for a while never blocks its event loop
        self._sleep = sleep
        self.entries: list[dict[str, Any]] = []
        self._ids: set[str] = set()
        self._uids: set[str] = set()
        self._stamp: tuple[int, int, int] | None = None
        self.refresh()

    # -- reading ----------------------------------------------------------------------------

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:  # no file, or a directory we cannot reach: nothing set aside that we can see
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def refresh(self) -> bool:
        """Reload if another process changed the file (a retry); True when it did."""
        if self._identity() == self._stamp:
            return False
        with self.locked():
            self._load()
        return True

    def _load(self) -> None:
        self._set(read_entries(self.path))
        self._stamp = self._identity()

    def _set(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        changes = [from_line(e["change"]) for e in entries]
        self._ids = {str(ident(c)) for c in changes}
        self._uids = {str(c.uid) for c in changes if c.uid}

    def holds(self, change: Change | Mapping[str, Any]) -> bool:
        """This very change is set aside already."""
        return str(ident(coerce(change))) in self._ids

    def poisoned(self, uid: Any) -> bool:
        """A change of this record is set aside: its later changes must wait with it."""
        return bool(uid) and str(uid) in self._uids

    def summary(self) -> str | None:
        """The health problem's text (None when nothing is set aside)."""
        if not self.entries:
            return None
        count = len(self.entries)
        noun = "change" if count == 1 else "changes"
        first = next((e["error"] for e in self.entries if e.get("error") != FOLLOWS), self.entries[0].get("error"))
        return f"{count} audit {noun} quarantined: {first} (fsbarge audit quarantine list)"

    # -- writing ----------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            if self._sleep is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        self._sleep(0.05)
            yield
        finally:
            os.close(fd)

    def add(self, items: Iterable[tuple[Change | Mapping[str, Any], str]], now: float | None = None) -> list[tuple[Change, str]]:
        """Set changes aside (fsync'd before returning: the journal may drop them next); returns
        the changes added, with their error (a change set aside already is not added twice).
        OSError if the file cannot be written."""
        at = time.time() if now is None else now
        with self.locked():
            if self._identity() != self._stamp:
                self._load()
            new: list[dict[str, Any]] = []
            added: list[tuple[Change, str]] = []
            for given, error in items:
                change = coerce(given)
                change_id = str(ident(change))
                if change_id in self._ids or any(str(ident(c)) == change_id for c, _ in added):
                    continue
                new.append({"change": to_line(change), "error": error, "at": at})  # type: ignore[arg-type]
                added.append((change, error))  # type: ignore[arg-type]
            if not new:
                return []
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            try:
                data = b"".join(encode_line(e) for e in new)
                if os.write(fd, data) != len(data):
                    raise OSError(28, "No space left on device")
                self._sync(fd)
            finally:
                os.close(fd)
            self._set(self.entries + new)
            self._stamp = self._identity()
            return added

    def _rewrite(self, entries: list[dict[str, Any]]) -> None:
        """Replace the file's content (temp file, fsync, rename); the caller holds the lock."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = b"".join(encode_line(e) for e in entries)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            if os.write(fd, data) != len(data):
                raise OSError(28, "No space left on device")
            self._sync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._set(entries)
        self._stamp = self._identity()


def describe(exc: BaseException) -> str:
    """An error as one line: a database error says it all (fsbarge.store.errors.DatabaseError), anything
    else is named by its type (``ValueError: unknown outcome 'x'``)."""
    return str(exc) if hasattr(exc, "transient") else f"{type(exc).__name__}: {exc}"


class RetryResult(NamedTuple):
    applied: int
    remaining: list[dict[str, Any]]
    #: records rebuilt because their opening was lost (see AuditStore.apply)
    rebuilt: list[tuple[str, str, int]]


def retry(quarantine: Quarantine, apply: Callable[[list[Change]], Any], *, is_transient: Callable[[Exception], bool]) -> RetryResult:
    """Apply what is set aside, one record at a time (one transaction each, in journal order);
    what fails again stays, with its new error. ``apply`` is ``AuditStore.apply``; a transient
    database error stops the retry (everything from there stays, to be retried later)."""
    with quarantine.locked():
        quarantine._load()
        groups: dict[str, list[dict[str, Any]]] = {}
        for entry in quarantine.entries:
            change = from_line(entry["change"])
            groups.setdefault(str(change.uid or ident(change)), []).append(entry)
        remaining: list[dict[str, Any]] = []
        rebuilt: list[tuple[str, str, int]] = []
        applied = 0
        stopped = False
        for entries in groups.values():
            if stopped:
                remaining += entries
                continue
            try:
                result = apply([from_line(e["change"]) for e in entries])
            except Exception as exc:  # noqa: BLE001 - said per entry, and the entry stays
                if is_transient(exc):
                    stopped = True
                    remaining += entries
                    continue
                error = describe(exc)
                remaining += [dict(entries[0], error=error), *(dict(e, error=FOLLOWS) for e in entries[1:])]
                continue
            if result.unknown:
                remaining += [dict(e, error=UNKNOWN_RECORD) for e in entries]
                continue
            applied += len(entries)
            rebuilt += result.rebuilt
        quarantine._rewrite(remaining)
    return RetryResult(applied, remaining, rebuilt)
