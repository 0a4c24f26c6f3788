"""Journal -> database: idempotent, ordered, and honest about errors that clear and errors that do not."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fsbarge import db
from fsbarge.journal import Journal
from fsbarge.mirror import Mirror
from fsbarge.offload import Retrier
from fsbarge.queries import get_help_request
from fsbarge.shipper import Shipper
from fsbarge.store import AuditStore

from .test_journal import close, mode, opened


class Log:
    """A structlog-like logger that keeps what it was told."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **kw: self.lines.append((level, event, kw))


def full_record(uid: str) -> dict:
    change = opened(uid, sup="sup-" + uid)
    change["record"].update(supervisor="1002", agent="1000", target_uuid="t", customer="1001", reason=None)
    return change


def test_applying_the_same_changes_twice_changes_nothing(engine) -> None:
    audit = AuditStore(engine)
    changes = [full_record("a"), mode("a", "listen", "m1"), mode("a", "barge", "m2"), close("a"), full_record("b")]
    assert audit.apply_changes(changes) == []
    first = audit.list(limit=None, now=10.0)
    assert audit.apply_changes(changes) == []  # a lost commit acknowledgement: shipped again
    assert audit.apply_changes(changes[1:3]) == []
    assert audit.list(limit=None, now=10.0) == first
    a = next(r for r in first if r["supervisor_uuid"] == "sup-a")
    assert [m["mode"] for m in a["modes"]] == ["listen", "barge"]
    assert (a["outcome"], a["end_reason"]) == ("completed", "call_ended")


def help_open(uid: str) -> dict:
    record = {"node": "pbx1", "agent": "1000", "agent_uuid": "agent-leg", "customer": "1001",
              "requested_at": 100.0, "source": "phone", "reason": None}
    return {"kind": "help_open", "id": "h-" + uid, "uid": uid, "node": "pbx1", "record": record}


def test_hooks_see_each_change_once_with_its_record_and_help_requests_link_to_their_intervention(engine) -> None:
    seen: list[tuple[str, str, str, int]] = []
    audit = AuditStore(engine, hooks=[lambda c, change, applied: seen.append((change["kind"], change["id"], *applied))])
    answered = full_record("a")
    answered["record"].update(origin="help_request", help_uid="h1")
    changes = [
        help_open("h1"),
        answered,
        mode("a", "whisper", "m1"),
        {"kind": "help_close", "id": "hc1", "uid": "h1", "outcome": "answered", "answered_by": "1002",
         "answered_at": 101.0, "ended_at": 101.0, "intervention_uid": "a"},
        close("a"),
    ]
    audit.apply_changes(changes)
    audit.apply_changes(changes)  # shipped again: no hook sees anything twice
    rec = audit.list(limit=None, now=200.0)[0]
    assert (rec["origin"], rec["help_request_id"]) == ("help_request", 1)
    assert seen == [
        ("help_open", "h-h1", "help", 1), ("open", "a", "intervention", rec["id"]), ("mode", "m1", "intervention", rec["id"]),
        ("help_close", "hc1", "help", 1), ("close", changes[4]["id"], "intervention", rec["id"]),
    ]
    with engine.connect() as c:
        help_rec = get_help_request(c, 1)
    assert help_rec is not None
    assert (help_rec["outcome"], help_rec["answered_by"], help_rec["intervention_id"]) == ("answered", "1002", rec["id"])


def test_a_mode_change_for_an_unknown_record_is_reported_not_fatal(engine) -> None:
    assert AuditStore(engine).apply_changes([mode("nobody", "listen", "m1")]) == ["m1"]


def shipper_for(tmp_path: Path, engine, log: Log) -> tuple[Shipper, Journal]:
    journal = Journal(tmp_path / "journal")
    return Shipper(journal, AuditStore(engine), retrier=Retrier("audit", log, run=lambda fn: fn())), journal


def test_a_locked_database_is_transient_retried_and_then_everything_lands(tmp_path: Path, db_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{db_path}", busy_timeout_ms=20)
    log = Log()
    shipper, journal = shipper_for(tmp_path, engine, log)
    journal.append([full_record("a"), mode("a", "listen", "m1")])
    locker = sqlite3.connect(db_path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    assert not shipper.ship_once()
    assert not shipper.ship_once()
    assert shipper.retrier.wait > 0 and not shipper.retrier.permanent
    assert [(lvl, kw["attempt"]) for lvl, _e, kw in log.lines] == [("warning", 1), ("warning", 2)]
    assert journal.backlog == 2
    locker.execute("COMMIT")
    locker.close()
    assert shipper.ship_once() and journal.backlog == 0
    assert log.lines[-1][1] == "database writes resumed"
    [rec] = AuditStore(engine).list(limit=None)
    assert [m["mode"] for m in rec["modes"]] == ["listen"]
    engine.dispose()


def test_a_missing_schema_is_permanent_said_once_and_retried_slowly(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    log = Log()
    shipper, journal = shipper_for(tmp_path, engine, log)
    journal.append([full_record("a")])
    for _ in range(3):
        assert not shipper.ship_once()
    assert shipper.retrier.permanent and shipper.retrier.wait == shipper.retrier.permanent_wait
    assert [(lvl, kw["error"]) for lvl, _e, kw in log.lines] == [("error", "database not initialised: run `fsbarge db upgrade`")]
    db.upgrade(engine)  # the operator acts; the next slow retry ships it
    assert shipper.ship_once() and journal.backlog == 0
    engine.dispose()


def test_a_read_only_database_is_permanent(tmp_path: Path, db_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///file:{db_path}?mode=ro&uri=true")
    log = Log()
    shipper, journal = shipper_for(tmp_path, engine, log)
    journal.append([full_record("a")])
    assert not shipper.ship_once()
    assert shipper.retrier.permanent
    assert "readonly" in log.lines[0][2]["error"]
    engine.dispose()


class FlakyStore:
    """A channel store whose next writes fail as a locked database does."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: dict[str, dict[str, Any]] = {}

    def write(self, batch: list) -> None:
        if self.failures:
            self.failures -= 1
            raise db.DatabaseError("database is locked", transient=True)
        for node, replace, rows, deletes, _status in batch:
            if replace:
                self.written = {k: v for k, v in self.written.items() if not k.startswith(node + "/")}
            for r in rows:
                self.written[f"{node}/{r['uuid']}"] = r
            for u in deletes:
                self.written.pop(f"{node}/{u}", None)


@pytest.mark.parametrize("replace_first", [False, True])
def test_the_mirror_merges_what_happened_while_the_database_was_away(replace_first: bool) -> None:
    store = FlakyStore(failures=2)
    mirror = Mirror(store, retrier=Retrier("mirror", Log(), run=lambda fn: fn()))
    if replace_first:
        mirror.replace("pbx1", [{"uuid": "old", "state": "x"}, {"uuid": "a", "state": "CS_INIT"}])
    else:
        mirror.changes("pbx1", [{"uuid": "old", "state": "x"}, {"uuid": "a", "state": "CS_INIT"}], [])
    assert not mirror.write_once()
    mirror.changes("pbx1", [{"uuid": "a", "state": "CS_EXECUTE"}, {"uuid": "b", "state": "CS_INIT"}], ["old"])
    assert not mirror.write_once()
    mirror.changes("pbx1", [], ["b"])
    assert mirror.write_once() and mirror.idle
    assert store.written == {"pbx1/a": {"uuid": "a", "state": "CS_EXECUTE"}}
