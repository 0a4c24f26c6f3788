"""Journal -> database: idempotent, ordered, and honest about errors that clear and errors that do not."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import gevent
import pytest
from sqlalchemy import text
from structlog.testing import capture_logs

from fsbarge.store.engine import make_engine
from fsbarge.store.errors import DatabaseError
from fsbarge.store.migrate import upgrade
from fsbarge.cli import main
from fsbarge.daemon.health import Health
from fsbarge.daemon.journal import Journal
from fsbarge.daemon.mirror import Mirror
from fsbarge.daemon.offload import Retrier
from fsbarge.read.records import get_help_request
from fsbarge.daemon.shipper import Shipper
from fsbarge.store.audit_apply import AuditStore
from fsbarge.store.audit_chain import journal_damage, verify_chain
from tests.e2e import wait_until

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
    engine = make_engine(f"sqlite:///{db_path}", busy_timeout_ms=20)
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
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    log = Log()
    shipper, journal = shipper_for(tmp_path, engine, log)
    journal.append([full_record("a")])
    for _ in range(3):
        assert not shipper.ship_once()
    assert shipper.retrier.permanent and shipper.retrier.wait == shipper.retrier.permanent_wait
    assert [(lvl, kw["error"]) for lvl, _e, kw in log.lines] == [("error", "database not initialised: run `fsbarge db upgrade`")]
    upgrade(engine)  # the operator acts; the next slow retry ships it
    assert shipper.ship_once() and journal.backlog == 0
    engine.dispose()


def test_a_read_only_database_is_permanent(tmp_path: Path, db_path: Path) -> None:
    engine = make_engine(f"sqlite:///file:{db_path}?mode=ro&uri=true")
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
            raise DatabaseError("database is locked", transient=True)
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


def records_by_uid(engine) -> dict[str, dict]:
    with engine.connect() as c:
        uids = dict(c.execute(text("SELECT id, uid FROM interventions")).all())
    return {uids[r["id"]]: r for r in AuditStore(engine).list(limit=None, now=100.0)}


def test_a_change_the_store_cannot_take_is_quarantined_with_its_intervention_and_the_rest_ships(tmp_path: Path, engine) -> None:
    """A checksummed line with an outcome the store does not know raises ValueError, not a database
    error: it is set aside (with the later changes of its intervention), the rest is applied."""
    shipper, journal = shipper_for(tmp_path, engine, Log())
    bad = full_record("bad")
    bad["record"]["outcome"] = "exploded"
    journal.append([full_record("a"), bad, mode("bad", "listen", "mb"), mode("a", "listen", "ma"), close("bad"), close("a")])
    assert shipper.ship_once()
    assert journal.backlog == 0
    assert set(records_by_uid(engine)) == {"a"}
    held = shipper.quarantine.entries
    assert [(e["change"]["kind"], e["change"]["uid"]) for e in held] == [("open", "bad"), ("mode", "bad"), ("close", "bad")]
    assert held[0]["error"] == "ValueError: unknown outcome 'exploded': expected one of active, completed, denied, no_active_call, failed"
    assert held[1]["error"].startswith("held with an earlier quarantined change of the same intervention")
    assert shipper.health.problems == [
        "3 audit changes quarantined: ValueError: unknown outcome 'exploded': expected one of active, completed, denied, "
        "no_active_call, failed (fsbarge audit quarantine list)"
    ]
    journal.append([mode("bad", "barge", "mb2")])  # later still: held too, never applied on top of a missing open
    assert shipper.ship_once()
    assert len(shipper.quarantine.entries) == 4


def refuse_supervisor(engine, who: str) -> None:
    """A trigger that aborts inserting one supervisor's records (a permanent database error)."""
    with engine.begin() as c:
        if engine.dialect.name == "sqlite":
            c.execute(text(f"CREATE TRIGGER refuse BEFORE INSERT ON interventions WHEN NEW.supervisor = '{who}' "
                           "BEGIN SELECT RAISE(ABORT, 'refused by policy'); END"))
        else:
            c.execute(text(f"CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.supervisor = '{who}' THEN "
                           "RAISE EXCEPTION 'refused by policy'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"))
            c.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON interventions FOR EACH ROW EXECUTE FUNCTION refuse()"))


def test_a_permanent_database_error_on_one_change_sets_it_aside_not_everything_behind_it(tmp_path: Path, engine) -> None:
    log = Log()
    shipper, journal = shipper_for(tmp_path, engine, log)
    refuse_supervisor(engine, "1005")
    poisoned = full_record("p")
    poisoned["record"]["supervisor"] = "1005"
    journal.append([poisoned, mode("p", "listen", "mp"), full_record("a"), mode("a", "listen", "ma"), close("p"), close("a")])
    assert shipper.ship_once()
    assert journal.backlog == 0 and not shipper.retrier.permanent
    assert set(records_by_uid(engine)) == {"a"}
    assert [e["change"]["id"] for e in shipper.quarantine.entries] == ["p", "mp", "p-close"]
    assert "refused by policy" in shipper.quarantine.entries[0]["error"]
    assert [line for line in log.lines if line[0] == "error" and line[1].startswith("database write failed")] == []


def test_a_database_that_refuses_every_write_quarantines_nothing(tmp_path: Path, db_path: Path) -> None:
    """Read-only: every change fails alike and none takes effect, so none is to blame; they wait."""
    engine = make_engine(f"sqlite:///file:{db_path}?mode=ro&uri=true")
    shipper, journal = shipper_for(tmp_path, engine, Log())
    journal.append([full_record("a"), full_record("b"), mode("a", "listen", "m1")])
    assert not shipper.ship_once()
    assert shipper.retrier.permanent and journal.backlog == 3
    assert shipper.quarantine.entries == []
    engine.dispose()


def test_the_shipper_greenlet_survives_a_bug_says_so_once_and_goes_on(tmp_path: Path, engine, monkeypatch: pytest.MonkeyPatch) -> None:
    shipper, journal = shipper_for(tmp_path, engine, Log())
    shipper.failure_backoff = 0.01
    real = journal.unshipped
    broken = {"left": 3}

    def unshipped(limit: int = 500) -> list:
        if broken["left"]:
            broken["left"] -= 1
            raise RuntimeError("a bug")
        return real(limit)

    monkeypatch.setattr(journal, "unshipped", unshipped)
    runner = gevent.spawn(shipper.run)
    try:
        journal.append([full_record("a")])
        shipper.notify()
        wait_until(lambda: journal.backlog == 0, timeout=30, what="the change shipped after the bug")
        assert not runner.dead
        assert shipper.health.problems == []  # cleared once it worked again
    finally:
        runner.kill()
    assert set(records_by_uid(engine)) == {"a"}


def test_once_a_round_ships_after_a_bug_nobody_sees_the_problem_still_reported(tmp_path: Path, engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The problem is cleared before the shipper lets another greenlet run: whoever sees the
    backlog empty sees the health clear too (it used to yield in between)."""
    shipper, journal = shipper_for(tmp_path, engine, Log())
    shipper.failure_backoff = 0.01
    real, broken = journal.unshipped, {"left": 1}

    def unshipped(limit: int = 500) -> list:
        if broken["left"]:
            broken["left"] -= 1
            raise RuntimeError("a bug")
        return real(limit)

    monkeypatch.setattr(journal, "unshipped", unshipped)
    journal.append([full_record("a")])
    seen: list[list[str]] = []

    def watch() -> None:
        while journal.backlog:
            gevent.sleep(0)
        seen.append(list(shipper.health.problems))

    watcher, runner = gevent.spawn(watch), gevent.spawn(shipper.run)
    try:
        watcher.join(timeout=30)
    finally:
        runner.kill()
        watcher.kill()
    assert seen == [[]]


def test_a_damaged_open_loses_nothing_silently(tmp_path: Path, engine, capsys: pytest.CaptureFixture[str]) -> None:
    """The open of intervention `a` is damaged on disk: the damage goes into the audit chain (so
    `audit verify` says so, forever), `a` is rebuilt from its later changes and marked so, the
    loss is one error line naming the line's position, and a health problem."""
    path = tmp_path / "journal"
    j = Journal(path)
    j.append([full_record("b"), full_record("a"), mode("a", "listen", "m1"), mode("a", "barge", "m2"), close("a"), close("b")])
    j.close()
    lines = path.read_bytes().splitlines(keepends=True)
    offset = len(lines[0])
    lines[1] = lines[1].replace(b'"supervisor":"1002"', b'"supervisor":"1003"')  # a flipped bit: checksum fails
    path.write_bytes(b"".join(lines))
    with capture_logs() as logged:
        health = Health()
        journal = Journal(path, health=health)
        shipper = Shipper(journal, AuditStore(engine), retrier=Retrier("audit", Log(), run=lambda fn: fn()), health=health)
        assert shipper.ship_once()
    recs = records_by_uid(engine)
    assert set(recs) == {"a", "b"}
    a = recs["a"]
    assert (a["origin"], a["reason"], a["supervisor"], a["outcome"], a["end_reason"]) == (
        "reconstructed", "journal_damaged", None, "completed", "call_ended")
    assert [m["mode"] for m in a["modes"]] == ["listen", "barge"]
    with engine.connect() as c:
        problem, _count, _head = verify_chain(c)
        damage, rebuilt = journal_damage(c)
    assert problem is None
    assert [(d["offset"], d["why"]) for d in damage] == [(offset, "checksum mismatch")]
    assert [(r["type"], r["id"]) for r in rebuilt] == [("intervention", a["id"])]
    [line] = [e for e in logged if e["event"].startswith("skipping a damaged audit journal line")]
    assert (line["log_level"], line["offset"]) == ("error", offset)
    [rebuilt_line] = [e for e in logged if e["event"].startswith("an intervention whose opening was lost")]
    assert rebuilt_line["record"] == a["id"]
    assert health.problems == [
        f"the audit journal had 1 damaged line (first at byte {offset} of {path}: checksum mismatch); what it held is lost; "
        f"rebuilt from later changes: #{a['id']} (recorded in the audit chain: fsbarge audit verify)"
    ]
    assert shipper.quarantine.entries == []
    assert main(["audit", "verify", "--database", engine.url.render_as_string(hide_password=False)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("audit chain ok: ")
    assert out[1].startswith(f"journal damage: a line of {len(lines[1]) - 1} bytes at byte {offset} of {path} could not be trusted "
                             "(checksum mismatch), found 20")
    assert out[2] == f"rebuilt from their later changes (origin reconstructed, reason journal_damaged): #{a['id']}"
