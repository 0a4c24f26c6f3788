"""Repositories over an Engine, one module per role (import them by module; nothing is re-exported
here, so a reader of one table does not load the others): the live channel mirror and node status
(channel_mirror), journal changes applied to the audit (audit_apply), the audit read back
(audit_read), the hash chain (audit_chain), the webhook outbox (webhook_deliveries).

Used by the daemon (the one writer) and by CLI readers in other processes. Every write runs in one
short transaction (SQLite: BEGIN IMMEDIATE) that has committed when the method returns. SQLAlchemy
errors surface as fsbarge.store.errors.DatabaseError (one line).

Times go in as float epoch seconds (UTC) and are stored as naive UTC datetimes with millisecond
precision. ChannelStore.list() and AuditStore.open_interventions() give them back as floats;
AuditStore.get()/list() return SPEC.md audit records (ISO 8601 strings, see fsbarge.read.auditview).
"""
