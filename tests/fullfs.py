"""A full filesystem under the audit journal, two ways.

``tmpfs``: a tiny tmpfs of the test's own (root only; skipped otherwise), filled with a file until
the kernel says ENOSPC: the full disk exactly as the kernel gives it (short writes included).
``injected``: writes of this process to files in the journal's directory fail with ENOSPC (any
user): the same failure without root, for a machine where the first cannot be mounted.

Either way :meth:`DiskFull.fill` leaves no room for another journal line (the tail page of the
journal's own file included: tmpfs lets a file grow into the free part of its last page), and
:meth:`DiskFull.free` gives the space back.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsbarge.daemon.journal import Journal, encode_line

PAGE = 4096  # tmpfs allocates whole pages: a file grows into its last one without asking for space


class DiskFull:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def fill(self, journal: Journal | None = None, *, leave: int = 0) -> None:
        raise NotImplementedError

    def free(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.free()


def _fill_journal_page(journal: Journal) -> None:
    """One line of padding (a kind the journal keeps but never ships) that fills the free part of
    the journal's last page exactly: then no line fits, and none of the padding failed on the way
    (a failure would be reported, then cleared, as if the disk had been full twice)."""
    with journal._lock:  # noqa: SLF001 - no heartbeat may append between measuring and filling
        room = -journal._size % PAGE  # noqa: SLF001
        if room < 64:
            return  # no journal line is that short: the next one fails already
        seq = journal._next_seq  # noqa: SLF001
        pad = room - len(encode_line({"kind": "padding", "pad": "", "seq": seq}))
        journal.append([{"kind": "padding", "pad": "x" * pad}], sync=False)


class CannotMount(Exception):
    """No tmpfs of our own here (not root, or no mount in this container)."""


class TmpfsFull(DiskFull):
    """A small tmpfs (256 KiB unless told) mounted on ``directory``; CannotMount if it cannot be."""

    def __init__(self, directory: Path, size: str = "256k") -> None:
        super().__init__(directory)
        directory.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(directory)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise CannotMount(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
        self.filler = directory / "filler"

    def fill(self, journal: Journal | None = None, *, leave: int = 0) -> None:
        """No room left (or only ``leave`` bytes: a write larger than that is cut short)."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (65536, 4096, 1):
                try:
                    while os.write(fd, b"\0" * size) == size:
                        pass
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
            if leave:
                os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
        finally:
            os.close(fd)
        if journal is not None:
            _fill_journal_page(journal)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.dir)], capture_output=True)


class InjectedFull(DiskFull):
    """``os.write`` to a file in ``directory`` fails with ENOSPC while full."""

    def __init__(self, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.monkeypatch = monkeypatch
        self.real_write = os.write
        self.full = False
        self.prefix = str(directory.resolve()) + os.sep
        monkeypatch.setattr(os, "write", self.write)

    def write(self, fd: int, data: bytes) -> int:  # type: ignore[override]
        if self.full:
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                target = ""
            if target.startswith(self.prefix):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.real_write(fd, data)

    def fill(self, journal: Journal | None = None, *, leave: int = 0) -> None:
        self.full = True

    def free(self) -> None:
        self.full = False


@pytest.fixture(params=["tmpfs", "injected"])
def disk_full(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DiskFull]:
    """The journal's directory (``disk_full.dir``) on a filesystem the test can fill and free."""
    directory = tmp_path / "journal-fs"
    try:
        disk: DiskFull = TmpfsFull(directory) if request.param == "tmpfs" else InjectedFull(directory, monkeypatch)
    except CannotMount as exc:
        pytest.skip(str(exc))
    try:
        yield disk
    finally:
        disk.close()


@pytest.fixture
def tmpfs_full(tmp_path: Path) -> Iterator[DiskFull]:
    """The real thing only (skipped where a tmpfs cannot be mounted)."""
    try:
        disk = TmpfsFull(tmp_path / "journal-fs")
    except CannotMount as exc:
        pytest.skip(str(exc))
    try:
        yield disk
    finally:
        disk.close()
