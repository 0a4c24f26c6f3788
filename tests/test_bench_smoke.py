"""The benchmark runs end to end on tiny sizes, so `make bench` cannot rot (targets are checked by `make bench`)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.e2e import ROOT


def test_bench_smoke_prints_every_measure() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
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
    ):
        assert measure in text, f"{measure!r} missing from:\n{text}"
    ratio = float(re.search(r"ingest ratio fsbarge / greenswitch\s*\|\s*([\d.]+)x", text).group(1))
    assert ratio > 0
    # every latency row got real samples (not nan)
    assert "nan" not in text
