"""The read side: queries over the audit database in plain SQL (no SQLAlchemy, so a read command
starts fast), and the views that turn rows into SPEC.md records, tables, reports and status."""
