"""Times as a person reads them: durations, and moments in the reader's time zone.

`audit list`, `audit show`, `audit stats` and the report all print durations through
:func:`duration`, so the same record can never read `11m19s` in one and `11m18s` in another.

The audit holds UTC, and JSON and CSV print it as such (SPEC.md); the outputs people read (tables,
the report) can show another zone (`--tz`), always labelled with it, through a :class:`Zone`. No
clock and no IO beyond the system's zone database (zoneinfo) and, for `local`, which zone the
system is set to.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone, tzinfo
from typing import Any, NamedTuple

__all__ = ["UTC", "Zone", "duration", "zone"]


def duration(seconds: float | None) -> str:
    """'-' for None; under a minute in tenths ('0.4s', '59.9s'); then whole seconds ('11m19s',
    '1h02m05s'). Rounded half up, never cut: 678.6 s is 11m19s, 59.96 s is 1m00s. Records are
    exact to the millisecond, so the rounding starts from whole milliseconds."""
    if seconds is None:
        return "-"
    ms = max(0, round(seconds * 1000))
    tenths = (ms + 50) // 100
    if tenths < 600:
        return f"{tenths // 10}.{tenths % 10}s"
    hours, rem = divmod((ms + 500) // 1000, 3600)
    minutes, secs = divmod(rem, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s"


class Zone(NamedTuple):
    """A time zone for human-facing output: `name` labels every column and page that uses it.

    A NamedTuple rather than a frozen dataclass: importing `dataclasses` (and with it `inspect`)
    cost a read command about 20 ms of its start-up."""

    name: str
    tz: tzinfo | None  # None: the system's local time, DST included (datetime.astimezone())

    def local(self, value: Any) -> datetime:
        """An ISO 8601 string ('...Z', as records hold times), an aware datetime, a naive UTC
        datetime or epoch seconds -> an aware datetime in this zone."""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        elif isinstance(value, (int, float)):
            value = datetime.fromtimestamp(value, timezone.utc)
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(self.tz) if self.tz is not None else value.astimezone()

    def moment(self, value: Any) -> str:
        """'2026-12-03T06:38:27.536Z' in UTC, '2026-12-03T07:38:27.536+01:00' elsewhere; '' for None."""
        if value is None:
            return ""
        moment = self.local(value)
        if self.tz is timezone.utc:
            return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
        return moment.isoformat(timespec="milliseconds")

    def day(self, value: Any) -> str:
        """The calendar day of a moment in this zone, '2026-12-03'."""
        return self.local(value).date().isoformat()

    def to_utc(self, moment: datetime) -> datetime:
        """A time typed by someone (naive: in this zone; or with its own offset) -> naive UTC, as
        the database stores times."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.tz) if self.tz is not None else moment.astimezone()
        return moment.astimezone(timezone.utc).replace(tzinfo=None)


UTC = Zone("UTC", timezone.utc)


def zone(name: str, env: Any = os.environ) -> Zone:
    """`--tz`: 'UTC', 'local' (the system's zone: $TZ, else /etc/localtime) or an IANA name such
    as 'Europe/Paris'. ValueError with one line for anything else."""
    text = name.strip()
    if text.upper() in ("UTC", "Z"):
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # not needed for the default, UTC

    if text.lower() == "local":
        key = _local_key(env)
        if key is not None:
            return Zone(key, ZoneInfo(key))
        return Zone("local", None)
    try:
        return Zone(text, ZoneInfo(text))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: expected UTC, local or a zone name such as Europe/Paris") from None


def _local_key(env: Any) -> str | None:
    """The IANA name of the system's zone, if it can be told ($TZ, then /etc/localtime's link)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    candidates = [str(env.get("TZ", "")).lstrip(":")]
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        target = ""
    if "/zoneinfo/" in target:
        candidates.append(target.split("/zoneinfo/", 1)[1])
    for key in candidates:
        if key:
            try:
                ZoneInfo(key)
            except (ZoneInfoNotFoundError, ValueError):
                continue
            return key
    return None
