"""The Alembic migrations: every one up and down on SQLite and on PostgreSQL, and the models match them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from fsbarge.store.engine import make_engine
from fsbarge.store.errors import DatabaseError
from fsbarge.store.migrate import alembic_config, current_revision, downgrade, is_up_to_date, upgrade
from fsbarge.store.models import Base
from fsbarge.store.audit_apply import AuditStore
from fsbarge.store.channel_mirror import ChannelStore
from tests.store_factories import AuditWriter

CHANNEL_TABLES = {"channels": {"ix_channels_user", "ix_channels_node_peer_uuid"}, "nodes": set()}
AUDIT_TABLES = {
    "interventions": {
        "ix_interventions_started_at",
        "ix_interventions_supervisor",
        "ix_interventions_agent",
        "ix_interventions_outcome",
        "ix_interventions_outcome_node",
        "ix_interventions_uid",
    },
    "mode_changes": {"ix_mode_changes_intervention_id", "ix_mode_changes_change_id"},
}
TRANSPARENCY_TABLES = {
    "help_requests": {"ix_help_requests_uid", "ix_help_requests_requested_at", "ix_help_requests_agent"},
    "audit_chain": {"ix_audit_chain_change_id", "ix_audit_chain_record"},
    "webhook_deliveries": {"ix_webhook_deliveries_delivery_id", "ix_webhook_deliveries_state"},
    "crossnode_tickets": {"ix_crossnode_tickets_expires_at"},
}
HEAD_TABLES = {**CHANNEL_TABLES, **AUDIT_TABLES, **TRANSPARENCY_TABLES}


@pytest.fixture
def engine(blank_url: str):
    """An empty database (these tests migrate it themselves), on each backend."""
    eng = make_engine(blank_url)
    yield eng
    eng.dispose()


def _schema(engine: sa.Engine) -> dict[str, set[str]]:
    inspector = sa.inspect(engine)
    return {
        t: {ix["name"] for ix in inspector.get_indexes(t)}
        for t in inspector.get_table_names()
        if t != "alembic_version"
    }


def _columns(engine: sa.Engine) -> dict[str, set[str]]:
    inspector = sa.inspect(engine)
    return {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names() if t != "alembic_version"}


def _revisions() -> list[tuple[str, str]]:
    """(revision, down_revision or 'base'), oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    revs = list(reversed(list(script.walk_revisions())))
    return [(r.revision, r.down_revision or "base") for r in revs]  # type: ignore[misc]


def test_the_migration_chain_is_linear_and_named_as_expected() -> None:
    assert _revisions() == [("0001", "base"), ("0002", "0001"), ("0003", "0002"), ("0004", "0003"), ("0005", "0004"), ("0006", "0005"), ("0007", "0006"), ("0008", "0007")]


def test_upgrade_head_downgrade_base_upgrade_again(engine: sa.Engine) -> None:
    upgrade(engine)
    assert _schema(engine) == HEAD_TABLES
    downgrade(engine, "base")
    assert _schema(engine) == {}
    assert current_revision(engine) is None
    upgrade(engine)
    assert _schema(engine) == HEAD_TABLES
    assert is_up_to_date(engine)


@pytest.mark.parametrize("revision, down", _revisions())
def test_each_migration_goes_up_and_down(engine: sa.Engine, revision: str, down: str) -> None:
    if down != "base":
        upgrade(engine, down)
    before = (_schema(engine), _columns(engine))
    upgrade(engine, revision)
    after = (_schema(engine), _columns(engine))
    assert after != before and current_revision(engine) == revision
    downgrade(engine, down)
    assert (_schema(engine), _columns(engine)) == before
    assert current_revision(engine) == (None if down == "base" else down)
    upgrade(engine, revision)
    assert (_schema(engine), _columns(engine)) == after


def test_step_by_step_schemas(engine: sa.Engine) -> None:
    upgrade(engine, "0001")
    assert _schema(engine) == CHANNEL_TABLES
    upgrade(engine, "0003")
    assert _schema(engine) == {**CHANNEL_TABLES, **AUDIT_TABLES}
    downgrade(engine, "0001")
    assert _schema(engine) == CHANNEL_TABLES


def test_downgrading_the_audit_tables_with_data_in_them_works(engine: sa.Engine) -> None:
    upgrade(engine)
    audit = AuditWriter(engine)
    i = audit.create(
        node="pbx1", supervisor="1002", supervisor_uuid="s", agent="1000", target_uuid="t",
        customer="1001", requested_mode="listen", outcome="active", reason=None,
        started_at=1795000000.0,
    )
    audit.add_mode(i, "listen", 1795000000.1, "feature_code")
    ChannelStore(engine).apply("pbx1", [{"uuid": "u1"}], [])
    downgrade(engine, "0001")
    assert [r["uuid"] for r in ChannelStore(engine).list()] == ["u1"]  # 0001's data survives
    upgrade(engine)
    assert AuditStore(engine).list() == []


def test_models_match_the_migrations(engine: sa.Engine) -> None:
    upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        diffs = compare_metadata(context, Base.metadata)
    assert diffs == []


def test_models_vs_migrations_check_does_notice_a_difference(engine: sa.Engine) -> None:
    """The check above can fail: a schema made by the migrations minus one index differs."""
    upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_interventions_agent")
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d[0] for d in diffs] == ["add_index"]


def test_models_create_all_gives_the_same_schema_as_the_migrations(blank_url: str, another_blank_url: str) -> None:
    """(create_all only here, to compare: the real schema is made by migrations alone)."""
    migrated = make_engine(blank_url)
    created = make_engine(another_blank_url)
    upgrade(migrated)
    Base.metadata.create_all(created)
    assert _schema(migrated) == _schema(created)
    for table in _schema(migrated):
        cols_m = [(c["name"], c["nullable"]) for c in sa.inspect(migrated).get_columns(table)]
        cols_c = [(c["name"], c["nullable"]) for c in sa.inspect(created).get_columns(table)]
        assert cols_m == cols_c, table
    migrated.dispose()
    created.dispose()


def test_a_failed_migration_changes_nothing(engine: sa.Engine) -> None:
    """Migrations run in one transaction: when the second step fails, the first is undone."""
    with engine.begin() as conn:  # something in the way of 0002
        conn.exec_driver_sql("CREATE TABLE interventions (x INTEGER)")
    with pytest.raises(DatabaseError):
        upgrade(engine)
    assert current_revision(engine) is None
    assert set(sa.inspect(engine).get_table_names()) == {"interventions"}
