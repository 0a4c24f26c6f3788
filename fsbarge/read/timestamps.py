"""Times as the audit stores and prints them: every stored time (a naive-UTC or aware datetime,
epoch seconds, an ISO 8601 string) to epoch milliseconds, and back to one output format, UTC ISO
8601 with milliseconds and "Z"; the CLI's --since/--until parsed. Standard library only: the read
side, the store and the chain all compare times this way."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["EPOCH", "iso", "iso_ms", "parse_time", "to_ms"]

EPOCH = datetime(1970, 1, 1)


def to_ms(value: Any) -> int | None:
    """datetime (naive = UTC), epoch seconds or an ISO 8601 string -> integer epoch ms."""
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_time(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return round((value - EPOCH) / timedelta(microseconds=1) / 1000)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return round(value * 1000)
    raise TypeError(f"expected a datetime or epoch seconds, got {type(value).__name__}")


def iso_ms(ms: int) -> str:
    """Epoch milliseconds -> '2026-11-22T10:00:00.123Z'."""
    moment = EPOCH + timedelta(milliseconds=ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def iso(value: Any) -> str | None:
    """datetime / epoch seconds / None -> UTC ISO 8601 with milliseconds and Z, or None."""
    ms = to_ms(value)
    return None if ms is None else iso_ms(ms)


def parse_time(text: str, *, keep_offset: bool = False) -> datetime:
    """ISO 8601 date or date-time ('2026-11-22', '2026-11-22T10:00', '...Z', '...+01:00')
    -> naive UTC datetime. A time without an offset is taken as UTC. With `keep_offset`, the time
    as typed: aware if it had an offset, naive if not (for the caller to read in its zone)."""
    stripped = text.strip() if isinstance(text, str) else ""
    try:
        if not stripped:
            raise ValueError
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(
            f"invalid time {text!r}: expected ISO 8601 such as 2026-11-22, "
            "2026-11-22T10:00 or 2026-11-22T10:00:00Z"
        ) from None
    if moment.tzinfo is not None and not keep_offset:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment
