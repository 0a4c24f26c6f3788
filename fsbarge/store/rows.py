"""What the store's repositories share: chunked IN lists, times back as epoch floats, the upsert."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from fsbarge.store.models import datetime_to_epoch

CHUNK = 500  # keys per IN (...) list, well under every backend's parameter limit


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    """`items` in slices, so an IN (...) list never exceeds a backend's parameter limit."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def epoch(value: datetime | None) -> float | None:
    """A stored naive-UTC time as the float epoch seconds the repositories hand out."""
    return None if value is None else datetime_to_epoch(value)


def plain(row: Any, time_fields: Iterable[str]) -> dict[str, Any]:
    """A row as a plain dict, its `time_fields` as epoch seconds (what callers outside the store see)."""
    out = dict(row._mapping)
    for field in time_fields:
        if field in out:
            out[field] = epoch(out[field])
    return out


def upsert_insert(dialect: str) -> Any:
    """The dialect's INSERT construct that supports ON CONFLICT, or None."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        return None
    return dialect_insert
