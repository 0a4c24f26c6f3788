"""The audit hash chain: every change is chained, and `audit verify` catches each kind of tampering
done directly in the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
import json

from sqlalchemy import Engine, text

from fsbarge.store.migrate import downgrade, upgrade

from fsbarge.core.chain import GENESIS_PREV, Verifier, body_of, entry_hash
from fsbarge.cli import main
from fsbarge.store.audit_apply import AuditStore
from fsbarge.store.audit_chain import chain_head, verify_chain
from tests.store_factories import AuditWriter

from .test_journal import close, mode
from .test_shipper import full_record, help_open


def fill(audit: AuditStore) -> list[dict]:
    """Two interventions (one from a help request), a refusal and a help request: 11 changes."""
    answered = full_record("a")
    answered["record"].update(origin="help_request", help_uid="h1", team="sales")
    refused = full_record("r")
    refused["record"].update(outcome="denied", reason="not_in_team")
    changes = [
        help_open("h1"),
        answered,
        mode("a", "whisper", "m1"),
        {"kind": "help_close", "id": "hc1", "uid": "h1", "outcome": "answered", "answered_by": "1002",
         "answered_at": 101.0, "ended_at": 101.0, "intervention_uid": "a"},
        mode("a", "barge", "m2"),
        close("a"),
        full_record("b"),
        mode("b", "listen", "m3"),
        mode("b", "barge", "m4", refused=True),
        close("b"),
        refused,
    ]
    audit.apply_changes(changes)
    return changes


def verify(engine: Engine, head: str | None = None) -> tuple[str | None, int, str]:
    with engine.connect() as c:
        return verify_chain(c, head)


def sql(engine: Engine, *statements: str) -> None:
    with engine.begin() as c:
        for statement in statements:
            c.execute(text(statement))


def ids(engine: Engine) -> dict[str, int]:
    with engine.connect() as c:
        rows = c.execute(text("SELECT uid, id FROM interventions")).all()
    return {uid: i for uid, i in rows}


def test_every_change_is_chained_once_and_verifies(engine: Engine) -> None:
    audit = AuditStore(engine)
    changes = fill(audit)
    problem, count, head = verify(engine)
    assert (problem, count) == (None, len(changes))
    audit.apply_changes(changes)  # shipped twice (a lost acknowledgement): nothing new to chain
    assert verify(engine) == (None, len(changes), head)
    with engine.connect() as c:
        assert chain_head(c) == (head, len(changes))
        first, second = c.execute(text("SELECT prev_hash, hash, body FROM audit_chain ORDER BY seq LIMIT 2")).all()
    assert first.prev_hash == GENESIS_PREV and second.prev_hash == first.hash
    assert second.hash == entry_hash(first.hash, second.body)


def test_direct_writes_are_chained_too(engine: Engine) -> None:
    audit = AuditWriter(engine)
    i = audit.create(node="pbx1", supervisor="1002", supervisor_uuid="s", agent="1000", target_uuid="t",
                     customer="1001", requested_mode="listen", outcome="active", reason=None, started_at=100.0)
    audit.add_mode(i, "listen", 100.5, "feature_code")
    audit.close(i, outcome="completed", ended_at=110.0, end_reason="call_ended")
    assert verify(engine)[:2] == (None, 3)


# (what is done in the database, what the first problem must name)
TAMPERING = {
    "an edited outcome": (
        ["UPDATE interventions SET outcome = 'denied' WHERE uid = 'a'"], "intervention {a}, change a-close",
    ),
    "an edited supervisor of a refusal": (
        ["UPDATE interventions SET supervisor = '1005' WHERE uid = 'r'"], "intervention {r}, change r",
    ),
    "an edited team": (
        ["UPDATE interventions SET team = 'support' WHERE uid = 'a'"], "intervention {a}, change a-close (chain entry 6): team is 'support'",
    ),
    "an edited mode": (
        ["UPDATE mode_changes SET mode = 'listen' WHERE change_id = 'm2'"], "mode change",
    ),
    "a refused key made to look accepted": (
        ["UPDATE mode_changes SET refused = false WHERE change_id = 'm4'"], "change m4",
    ),
    "an edited help request": (
        ["UPDATE help_requests SET answered_by = '1005'"], "help request 1, change hc1",
    ),
    "a deleted record": (
        ["DELETE FROM interventions WHERE uid = 'r'"], "intervention {r}, change r (chain entry 11): deleted",
    ),
    "a deleted mode change": (
        ["DELETE FROM mode_changes WHERE change_id = 'm3'"], "change m3 (chain entry 8): deleted",
    ),
    "a record added outside fsbarge": (
        ["INSERT INTO interventions (node, outcome, started_at, origin) VALUES ('pbx1', 'denied', '2026-01-01 00:00:00', 'feature_code')"],
        "not in the audit chain",
    ),
    "two records' supervisors swapped": (
        ["UPDATE interventions SET supervisor = CASE uid WHEN 'a' THEN 'x' ELSE supervisor END",
         "UPDATE interventions SET supervisor_uuid = CASE uid WHEN 'a' THEN 'sup-b' WHEN 'b' THEN 'sup-a' ELSE supervisor_uuid END"],
        "intervention {a}",
    ),
    "an edited chain entry": (
        ["UPDATE audit_chain SET body = replace(body, '\"1002\"', '\"1005\"') WHERE seq = 2"],
        "chain entry 2 (change a): its hash does not match",
    ),
    "a deleted chain entry": (
        ["DELETE FROM audit_chain WHERE seq = 5"], "chain entry 6 (change a-close): does not follow",
    ),
    "two chain entries swapped": (
        ["UPDATE audit_chain SET seq = 1000 WHERE seq = 3", "UPDATE audit_chain SET seq = 3 WHERE seq = 5",
         "UPDATE audit_chain SET seq = 5 WHERE seq = 1000"],
        "chain entry 3 (change m2): does not follow",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_verify_names_the_first_record_and_change_that_do_not_match(engine: Engine, case: str) -> None:
    fill(AuditStore(engine))
    before = ids(engine)
    assert verify(engine)[0] is None
    statements, expected = TAMPERING[case]
    sql(engine, *statements)
    problem, _count, _head = verify(engine)
    assert problem is not None and expected.format(**before) in problem, problem


def test_a_truncated_tail_is_caught_against_a_noted_head(engine: Engine) -> None:
    fill(AuditStore(engine))
    _problem, _count, noted = verify(engine)
    # the last record and its chain entry removed together: what is left is a consistent chain
    sql(engine, "DELETE FROM interventions WHERE uid = 'r'", "DELETE FROM audit_chain WHERE seq = 11")
    assert verify(engine)[0] is None
    problem = verify(engine, noted)[0]
    assert problem is not None and f"head {noted} is not in the chain" in problem


def test_rows_from_before_the_chain_are_covered_by_a_genesis_entry(engine: Engine) -> None:
    old = AuditStore(engine, chain=False)  # as a database upgraded from before schema 0005
    old.apply_changes([full_record("old"), mode("old", "listen", "m0")])
    new = AuditStore(engine)
    new.apply_changes([full_record("new")])
    problem, count, _head = verify(engine)
    assert (problem, count) == (None, 2)  # genesis (both old rows) + the new record
    sql(engine, "UPDATE mode_changes SET source = 'feature_code' WHERE change_id = 'm0'")
    problem = verify(engine)[0]
    assert problem is not None and "change genesis-" in problem and "source is 'feature_code'" in problem


def test_the_verifier_rejects_an_entry_that_does_not_follow() -> None:
    check = Verifier()
    body = body_of("open", "c1", {"interventions": [{"id": 1}]})
    check.entry(1, "c1", GENESIS_PREV, body, entry_hash(GENESIS_PREV, body))
    check.entry(2, "c2", GENESIS_PREV, body, entry_hash(GENESIS_PREV, body))  # a fork: same parent
    assert check.result() == "chain entry 2 (change c2): does not follow the entry before it (an entry was deleted, inserted or reordered)"


def test_the_commands(engine: Engine, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    fill(AuditStore(engine))
    assert main(["audit", "head", "--database", db_url]) == 0
    head = capsys.readouterr().out.strip()
    assert main(["audit", "verify", "--database", db_url, "--head", head]) == 0
    assert capsys.readouterr().out == f"audit chain ok: 11 changes, head {head}\n"
    sql(engine, "UPDATE interventions SET customer = '555' WHERE uid = 'b'")
    assert main(["audit", "verify", "--database", db_url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fsbarge: audit chain broken: intervention ") and "customer is '555'" in err
    assert err.count("\n") == 1
    assert main(["audit", "verify", "--database", db_url, "--head", "nothex"]) == 2
    assert "expected 64 hex digits" in capsys.readouterr().err


def _as_written_before_teams(engine: Engine) -> None:
    """Make the database what fsbarge wrote before schema 0008: chain entries whose intervention
    rows have no `team` (each body rewritten and every hash recomputed, as that fsbarge hashed
    them), and the column gone (downgraded to 0006), then upgraded again as an operator would."""
    with engine.begin() as c:
        entries = c.execute(text("SELECT seq, body FROM audit_chain ORDER BY seq")).all()
        prev = GENESIS_PREV
        for seq, body in entries:
            doc = json.loads(body)
            for row in doc["rows"].get("interventions", []):
                del row["team"]
            body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            digest = entry_hash(prev, body)
            c.execute(text("UPDATE audit_chain SET body = :b, prev_hash = :p, hash = :h WHERE seq = :s"),
                      {"b": body, "p": prev, "h": digest, "s": seq})
            prev = digest
    downgrade(engine, "0006")
    upgrade(engine)


def test_records_from_before_teams_were_recorded_still_verify(engine: Engine) -> None:
    """A database upgraded to 0008: the old records have no team and verify; new ones carry their
    team into the chain, and a team written into an old record afterwards is caught."""
    audit = AuditStore(engine)
    old = full_record("old")
    audit.apply_changes([old, mode("old", "listen", "m0"), close("old")])
    _as_written_before_teams(engine)
    with engine.connect() as c:
        assert "team" not in c.execute(text("SELECT body FROM audit_chain WHERE seq = 1")).scalar()
    assert verify(engine)[:2] == (None, 3)
    new = full_record("new")
    new["record"]["team"] = "sales"
    AuditStore(engine).apply_changes([new])
    assert verify(engine)[:2] == (None, 4)
    with engine.connect() as c:
        assert dict(c.execute(text("SELECT uid, team FROM interventions")).all()) == {"old": None, "new": "sales"}
        assert '"team":"sales"' in c.execute(text("SELECT body FROM audit_chain WHERE seq = 4")).scalar()
    sql(engine, "UPDATE interventions SET team = 'sales' WHERE uid = 'old'")
    problem = verify(engine)[0]
    assert problem is not None and "team is 'sales' in the database, None in the chain" in problem, problem
