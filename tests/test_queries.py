"""The read side's plain SQL (fsbarge.read.queries): its columns exist in the models that the migrations
are checked against, and on both backends a read command's own connection (sqlite3 or psycopg,
no SQLAlchemy) and a SQLAlchemy Connection get exactly the rows that SQLAlchemy's typed tables
give for the same question."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Boolean, Column, DateTime, Engine, Integer, MetaData, String, Table, exists, false, func, insert, or_, select

from fsbarge.store import models
from fsbarge.read import queries, sqlread
from fsbarge.store.engine import make_engine
from fsbarge.store.errors import DatabaseError
from fsbarge.store.models import UtcDateTime
from tests.audit_fill import DAY, T0, fill, plan

COLUMNS = [
    (queries.INTERVENTION_COLUMNS, models.interventions),
    (queries.MODE_COLUMNS, models.mode_changes),
    (queries.HELP_COLUMNS, models.help_requests),
    (queries.CHANNEL_COLUMNS, models.channels),
    (queries.NODE_COLUMNS, models.nodes),
    (queries.WEBHOOK_COLUMNS, models.webhook_deliveries),
]
KINDS = (Integer, String, Boolean, DateTime)


def kind(column_type: object) -> type:
    if isinstance(column_type, UtcDateTime):
        return DateTime
    return next(k for k in KINDS if isinstance(column_type, k))


def check_columns(names: tuple[str, ...], model: Any) -> None:
    for name in names:
        assert name in model.c, f"{model.name}.{name} is not in the schema"
    times = {n for n in names if kind(model.c[n].type) is DateTime}
    assert set(queries.TIME_COLUMNS[model.name]) == times, f"{model.name}: the time columns read are {sorted(times)}"


@pytest.mark.parametrize("names, model", COLUMNS, ids=[m.name for _, m in COLUMNS])
def test_each_read_column_exists_in_the_model_and_every_time_read_is_known(names, model) -> None:
    check_columns(names, model)


def test_the_column_check_can_fail() -> None:
    with pytest.raises(AssertionError, match="nope"):
        check_columns(("id", "nope"), models.interventions)
    as_text = Table("mode_changes", MetaData(), Column("id", Integer), Column("at", String))  # `at` stored as text
    with pytest.raises(AssertionError, match="time columns"):
        check_columns(("id", "at"), as_text)


# --------------------------------------------------------------------------- same rows as SQLAlchemy


def at(seconds: float) -> datetime:
    return datetime(1970, 1, 1) + timedelta(seconds=seconds)


@pytest.fixture
def filled(db_url: str) -> Iterator[tuple[str, Engine]]:
    """A migrated database on each backend with 300 planned records, channels, nodes, help requests
    and webhook deliveries (NULLs, flags and times of every kind among them)."""
    engine = make_engine(db_url)
    fill(engine, plan(300))
    with engine.begin() as conn:
        conn.execute(insert(models.channels), [
            dict(node=f"pbx{i % 2}", uuid=f"u{i}", name=f"sofia/internal/{1000 + i}", direction="inbound", state="CS_EXECUTE",
                 answer_state="answered" if i % 3 else None, user=str(1000 + i) if i % 4 else None, caller_number="1001",
                 created_at=T0 + i * 1.5, updated_at=T0 + i, answered_at=T0 + i * 1.5 + 0.25 if i % 3 else None)
            for i in range(12)
        ])
        conn.execute(insert(models.nodes), dict(name="pbx0", core_uuid="c0", connected=True, heartbeat_at=T0 + 5.123, journal_backlog=3,
                                                problems='["x"]'))
        conn.execute(insert(models.nodes), dict(name="pbx1", connected=False, last_event_at=T0, stopped_at=T0 + 9.999))
        conn.execute(insert(models.help_requests), [
            dict(uid=f"h{i}", node="pbx1", agent=("1000", "1004")[i % 2], requested_at=T0 + i * 60.001, source="phone",
                 outcome=None if i % 3 == 0 else "answered", answered_by="1002" if i % 3 else None,
                 answered_at=T0 + i * 60 + 5 if i % 3 else None, intervention_id=i if i % 3 else None, reason="r" if i % 2 else None)
            for i in range(9)
        ])
        conn.execute(insert(models.webhook_deliveries), [
            dict(delivery_id=f"d{i}", url="http://x", event="intervention.started", ordering_key="k", body="{}",
                 state=("pending", "failed", "delivered")[i % 3], attempts=i, created_at=T0 + i,
                 delivered_at=T0 + i + 0.5 if i % 3 == 2 else None)
            for i in range(7)
        ])
    yield db_url, engine
    engine.dispose()


def reference_interventions(conn: Any, where: queries.AuditFilter, limit: int | None, offset: int) -> list[tuple[dict, list]]:
    """The question asked through SQLAlchemy's typed tables (as fsbarge.read.queries did before)."""
    i, m = models.interventions, models.mode_changes
    stmt = select(*[i.c[n] for n in queries.INTERVENTION_COLUMNS])
    for name in ("supervisor", "agent", "node", "outcome"):
        if getattr(where, name) is not None:
            stmt = stmt.where(i.c[name] == getattr(where, name))
    if where.since is not None:
        stmt = stmt.where(i.c.started_at >= where.since)
    if where.until is not None:
        stmt = stmt.where(i.c.started_at < where.until)
    if where.mode is not None:
        used = exists().where(m.c.intervention_id == i.c.id, m.c.mode == where.mode, m.c.refused == false())
        stmt = stmt.where(or_(i.c.requested_mode == where.mode, used))
    stmt = stmt.order_by(i.c.started_at.desc(), i.c.id.desc()).limit(limit).offset(offset or None)
    out = []
    for r in conn.execute(stmt):
        history = conn.execute(
            select(m.c.mode, m.c.at, m.c.source, m.c.refused, m.c.notified).where(m.c.intervention_id == r.id).order_by(m.c.at, m.c.id)
        )
        out.append((dict(r._mapping), [dict(h._mapping) for h in history]))
    return out


FILTERS = [
    (queries.AuditFilter(), None, 0),
    (queries.AuditFilter(), 25, 40),
    (queries.AuditFilter(), None, 290),
    (queries.AuditFilter(supervisor="1002", outcome="completed"), None, 0),
    (queries.AuditFilter(agent="1010", mode="whisper"), 10, 3),
    (queries.AuditFilter(mode="customer_whisper", node="pbx1"), None, 0),
    (queries.AuditFilter(since=T0 + DAY, until=at(T0 + 3.5 * DAY)), None, 0),
    (queries.AuditFilter(outcome="denied", since=T0 + 2 * DAY), 0, 0),
]


def both_ways(url: str, engine: Engine) -> Iterator[tuple[str, Any]]:
    """The database as a read command reads it, and as the daemon does."""
    with sqlread.open_read(url) as plain:
        assert isinstance(plain, sqlread.DbapiReader)
        yield "plain", plain
    with engine.connect() as conn:
        yield "sqlalchemy", conn


@pytest.mark.parametrize("where, limit, offset", FILTERS, ids=[f"filter{n}" for n in range(len(FILTERS))])
def test_interventions_are_the_rows_sqlalchemy_reads(filled, where, limit, offset) -> None:
    url, engine = filled
    with engine.connect() as conn:
        expected = reference_interventions(conn, where, limit, offset)
        matching = len(reference_interventions(conn, where, None, 0))
    assert expected or limit == 0
    for how, conn in both_ways(url, engine):
        got = list(queries.interventions(conn, where, limit=limit, offset=offset, batch=7))
        assert got == expected, how
        assert queries.count_records(conn, where) == matching, how
        if expected:
            assert queries.intervention(conn, expected[0][0]["id"]) == expected[0], how
        assert queries.intervention(conn, 10**6) is None


def reference(conn: Any, table: Any, columns: tuple[str, ...], *order: Any, where: Any = None) -> list[dict[str, Any]]:
    stmt = select(*[table.c[n] for n in columns]).order_by(*order)
    if where is not None:
        stmt = stmt.where(where)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def epochs(row: dict[str, Any]) -> dict[str, Any]:
    return {k: round((v - datetime(1970, 1, 1)).total_seconds() * 1000) / 1000 if isinstance(v, datetime) else v for k, v in row.items()}


def test_channels_nodes_help_requests_and_webhooks_are_the_rows_sqlalchemy_reads(filled) -> None:
    url, engine = filled
    c, n, h, w = models.channels, models.nodes, models.help_requests, models.webhook_deliveries
    with engine.connect() as conn:
        channels = [epochs(r) for r in reference(conn, c, queries.CHANNEL_COLUMNS, c.c.node, c.c.created_at, c.c.uuid)]
        nodes = [epochs(r) for r in reference(conn, n, queries.NODE_COLUMNS, n.c.name)]
        helps = reference(conn, h, queries.HELP_COLUMNS, h.c.requested_at.desc(), h.c.id.desc())
        ringing = reference(conn, h, queries.HELP_COLUMNS, h.c.requested_at.desc(), h.c.id.desc(), where=h.c.outcome.is_(None))
        hooks = [epochs(r) for r in reference(conn, w, queries.WEBHOOK_COLUMNS, w.c.id.desc())]
    assert nodes[0]["connected"] is True and nodes[1]["connected"] is False
    assert any(r["answered_at"] is None for r in channels) and ringing
    for how, conn in both_ways(url, engine):
        assert queries.list_channels(conn) == channels, how
        assert queries.list_channels(conn, node="pbx1") == [r for r in channels if r["node"] == "pbx1"], how
        assert queries.list_nodes(conn) == nodes, how
        assert queries.help_request_rows(conn) == helps, how
        assert queries.help_request_rows(conn, outcome="ringing") == ringing, how
        assert queries.help_request_rows(conn, agent="1004", since=T0 + 100, limit=2, offset=1) == [
            r for r in helps if r["agent"] == "1004" and r["requested_at"] >= at(T0 + 100)][1:3], how
        assert queries.help_request_row(conn, helps[0]["id"]) == helps[0], how
        assert queries.list_webhook_deliveries(conn) == hooks, how
        assert queries.list_webhook_deliveries(conn, state="failed", limit=1) == [r for r in hooks if r["state"] == "failed"][:1], how
        assert queries.webhook_counts(conn) == {"pending": 3, "failed": 2, "delivered": 2}, how
        assert queries.live_channel_counts(conn) == {"pbx0": 6, "pbx1": 6}, how


def test_counts_and_running_interventions_are_what_sqlalchemy_counts(filled) -> None:
    url, engine = filled
    i, m = models.interventions, models.mode_changes
    since = select(func.max(m.c.at)).where(m.c.intervention_id == i.c.id, m.c.refused == false()).scalar_subquery()
    with engine.connect() as conn:
        running = [dict(r._mapping) for r in conn.execute(
            select(i.c.id, i.c.node, i.c.supervisor, i.c.agent, i.c.current_mode, i.c.started_at, since.label("mode_since"))
            .where(i.c.outcome == "active").order_by(i.c.started_at, i.c.id))]
        outcomes = {o: k for o, k in conn.execute(select(i.c.outcome, func.count()).group_by(i.c.outcome))}
        sources = {(s, bool(r)): k for s, r, k in conn.execute(select(m.c.source, m.c.refused, func.count()).group_by(m.c.source, m.c.refused))}
    assert running and all(isinstance(r["mode_since"], datetime) for r in running)
    for how, conn in both_ways(url, engine):
        assert queries.running_interventions(conn) == running, how
        assert queries.outcome_counts(conn) == outcomes, how
        assert queries.mode_change_counts(conn) == sources, how


def test_a_dropped_table_read_through_a_plain_connection_is_said_to_be_damage(filled) -> None:
    url, engine = filled
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE mode_changes")
    with pytest.raises(DatabaseError, match="^table mode_changes is missing although the database is at revision"):
        with sqlread.open_read(url) as conn:
            list(queries.interventions(conn, queries.AuditFilter(), limit=1))
