"""AuditStore: the audit trail on a real migrated database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from fsbarge.read import auditview
from fsbarge.store.engine import make_engine, writer
from fsbarge.store.audit_apply import AuditStore
from tests.store_factories import AuditWriter

# 2026-11-22T10:00:00Z
T = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def audit(engine: Engine) -> AuditWriter:
    return AuditWriter(engine)


def attempt(audit: AuditWriter, **over: object) -> int:
    kw: dict[str, object] = dict(
        node="pbx1",
        supervisor="1002",
        supervisor_uuid="c5c83ace-sup",
        agent="1000",
        target_uuid="e8ba682b-agent",
        customer="1001",
        requested_mode="listen",
        outcome="active",
        reason=None,
        started_at=T + 0.123,
    )
    kw.update(over)
    return audit.create(**kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- lifecycle


def test_a_denied_attempt_is_a_closed_record_with_no_modes(audit: AuditWriter) -> None:
    i = attempt(audit, requested_mode="barge", outcome="denied", reason="mode_not_allowed", team="sales")
    assert audit.get(i) == {
        "id": i,
        "node": "pbx1",
        "supervisor": "1002",
        "supervisor_uuid": "c5c83ace-sup",
        "agent": "1000",
        "target_uuid": "e8ba682b-agent",
        "customer": "1001",
        "requested_mode": "barge",
        "outcome": "denied",
        "reason": "mode_not_allowed",
        "started_at": "2026-11-22T10:00:00.123Z",
        "ended_at": "2026-11-22T10:00:00.123Z",
        "end_reason": None,
        "origin": "feature_code",
        "help_request_id": None,
        "supervisor_node": None,
        "team": "sales",
        "modes": [],
        "seconds_by_mode": {},
    }
    assert audit.open_interventions() == []


def test_no_active_call_has_ended_at_equal_to_started_at(audit: AuditWriter) -> None:
    i = attempt(audit, outcome="no_active_call", target_uuid=None, customer=None)
    record = audit.get(i)
    assert record is not None
    assert record["ended_at"] == record["started_at"]
    assert (record["outcome"], record["end_reason"], record["modes"]) == ("no_active_call", None, [])


def test_the_full_lifecycle_gives_the_spec_record(audit: AuditWriter) -> None:
    i = attempt(audit, application_uuid="app-1")
    audit.add_mode(i, "listen", T + 0.2, "feature_code")
    audit.add_mode(i, "barge", T + 5.5, "dtmf", refused=True)
    audit.add_mode(i, "listen", T + 5.6, "dtmf")  # the daemon undid the refused key
    audit.add_mode(i, "whisper", T + 12.0, "dtmf")
    assert audit.close(i, outcome="completed", ended_at=T + 90.456, end_reason="supervisor_hangup")
    record = audit.get(i)
    assert record == {
        "id": i,
        "node": "pbx1",
        "supervisor": "1002",
        "supervisor_uuid": "c5c83ace-sup",
        "agent": "1000",
        "target_uuid": "e8ba682b-agent",
        "customer": "1001",
        "requested_mode": "listen",
        "outcome": "completed",
        "reason": None,
        "started_at": "2026-11-22T10:00:00.123Z",
        "ended_at": "2026-11-22T10:01:30.456Z",
        "end_reason": "supervisor_hangup",
        "origin": "feature_code",
        "help_request_id": None,
        "supervisor_node": None,
        "team": None,
        "modes": [
            {"mode": "listen", "at": "2026-11-22T10:00:00.200Z", "source": "feature_code"},
            {"mode": "barge", "at": "2026-11-22T10:00:05.500Z", "source": "dtmf", "refused": True},
            {"mode": "listen", "at": "2026-11-22T10:00:05.600Z", "source": "dtmf"},
            {"mode": "whisper", "at": "2026-11-22T10:00:12.000Z", "source": "dtmf"},
        ],
        "seconds_by_mode": {"listen": 11.8, "whisper": 78.456},
    }
    assert list(record) == list(auditview.RECORD_FIELDS)
    total_ms = sum(round(s * 1000) for s in record["seconds_by_mode"].values())
    assert total_ms == 90_456 - 200  # modes[0].at .. ended_at, exactly


def test_an_active_record_counts_up_to_now(audit: AuditWriter) -> None:
    i = attempt(audit)
    audit.add_mode(i, "listen", T + 0.2, "feature_code")
    audit.add_mode(i, "barge", T + 10.0, "dtmf")
    record = audit.get(i, now=T + 15.25)
    assert record is not None
    assert (record["outcome"], record["ended_at"]) == ("active", None)
    assert record["seconds_by_mode"] == {"listen": 9.8, "barge": 5.25}
    listed = audit.list(now=T + 15.25)
    assert listed == [record]


def test_open_interventions_carry_what_a_restarted_daemon_needs(audit: AuditWriter) -> None:
    i = attempt(audit, application_uuid="app-1")
    audit.add_mode(i, "listen", T + 0.2, "feature_code")
    audit.add_mode(i, "barge", T + 3.0, "dtmf", refused=True)
    audit.add_mode(i, "whisper", T + 4.0, "dtmf")
    attempt(audit, node="pbx2")
    attempt(audit, outcome="denied", reason="not_in_team")
    [row] = audit.open_interventions("pbx1")
    assert row["id"] == i
    assert row["outcome"] == "active"
    assert row["started_at"] == T + 0.123
    assert row["ended_at"] is None
    assert row["current_mode"] == "whisper"  # the last mode that was not refused
    assert row["application_uuid"] == "app-1"
    assert (row["supervisor_uuid"], row["target_uuid"]) == ("c5c83ace-sup", "e8ba682b-agent")
    # change_id: the change that made each entry, so that an adopting instance journals the
    # same ids (entries written directly, not from a journal, get ids of their own)
    ids = [m.pop("change_id") for m in row["modes"]]
    assert len(set(ids)) == 3 and all(i.startswith("direct-") for i in ids)
    assert row["modes"] == [
        {"mode": "listen", "at": T + 0.2, "source": "feature_code", "refused": False},
        {"mode": "barge", "at": T + 3.0, "source": "dtmf", "refused": True},
        {"mode": "whisper", "at": T + 4.0, "source": "dtmf", "refused": False},
    ]
    assert [r["node"] for r in audit.open_interventions()] == ["pbx1", "pbx2"]
    audit.close(i, outcome="completed", ended_at=T + 9, end_reason="call_ended")
    assert [r["node"] for r in audit.open_interventions()] == ["pbx2"]


def test_a_second_close_changes_nothing(audit: AuditWriter) -> None:
    i = attempt(audit)
    audit.add_mode(i, "listen", T + 0.2, "feature_code")
    assert audit.close(i, outcome="completed", ended_at=T + 5, end_reason="call_ended")
    before = audit.get(i)
    assert not audit.close(i, outcome="completed", ended_at=T + 9, end_reason="supervisor_hangup")
    assert audit.get(i) == before


def test_a_closed_record_takes_no_more_mode_changes_or_outcomes(audit: AuditWriter) -> None:
    i = attempt(audit)
    audit.close(i, outcome="completed", ended_at=T + 5, end_reason="supervisor_left")
    with pytest.raises(ValueError, match=f"intervention {i} is closed"):
        audit.add_mode(i, "barge", T + 6, "dtmf")
    assert audit.get(i)["modes"] == []  # type: ignore[index]


def test_unknown_ids(audit: AuditWriter) -> None:
    assert audit.get(404) is None
    with pytest.raises(LookupError):
        audit.add_mode(404, "listen", T, "dtmf")
    with pytest.raises(LookupError):
        audit.close(404, outcome="completed", ended_at=T, end_reason="call_ended")


def test_failed_eavesdrop_keeps_its_reason(audit: AuditWriter) -> None:
    i = attempt(audit, application_uuid="app-9")
    assert audit.open_interventions()[0]["application_uuid"] == "app-9"
    audit.close(i, outcome="failed", ended_at=T + 0.3, end_reason=None, reason="no_media_bug")
    record = audit.get(i)
    assert record is not None
    assert (record["outcome"], record["reason"], record["end_reason"]) == (
        "failed", "no_media_bug", None,
    )
    j = attempt(audit, reason="kept")
    audit.close(j, outcome="failed", ended_at=T + 1, end_reason=None)
    assert audit.get(j)["reason"] == "kept"  # type: ignore[index]


def test_a_nul_character_in_a_callers_number_is_audited(audit: AuditWriter, backend: str) -> None:
    """PostgreSQL cannot store NUL: it becomes U+FFFD there, and the record is written all the same."""
    i = attempt(audit, customer="10\x0001", outcome="denied", reason="not_in_team")
    nul = "\ufffd" if backend == "postgresql" else "\x00"
    assert audit.get(i)["customer"] == f"10{nul}01"  # type: ignore[index]


def test_invalid_writes_are_refused_before_touching_the_database(audit: AuditWriter) -> None:
    with pytest.raises(ValueError, match="unknown outcome 'won'"):
        attempt(audit, outcome="won")
    with pytest.raises(ValueError, match="active"):
        attempt(audit, ended_at=T + 1)
    i = attempt(audit)
    with pytest.raises(ValueError, match="final outcome"):
        audit.close(i, outcome="active", ended_at=T + 1, end_reason=None)
    assert [r["id"] for r in audit.list()] == [i]


def test_every_write_is_committed_when_it_returns(audit: AuditWriter, db_url: str) -> None:
    i = attempt(audit)
    audit.add_mode(i, "listen", T + 0.2, "feature_code")
    fresh = make_engine(db_url)  # no shared connection, no cache
    assert AuditStore(fresh).get(i, now=T + 1)["seconds_by_mode"] == {"listen": 0.8}  # type: ignore[index]
    fresh.dispose()


def test_the_api_has_no_way_to_delete_an_audit_record() -> None:
    public = {name for name in dir(AuditStore) if not name.startswith("_")}
    assert not {n for n in public if any(w in n for w in ("delete", "remove", "purge", "drop"))}


# --------------------------------------------------------------------------- list filters


@pytest.fixture
def history(audit: AuditWriter) -> dict[str, int]:
    """A morning of attempts, oldest first."""
    ids: dict[str, int] = {}
    ids["listen_1000"] = attempt(audit, started_at=T + 1)
    audit.add_mode(ids["listen_1000"], "listen", T + 1.1, "feature_code")
    audit.add_mode(ids["listen_1000"], "whisper", T + 30, "dtmf")
    audit.add_mode(ids["listen_1000"], "barge", T + 40, "dtmf", refused=True)
    audit.close(ids["listen_1000"], outcome="completed", ended_at=T + 60, end_reason="call_ended")
    ids["denied_1004"] = attempt(
        audit, started_at=T + 3600, agent="1004", requested_mode="barge", outcome="denied",
        reason="mode_not_allowed",
    )
    ids["other_sup"] = attempt(audit, started_at=T + 7200, supervisor="1003", requested_mode="barge")
    audit.add_mode(ids["other_sup"], "barge", T + 7200.1, "feature_code")
    audit.close(ids["other_sup"], outcome="completed", ended_at=T + 7300, end_reason="supervisor_hangup")
    ids["nocall"] = attempt(audit, started_at=T + 7200, agent="1005", outcome="no_active_call")
    ids["running"] = attempt(audit, started_at=T + 10800)
    audit.add_mode(ids["running"], "listen", T + 10800.5, "feature_code")
    return ids


def listed(audit: AuditWriter, ids: dict[str, int], **filters: object) -> list[str]:
    by_id = {v: k for k, v in ids.items()}
    return [by_id[r["id"]] for r in audit.list(**filters)]  # type: ignore[arg-type]


def test_list_is_newest_first_ties_by_id(audit: AuditWriter, history: dict[str, int]) -> None:
    assert listed(audit, history) == ["running", "nocall", "other_sup", "denied_1004", "listen_1000"]


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({"supervisor": "1003"}, ["other_sup"]),
        ({"supervisor": "1002"}, ["running", "nocall", "denied_1004", "listen_1000"]),
        ({"agent": "1004"}, ["denied_1004"]),
        ({"outcome": "completed"}, ["other_sup", "listen_1000"]),
        ({"outcome": "active"}, ["running"]),
        ({"mode": "whisper"}, ["listen_1000"]),  # via the history
        ({"mode": "barge"}, ["other_sup", "denied_1004"]),  # requested, or used; refused ones don't count
        ({"mode": "customer_whisper"}, []),
        ({"since": datetime(2026, 11, 22, 11, 0)}, ["running", "nocall", "other_sup", "denied_1004"]),
        ({"since": datetime(2026, 11, 22, 11, 0, 0, 1000)}, ["running", "nocall", "other_sup"]),
        ({"until": datetime(2026, 11, 22, 11, 0)}, ["listen_1000"]),  # until is exclusive
        ({"until": datetime(2026, 11, 22, 11, 0, 0, 1000)}, ["denied_1004", "listen_1000"]),
        ({"since": T + 3600, "until": T + 3600.001}, ["denied_1004"]),  # epoch seconds work too
        (
            {"since": datetime(2026, 11, 22, 12, 0, tzinfo=timezone(timedelta(hours=1))),
             "until": datetime(2026, 11, 22, 12, 0, 0, 1000)},
            ["nocall", "other_sup", "denied_1004"],
        ),
        ({"limit": 2}, ["running", "nocall"]),
        ({"limit": 0}, []),
        ({"limit": None}, ["running", "nocall", "other_sup", "denied_1004", "listen_1000"]),
        ({"supervisor": "1002", "outcome": "completed", "mode": "listen"}, ["listen_1000"]),
        ({"node": "pbx2"}, []),
    ],
)
def test_list_filters(audit: AuditWriter, history: dict[str, int], filters, expected) -> None:
    assert listed(audit, history, **filters) == expected


def test_list_default_limit_is_100(audit: AuditWriter) -> None:
    for n in range(105):
        attempt(audit, outcome="denied", reason="not_in_team", started_at=T + n)
    records = audit.list()
    assert len(records) == 100
    assert records[0]["started_at"] == "2026-11-22T10:01:44.000Z"


def test_list_rejects_a_negative_limit(audit: AuditWriter) -> None:
    with pytest.raises(ValueError):
        audit.list(limit=-1)


def test_listed_records_are_the_same_as_get(audit: AuditWriter, history: dict[str, int]) -> None:
    for record in audit.list(now=T + 20000):
        assert audit.get(record["id"], now=T + 20000) == record


# --------------------------------------------------------------------------- another process


_CLI_READER = """
import sys
from fsbarge.read import auditview
from fsbarge.store.engine import make_engine
from fsbarge.store.audit_apply import AuditStore
eng = make_engine(sys.argv[1], busy_timeout_ms=100)
print(auditview.render_json(AuditStore(eng).list()))
"""


def test_a_cli_reader_in_another_process_reads_while_the_daemon_writes(
    audit: AuditWriter, engine: Engine, db_url: str
) -> None:
    done = attempt(audit, outcome="denied", reason="not_supervisor")
    with writer(engine).begin() as conn:  # the daemon in the middle of a write
        conn.exec_driver_sql("UPDATE interventions SET reason = 'uncommitted'")
        proc = subprocess.run(
            [sys.executable, "-c", _CLI_READER, db_url],
            capture_output=True, text=True, timeout=60,
        )
        conn.rollback()
    assert proc.returncode == 0, proc.stderr
    [record] = json.loads(proc.stdout)
    assert (record["id"], record["reason"]) == (done, "not_supervisor")


# --------------------------------------------------------------------------- property


timelines = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=120_000),  # ms after the previous entry
        st.sampled_from(["listen", "whisper", "barge", "customer_whisper"]),
        st.booleans(),  # refused
        st.sampled_from(["dtmf", "feature_code", "reattach"]),
    ),
    min_size=0,
    max_size=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start_ms=st.integers(min_value=0, max_value=999),
    steps=timelines,
    tail_ms=st.integers(min_value=0, max_value=3_600_000),
)
def test_stored_seconds_by_mode_add_up_exactly_to_the_duration(
    audit: AuditWriter, start_ms: int, steps, tail_ms: int
) -> None:
    started = T + start_ms / 1000
    i = attempt(audit, started_at=started)
    at_ms = start_ms
    for delta, mode, refused, source in steps:
        at_ms += delta
        audit.add_mode(i, mode, T + at_ms / 1000, source, refused=refused)
    audit.close(i, outcome="completed", ended_at=T + (at_ms + tail_ms) / 1000, end_reason="call_ended")
    record = audit.get(i)
    assert record is not None
    counted = [m for m in record["modes"] if not m.get("refused")]
    assert len(record["modes"]) == len(steps)
    if not counted:
        assert record["seconds_by_mode"] == {}
        return
    first = auditview.to_ms(counted[0]["at"])
    end = auditview.to_ms(record["ended_at"])
    assert sum(round(s * 1000) for s in record["seconds_by_mode"].values()) == end - first
    assert set(record["seconds_by_mode"]) == {m["mode"] for m in counted}
    assert all(s >= 0 for s in record["seconds_by_mode"].values())
