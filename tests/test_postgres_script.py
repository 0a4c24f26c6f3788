"""scripts/postgres.sh keeps its promises: loopback only, an unprivileged user, idempotent, stopped by pid."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from tests.conftest import POSTGRES_SCRIPT

pytestmark = pytest.mark.postgresql


def script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(POSTGRES_SCRIPT), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def cluster_dir(postgres) -> Iterator[Path]:  # `postgres`: skipped like the others without PostgreSQL
    """A directory for a second cluster (the session's own is not disturbed); stopped in any case."""
    parent = Path(tempfile.mkdtemp(prefix="fsbarge-pg-test-"))
    parent.chmod(0o755)  # the cluster's user must reach DIR inside it
    directory = parent / "cluster"
    yield directory
    script("stop", str(directory))
    parent.rmdir()


def _listening_ports(pid: int) -> list[tuple[str, int]]:
    """(hex local address, port) of every TCP socket the process listens on (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # state LISTEN
                address, port = fields[1].split(":")
                found.append((address, int(port, 16)))
    return found


def test_start_is_idempotent_loopback_only_unprivileged_and_stop_ends_it_by_pid(cluster_dir: Path) -> None:
    first = script("start", str(cluster_dir))
    assert first.returncode == 0, first.stderr
    url = make_url(first.stdout.strip())
    assert (url.drivername, url.host, url.database) == ("postgresql", "127.0.0.1", "postgres")
    assert url.password and url.port

    again = script("start", str(cluster_dir))
    assert (again.returncode, again.stdout) == (0, first.stdout)  # the same cluster, not a second one
    assert script("url", str(cluster_dir)).stdout == first.stdout
    assert script("status", str(cluster_dir)).returncode == 0

    pid = int((cluster_dir / "data" / "postmaster.pid").read_text().split()[0])
    uid = int(next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:")).split()[1])
    assert uid != 0 and (os.getuid() == 0 or uid == os.getuid())
    assert _listening_ports(pid) == [("0100007F", url.port)]  # 127.0.0.1 only, no IPv6, one port
    engine = create_engine(url.set(drivername="postgresql+psycopg"))
    with engine.connect() as conn:
        assert conn.execute(text("SHOW unix_socket_directories")).scalar() == ""
    engine.dispose()

    stopped = script("stop", str(cluster_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    assert not cluster_dir.exists()
    assert script("status", str(cluster_dir)).returncode == 1
    missing = script("url", str(cluster_dir))
    assert missing.returncode == 1 and missing.stderr == f"postgres.sh: no PostgreSQL running in {cluster_dir}\n"


def test_a_directory_it_did_not_make_is_neither_used_nor_deleted(cluster_dir: Path) -> None:
    cluster_dir.mkdir()
    (cluster_dir / "precious").write_text("keep me")
    refused = script("start", str(cluster_dir))
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("postgres.sh: ") and refused.stderr.count("\n") == 1
    assert script("stop", str(cluster_dir)).returncode == 0
    assert (cluster_dir / "precious").read_text() == "keep me"
    (cluster_dir / "precious").unlink()
    cluster_dir.rmdir()


def test_bad_usage_is_one_line() -> None:
    proc = script("restart")
    assert proc.returncode == 1
    assert proc.stderr == "postgres.sh: usage: postgres.sh start|stop|url|status [DIR]\n"
