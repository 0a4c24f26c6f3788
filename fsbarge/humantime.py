"""Times as a person reads them: durations, one rounding rule for every human-facing output.

`audit list`, `audit show`, `audit stats` and the report all print durations through
:func:`duration`, so the same record can never read `11m19s` in one and `11m18s` in another. Pure.
"""

from __future__ import annotations

__all__ = ["duration"]


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
