"""The benchmark runs end to end on tiny sizes, so `make bench` cannot rot (targets are checked by `make bench`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.captures import captures  # noqa: F401  (fixture: the benchmark's stream is built from them)
from tests.conftest import PostgresCluster
from tests.e2e import ROOT


def _smoke(postgres: str, captures: Path) -> str:  # noqa: F811
    out = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--postgres", postgres],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ, FSBARGE_CAPTURES=str(captures)),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_bench_smoke_prints_every_measure(captures: Path) -> None:  # noqa: F811
    text = _smoke("off", captures)
    for measure in (
        "ingest: greenswitch InboundESL",
        "ingest: fsbarge",
        "ingest ratio fsbarge / greenswitch",
        "mirror lag p99",
        "barge latency p99",
        "barge latency p99 while the database is locked",
        "peak RSS with 200 live channels",
        "resync of 200 channels",
        "per-event cost with 200 live channels",
        "2 nodes x 100 live channels, one daemon: ingest",
        "2 nodes x 100 live channels, one daemon: peak RSS",
        "2 nodes x 100 live channels, one daemon: resync after all reconnect at once",
        "audit changes/s into SQLite (journal shipper batches), with the hash chain",
        "audit verify of 1,000 changes",
    ):
        assert measure in text, f"{measure!r} missing from:\n{text}"
    ratio = float(re.search(r"ingest ratio fsbarge / greenswitch\s*\|\s*([\d.]+)x", text).group(1))
    assert ratio > 0
    # every latency row got real samples (not nan)
    assert "nan" not in text


@pytest.mark.postgresql
def test_bench_smoke_measures_postgresql(postgres: PostgresCluster, captures: Path) -> None:  # noqa: F811
    text = _smoke(postgres.url.render_as_string(hide_password=False), captures)
    for measure in (
        "ingest: fsbarge (parse, mirror, PostgreSQL commit)",
        "PostgreSQL: mirror lag p99",
        "PostgreSQL: barge latency p99 ",
        "PostgreSQL: barge latency p99 while the audit tables are locked",
    ):
        assert measure in text, f"{measure!r} missing from:\n{text}"
    assert "nan" not in text and "skipped" not in text
