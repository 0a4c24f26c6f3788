"""One journal line: ``<crc32 hex> <json>\\n``, checksummed so that a line the disk or a crash
damaged is never trusted, and the note that stands in its place (where it was, why, its bytes).
The quarantine file uses the same line; the journal (fsbarge.daemon.journal) reads and writes files of them."""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fsbarge.core.changeline import to_line
from fsbarge.core.changes import Change, Damaged

__all__ = ["RAW_KEPT", "damage_note", "decode", "decode_line", "encode", "encode_line"]

RAW_KEPT = 2048  # bytes of a damaged line kept as evidence


def encode_line(change: Mapping[str, Any]) -> bytes:
    """``<crc32 hex> <json>\\n`` (the journal's and the quarantine file's line)."""
    payload = json.dumps(change, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def encode(change: Change | Mapping[str, Any]) -> bytes:
    """A change's journal line (a mapping is a line's JSON object already: tests write those)."""
    return encode_line(change if isinstance(change, Mapping) else to_line(change))


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The JSON object of one line (without its newline), or None when its checksum fails."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    payload = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        change = json.loads(payload)
    except ValueError:
        return None
    return change if isinstance(change, dict) else None


def decode(line: bytes) -> dict[str, Any] | None:
    """A change from one line (without its newline), or None when the line is damaged."""
    change = decode_line(line)
    return change if change is not None and isinstance(change.get("seq"), int) else None


def damage_note(path: Path, offset: int, raw: bytes, why: str) -> Damaged:
    """What stands for an untrusted line: where it was, why, and its bytes (the evidence; never
    applied). The id depends only on the line, so finding it again after a restart (before a
    compaction rewrote the file) ships nothing twice."""
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return Damaged(
        id=f"damaged-{offset}-{digest}", journal=str(path), offset=offset, size=len(raw), why=why,
        raw=raw[:RAW_KEPT].decode("utf-8", "backslashreplace"), found_at=time.time(),
    )
