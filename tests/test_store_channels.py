"""ChannelStore: the live-channel mirror, on a real migrated database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from sqlalchemy import Engine

from fsbarge.store.engine import writer
from fsbarge.store.channel_mirror import CHANNEL_COLUMNS, ChannelStore

T0 = 1795000000.0  # 2026-11-18T11:06:40Z


@pytest.fixture
def store(engine: Engine) -> ChannelStore:
    return ChannelStore(engine)


def leg(uuid: str, **over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "uuid": uuid,
        "name": f"sofia/internal/{uuid}@127.0.0.1",
        "direction": "inbound",
        "state": "CS_EXECUTE",
        "answer_state": "answered",
        "user": None,
        "caller_number": "1000",
        "callee_number": "1001",
        "created_at": T0,
        "answered_at": T0 + 2.5,
    }
    row.update(over)
    return row


def uuids(store: ChannelStore, node: str | None = None) -> list[str]:
    return [r["uuid"] for r in store.list(node)]


def test_apply_inserts_then_updates_the_whole_row(store: ChannelStore) -> None:
    store.apply("pbx1", [leg("a", user="1000", peer_uuid="b")], [])
    store.apply("pbx1", [leg("a", state="CS_HANGUP")], [])
    [row] = store.list()
    assert row["state"] == "CS_HANGUP"
    assert row["user"] is None and row["peer_uuid"] is None  # a row is the channel's full state


def test_list_gives_every_column_as_plain_values_with_float_epoch_times(
    store: ChannelStore,
) -> None:
    before = time.time()
    store.apply("pbx1", [leg("a", created_at=T0 + 0.1234, answered_at=None, extra="ignored")], [])
    [row] = store.list()
    assert set(row) == set(CHANNEL_COLUMNS)
    assert row["node"] == "pbx1"
    assert row["created_at"] == T0 + 0.123  # millisecond precision
    assert row["answered_at"] is None
    assert before - 0.01 <= row["updated_at"] <= time.time() + 0.01


def test_apply_deletes_and_upserts_in_one_call_deletes_win(store: ChannelStore) -> None:
    store.apply("pbx1", [leg("a"), leg("b"), leg("c")], [])
    store.apply("pbx1", [leg("d"), leg("c", state="CS_HANGUP")], ["a", "c", "never-seen"])
    assert uuids(store) == ["b", "d"]


def test_apply_touches_only_its_node(store: ChannelStore) -> None:
    store.apply("pbx1", [leg("a")], [])
    store.apply("pbx2", [leg("a", state="CS_ROUTING")], [])
    store.apply("pbx2", [], ["a"])
    [row] = store.list()
    assert (row["node"], row["state"]) == ("pbx1", "CS_EXECUTE")


def test_apply_with_nothing_to_do_is_a_no_op(store: ChannelStore) -> None:
    store.apply("pbx1", [], [])
    assert store.list() == []


def test_apply_rejects_a_row_without_uuid(store: ChannelStore) -> None:
    with pytest.raises(ValueError, match="uuid"):
        store.apply("pbx1", [{"name": "x"}], [])


def test_apply_in_the_callers_transaction_rolls_back_with_it(
    store: ChannelStore, engine: Engine
) -> None:
    with pytest.raises(RuntimeError):
        with writer(engine).begin() as conn:
            store.apply("pbx1", [leg("a")], [], conn=conn)
            raise RuntimeError("boom")
    assert store.list() == []
    with writer(engine).begin() as conn:
        store.apply("pbx1", [leg("a")], [], conn=conn)
    assert uuids(store) == ["a"]


def test_apply_handles_large_batches(store: ChannelStore) -> None:
    rows = [leg(f"u{i:05d}", created_at=T0 + i) for i in range(2000)]
    store.apply("pbx1", rows, [])
    assert len(store.list()) == 2000
    store.apply("pbx1", [], [r["uuid"] for r in rows[:1500]])  # more keys than one IN list
    assert uuids(store) == [f"u{i:05d}" for i in range(1500, 2000)]


def test_replace_node_makes_the_nodes_rows_exactly_these(store: ChannelStore) -> None:
    store.apply("pbx1", [leg("a"), leg("b")], [])
    store.apply("pbx2", [leg("z")], [])
    store.replace_node("pbx1", [leg("b", state="CS_HANGUP"), leg("c")])
    assert uuids(store, "pbx1") == ["b", "c"]
    assert store.list("pbx1")[0]["state"] == "CS_HANGUP"
    assert uuids(store, "pbx2") == ["z"]
    store.replace_node("pbx1", [])
    assert uuids(store) == ["z"]


def test_replace_node_is_all_or_nothing(store: ChannelStore) -> None:
    store.apply("pbx1", [leg("a")], [])
    with pytest.raises(ValueError):
        store.replace_node("pbx1", [leg("b"), {"name": "no uuid"}])
    assert uuids(store) == ["a"]


def test_list_orders_by_node_then_creation(store: ChannelStore) -> None:
    store.apply("pbx2", [leg("x", created_at=T0)], [])
    store.apply("pbx1", [leg("late", created_at=T0 + 5), leg("early", created_at=T0 + 1)], [])
    assert [(r["node"], r["uuid"]) for r in store.list()] == [
        ("pbx1", "early"),
        ("pbx1", "late"),
        ("pbx2", "x"),
    ]


def test_a_channel_whose_creation_time_is_unknown_is_listed_last_on_every_backend(store: ChannelStore) -> None:
    """(SQLite sorts NULL first, PostgreSQL last: the order is stated, not left to the backend.)"""
    store.apply("pbx1", [leg("unknown", created_at=None), leg("known", created_at=T0), leg("also", created_at=None)], [])
    assert uuids(store) == ["known", "also", "unknown"]


def test_a_nul_character_from_freeswitch_does_not_stop_the_mirror(store: ChannelStore, backend: str) -> None:
    """A caller can put %00 in a SIP header; PostgreSQL text cannot hold NUL, so it is stored as U+FFFD
    there (SQLite keeps it). Either way the write succeeds: a failing one would be retried for ever."""
    store.apply("pbx1", [leg("a", name="sofia/internal/10\x0001@127.0.0.1", caller_number="\x00")], [])
    [row] = store.list()
    nul = "\ufffd" if backend == "postgresql" else "\x00"
    assert (row["name"], row["caller_number"]) == (f"sofia/internal/10{nul}01@127.0.0.1", nul)
    store.replace_node("pbx1", [leg("b", user="10\x0000")])
    assert store.list()[0]["user"] == f"10{nul}00"


def test_set_node_status_creates_and_updates_only_the_given_fields(store: ChannelStore) -> None:
    store.set_node_status("pbx1")
    assert store.nodes() == [
        {"name": "pbx1", "core_uuid": None, "connected": False, "last_event_at": None,
         "resynced_at": None, "heartbeat_at": None,
         "journal_backlog": None, "daemon_version": None, "daemon_started_at": None, "instance": None,
         "problems": None, "stopped_at": None}
    ]
    store.set_node_status("pbx1", core_uuid="core-1", connected=True, resynced_at=T0)
    store.set_node_status("pbx1", last_event_at=T0 + 1.5)
    store.set_node_status("pbx1", connected=False)
    assert store.nodes() == [
        {"name": "pbx1", "core_uuid": "core-1", "connected": False, "last_event_at": T0 + 1.5,
         "resynced_at": T0, "heartbeat_at": None,
         "journal_backlog": None, "daemon_version": None, "daemon_started_at": None, "instance": None,
         "problems": None, "stopped_at": None}
    ]


_READER = """
import json, sys
from fsbarge.store.engine import make_engine
from fsbarge.store.channel_mirror import ChannelStore
eng = make_engine(sys.argv[1], busy_timeout_ms=100)
rows = ChannelStore(eng).list()
print(json.dumps({"uuids": [r["uuid"] for r in rows]}))
"""


def _read_in_another_process(db_url: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", _READER, db_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_reader_in_another_process_is_not_blocked_by_an_open_write_transaction(
    store: ChannelStore, engine: Engine, db_url: str
) -> None:
    store.apply("pbx1", [leg("committed")], [])
    with writer(engine).begin() as conn:
        store.apply("pbx1", [leg("pending")], ["committed"], conn=conn)
        seen = _read_in_another_process(db_url)
        # the reader sees the last committed state, never the uncommitted change; had it had to
        # wait for the writer it would have failed ("database is locked") after its 0.1 s timeout
        assert seen["uuids"] == ["committed"]
    assert _read_in_another_process(db_url)["uuids"] == ["pending"]
