"""Repositories over an Engine, one module per role: the live channel mirror and node status
(channel_mirror), journal changes applied to the audit (audit_apply), the audit read back
(audit_read), the hash chain (audit_chain), the webhook outbox (webhook_deliveries).

Used by the daemon (the one writer) and by CLI readers in other processes. Every write runs in one
short transaction (SQLite: BEGIN IMMEDIATE) that has committed when the method returns. SQLAlchemy
errors surface as fsbarge.db.errors.DatabaseError (one line).

Times go in as float epoch seconds (UTC) and are stored as naive UTC datetimes with millisecond
precision. ChannelStore.list() and AuditStore.open_interventions() give them back as floats;
AuditStore.get()/list() return SPEC.md audit records (ISO 8601 strings, see fsbarge.auditview).
"""

from __future__ import annotations

from .audit_apply import JOURNAL_DAMAGED, ApplyResult, AuditStore, check_outcome
from .audit_chain import CHAIN_LOCK, ChainHook, chain_head, journal_damage, verify_chain
from .audit_read import AuditReader
from .channel_mirror import CHANNEL_COLUMNS, ChannelStore
from .hooks import Applied, ApplyHook
from .webhook_deliveries import WebhookStore, insert_webhook_deliveries

__all__ = [
    "CHAIN_LOCK", "CHANNEL_COLUMNS", "JOURNAL_DAMAGED", "Applied", "ApplyHook", "ApplyResult", "AuditReader",
    "AuditStore", "ChainHook", "ChannelStore", "WebhookStore", "chain_head", "check_outcome", "insert_webhook_deliveries",
    "journal_damage", "verify_chain",
]
