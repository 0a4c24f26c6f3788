"""One instance per journal and SQLite file: an exclusive flock beside each, held for the daemon's
lifetime. Kept apart from the composition root: what the lock means (and the one-line conflict an
operator reads at start) is a role of its own."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from fsbarge.daemon.health import Health
from fsbarge.daemon.offload import PERMANENT_WAIT

__all__ = ["InstanceConflict", "InstanceLock", "InstanceLocks"]


class InstanceConflict(Exception):
    """Another fsbarge instance already uses this journal or SQLite database: one line, at start."""


class InstanceLock:
    """An exclusive flock on ``<path>.lock`` for the daemon's lifetime (released by the kernel when
    the process dies, however it dies)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(str(path) + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 64, 0).decode("ascii", "replace").strip() or "?"
            os.close(self.fd)
            raise InstanceConflict(
                f"another fsbarge instance (pid {holder}) is already using {path}; only one instance may use a SQLite "
                "database or an audit journal (run several instances on PostgreSQL, each with its own [journal] path)"
            ) from None
        try:  # the pid is for the message above only: a full disk must not stop the start
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        except OSError:
            pass

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class InstanceLocks:
    """The locks beside the journal and the SQLite file. A disk that refuses one (read-only, wrong
    owner) does not stop the start: it is reported and taken once the disk lets us. Another
    instance holding one does (InstanceConflict)."""

    def __init__(self, paths: list[Path], health: Health) -> None:
        self.paths = paths
        self.held: dict[Path, InstanceLock] = {}
        self._health = health

    def take(self, path: Path) -> bool:
        """Take the instance lock beside ``path`` if not held yet; False (reported) when the disk
        refuses it. InstanceConflict when another instance holds it."""
        if path in self.held:
            return True
        try:
            self.held[path] = InstanceLock(path)
        except OSError as exc:
            self._health.report(
                f"lock {path}",
                f"cannot take the instance lock {path}.lock: {exc.strerror or exc}; retrying every {PERMANENT_WAIT:g}s",
            )
            return False
        self._health.clear(f"lock {path}")
        return True

    def take_all(self) -> None:
        for path in self.paths:
            self.take(path)

    @property
    def complete(self) -> bool:
        return len(self.held) == len(self.paths)

    def release(self) -> None:
        for lock in self.held.values():
            lock.release()
