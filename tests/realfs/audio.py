"""Who hears whom, measured: tone levels in what a phone received (pure Python, no numpy).

Each endpoint sends one continuous sine tone of its own frequency; each records what it receives
(8 kHz 16-bit mono WAV written by FreeSWITCH's record_session). The Goertzel algorithm gives the level
of each known frequency in a window, in dB relative to a full-scale sine (dBFS).
"""

from __future__ import annotations

import math
from array import array
from pathlib import Path

RATE = 8000
# A tone is "heard" at or above HEARD_DB, "not heard" at or below SILENT_DB; anything in between is
# ambiguous and fails the test. FreeSWITCH's tone_stream plays at about -7 dBFS; through PCMU and
# the eavesdrop mixer a present tone measures above -25 dBFS, an absent one below -60 dBFS.
HEARD_DB = -35.0
SILENT_DB = -55.0
WAV_HEADER = 44


def level_db(samples: array, freq: float, rate: int = RATE) -> float:
    """Level of ``freq`` in ``samples`` in dBFS (a full-scale sine is 0 dB)."""
    n = len(samples)
    if n == 0:
        return -200.0
    coeff = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    # A Hann window keeps the strong neighbouring tones from leaking into this bin.
    w = 2.0 * math.pi / (n - 1)
    for i, x in enumerate(samples):
        s0 = x * (0.5 - 0.5 * math.cos(w * i)) + coeff * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    amplitude = 2.0 * math.sqrt(max(power, 0.0)) / (n * 0.5)  # 0.5: the Hann window's coherent gain
    return 20.0 * math.log10(amplitude / 32768.0) if amplitude > 0 else -200.0


def _data_offset(head: bytes, name: str) -> int:
    """Where the samples start in a RIFF/WAVE file (its header may still say length 0 while recording)."""
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise AssertionError(f"{name}: not a WAV file")
    pos = 12
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if chunk == b"fmt ":
            channels = int.from_bytes(head[pos + 10 : pos + 12], "little")
            rate = int.from_bytes(head[pos + 12 : pos + 16], "little")
            bits = int.from_bytes(head[pos + 22 : pos + 24], "little")
            if (channels, rate, bits) != (1, RATE, 16):
                raise AssertionError(f"{name}: expected 8 kHz 16-bit mono, got {channels} ch {rate} Hz {bits} bit")
        if chunk == b"data":
            return pos + 8
        pos += 8 + size + (size & 1)
    raise AssertionError(f"{name}: no data chunk in the WAV header")


def read_samples(path: Path, start: int = 0, count: int | None = None) -> array:
    """Samples ``start``.. of a recording, finished or still being written (read past the header's length)."""
    with open(path, "rb") as f:
        offset = _data_offset(f.read(4096), path.name)
        f.seek(offset + 2 * start)
        data = f.read(-1 if count is None else 2 * count)
    out = array("h")
    out.frombytes(data[: len(data) // 2 * 2])
    return out


def samples_written(path: Path) -> int:
    """How many samples a recording holds so far (from its size; FreeSWITCH may still buffer some)."""
    try:
        size = path.stat().st_size
        if size < WAV_HEADER:
            return 0
        with open(path, "rb") as f:
            return max(0, (size - _data_offset(f.read(4096), path.name)) // 2)
    except FileNotFoundError:
        return 0


def heard(samples: array, tones: dict[str, float], what: str) -> set[str]:
    """Names of the tones present in ``samples``; an ambiguous level fails with one line."""
    out = set()
    levels = {name: level_db(samples, f) for name, f in tones.items()}
    for name, db in levels.items():
        if db >= HEARD_DB:
            out.add(name)
        elif db > SILENT_DB:
            shown = ", ".join(f"{n} {v:.1f} dB" for n, v in levels.items())
            raise AssertionError(f"{what}: {name} is neither clearly heard nor clearly absent ({shown})")
    return out


def seconds_heard(samples: array, freq: float, step: float = 0.05) -> float:
    """For how long ``freq`` is heard in ``samples``: the ``step``-long windows where its level is at
    least HEARD_DB, added up (a short tone, such as the refusal tone, in a whole recording)."""
    n = int(step * RATE)
    return sum(level_db(samples[i : i + n], freq) >= HEARD_DB for i in range(0, len(samples) - n + 1, n)) * step
