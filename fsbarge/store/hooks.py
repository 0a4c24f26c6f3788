"""What AuditStore hands the hooks that ride on its transactions (the hash chain, the webhook outbox)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from sqlalchemy import Connection

from fsbarge.core.changes import Change, Direct


class Applied(NamedTuple):
    """Which record a journal change took effect on (handed to AuditStore.hooks)."""

    record_type: str  # "intervention" or "help"
    record_id: int


ApplyHook = Callable[[Connection, Change | Direct, Applied], None]

