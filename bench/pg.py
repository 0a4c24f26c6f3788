"""PostgreSQL for the benchmark: the project's throwaway cluster (scripts/postgres.sh), one fresh
database per measurement, dropped afterwards."""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.ingest import ROOT
from fsbarge.store.engine import parse_url

SCRIPT = ROOT / "scripts" / "postgres.sh"


@contextmanager
def cluster() -> Iterator[tuple[str | None, str]]:
    """(superuser URL, "") of a running cluster, or (None, the script's one-line reason).
    A cluster this started is stopped afterwards; one already running is left alone."""
    directory = str(Path(tempfile.gettempdir()) / "fsbarge-pg-bench")
    running = subprocess.run([str(SCRIPT), "status", directory], capture_output=True).returncode == 0
    out = subprocess.run([str(SCRIPT), "start", directory], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        yield None, (out.stderr.strip().splitlines() or ["postgres.sh failed"])[-1]
        return
    try:
        yield out.stdout.strip().splitlines()[-1], ""
    finally:
        if not running:
            subprocess.run([str(SCRIPT), "stop", directory], capture_output=True, timeout=120)


@contextmanager
def database(admin_url: str) -> Iterator[str]:
    """A fresh, empty database on the cluster; its URL."""
    name = "bench_" + uuid.uuid4().hex[:12]
    admin = create_engine(parse_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield parse_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
