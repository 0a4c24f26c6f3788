"""Webhooks: the outbox filled with the audit change, the backoff on an injected clock, and delivery
to a real HTTP server on loopback (down, 500, hanging, cut mid-answer, verifying the signature)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from fsbarge.read import queries, records
from fsbarge.store.engine import make_engine
from fsbarge.store.errors import DatabaseError
from fsbarge.cli import main
from fsbarge.config import WebhookConfig
from fsbarge.daemon.outbox import Outbox, delivery_id, event_of
from fsbarge.store.audit_apply import AuditStore
from fsbarge.store.webhook_deliveries import WebhookStore
from tests.store_factories import AuditWriter
from fsbarge.daemon.webhooks import BackoffPolicy, ReceiverLoop, heads, next_state, sign, sign_timestamped
from tests.webhook_receiver import Receiver, free_port, readme_verified

from .test_journal import close, mode, opened

SECRET = "s3cret-for-the-crm-0123"
URL = "http://127.0.0.1:9/hooks"


def hook(url: str = URL, events: tuple[str, ...] | None = None, timeout: float = 2.0, secret: str = SECRET) -> WebhookConfig:
    kw: dict[str, Any] = {"events": events} if events is not None else {}
    return WebhookConfig(url=url, secret=secret, timeout=timeout, **kw)


def opened_full(uid: str, outcome: str = "active", reason: str | None = None) -> dict:
    change = opened(uid, sup="sup-" + uid, outcome=outcome)
    change["record"].update(supervisor="1002", agent="1000", target_uuid="t", customer="1001", reason=reason)
    return change


def help_changes(uid: str, outcome: str) -> list[dict]:
    record = {"node": "pbx1", "agent": "1000", "agent_uuid": "leg", "customer": "1001", "requested_at": 100.0,
              "source": "phone", "reason": None}
    return [{"kind": "help_open", "id": "ho-" + uid, "uid": uid, "node": "pbx1", "record": record},
            {"kind": "help_close", "id": "hc-" + uid, "uid": uid, "outcome": outcome, "answered_by": None,
             "answered_at": None, "ended_at": 130.0, "intervention_uid": None}]


def outbox_rows(engine) -> list[dict]:
    with engine.connect() as c:
        rows = queries.list_webhook_deliveries(c)
    store = WebhookStore(engine)
    bodies = {d["id"]: d["body"] for url in {r["url"] for r in rows} for d in store.pending(url)}
    return [{**r, "body": json.loads(bodies[r["id"]]) if r["id"] in bodies else None} for r in reversed(rows)]


# --------------------------------------------------------------------------- the outbox


@pytest.mark.parametrize(
    "change, event",
    [
        (opened("a"), "intervention.started"),
        (opened("a", outcome="denied"), "intervention.refused"),
        (opened("a", outcome="no_active_call"), "intervention.refused"),
        (mode("a", "whisper", "m1"), "intervention.mode_changed"),
        (mode("a", "barge", "m1", refused=True), "intervention.mode_changed"),
        (close("a"), "intervention.ended"),
        (help_changes("h", "answered")[0], "help.requested"),
        ({**help_changes("h", "answered")[1], "outcome": "answered"}, "help.answered"),
        (help_changes("h", "unanswered")[1], "help.unanswered"),
        (help_changes("h", "call_ended")[1], "help.unanswered"),
        ({"kind": "node", "node": "pbx1"}, None),
    ],
)
def test_each_change_is_one_event(change: dict, event: str | None) -> None:
    assert event_of(change) == event


def test_the_outbox_is_written_with_the_change_once_with_snapshots_in_order(engine) -> None:
    crm, tickets = hook("http://crm.example/h"), hook("http://tickets.example/h", events=("intervention.refused",))
    audit = AuditStore(engine, hooks=[Outbox([crm, tickets], clock=lambda: 500.0)])
    changes = [opened_full("a"), mode("a", "listen", "m1"), mode("a", "barge", "m2", refused=True), close("a"),
               opened_full("b", outcome="denied", reason="not_in_team")]
    audit.apply_changes(changes)
    audit.apply_changes(changes)  # shipped twice (a lost acknowledgement): nothing is queued twice
    rows = outbox_rows(engine)
    crm_rows = [r for r in rows if r["url"] == crm.url]
    assert [r["event"] for r in crm_rows] == [
        "intervention.started", "intervention.mode_changed", "intervention.mode_changed", "intervention.ended",
        "intervention.refused"]
    assert [(r["event"], r["body"]["intervention"]["reason"]) for r in rows if r["url"] == tickets.url] == [
        ("intervention.refused", "not_in_team")]
    assert [r["delivery_id"] for r in crm_rows] == [delivery_id(c["id"], crm.url) for c in changes]
    a_id = crm_rows[0]["body"]["intervention"]["id"]
    assert {r["ordering_key"] for r in crm_rows[:4]} == {f"pbx1/intervention/{a_id}"}
    # each body is the record as it stood right after its change, as `audit show --format json` prints it
    started, listen, refused_key, ended = (r["body"] for r in crm_rows[:4])
    assert (started["event"], started["delivery_id"], started["occurred_at"]) == (
        "intervention.started", crm_rows[0]["delivery_id"], "1970-01-01T00:00:01.000Z")
    assert started["intervention"]["modes"] == [] and started["intervention"]["outcome"] == "active"
    assert [m["mode"] for m in listen["intervention"]["modes"]] == ["listen"]
    assert refused_key["intervention"]["modes"][-1] == {"mode": "barge", "at": "1970-01-01T00:00:02.000Z", "source": "dtmf",
                                                         "refused": True}
    assert (ended["intervention"]["outcome"], ended["intervention"]["end_reason"]) == ("completed", "call_ended")
    with engine.connect() as c:
        assert ended["intervention"] == records.get_record(c, a_id)
    assert all(r["state"] == "pending" and r["attempts"] == 0 for r in rows)


def test_help_requests_are_events_too(engine) -> None:
    audit = AuditStore(engine, hooks=[Outbox([hook()])])
    audit.apply_changes(help_changes("h1", "unanswered"))
    rows = outbox_rows(engine)
    assert [r["event"] for r in rows] == ["help.requested", "help.unanswered"]
    assert rows[1]["body"]["help"]["outcome"] == "unanswered" and rows[0]["body"]["help"]["outcome"] is None
    assert rows[0]["ordering_key"] == rows[1]["ordering_key"] == "pbx1/help/1"


def test_no_receiver_no_rows_and_a_failing_outbox_fails_the_audit_change_with_it(engine) -> None:
    AuditStore(engine, hooks=[Outbox([])]).apply_changes([opened_full("a")])
    assert outbox_rows(engine) == []

    def broken(conn, change, applied) -> None:
        raise DatabaseError("disk full")

    with pytest.raises(DatabaseError):
        AuditStore(engine, hooks=[Outbox([hook()]), broken]).apply_changes([opened_full("b")])
    assert [r["supervisor_uuid"] for r in AuditStore(engine).list(limit=None)] == ["sup-a"]  # b: neither record nor delivery
    assert outbox_rows(engine) == []


# --------------------------------------------------------------------------- backoff, on an injected clock


def test_backoff_doubles_from_ten_seconds_and_is_capped_at_fifteen_minutes() -> None:
    policy = BackoffPolicy()
    assert [policy.delay(n) for n in range(1, 10)] == [10, 20, 40, 80, 160, 320, 640, 900, 900]


def test_a_delivery_is_retried_for_24_hours_then_failed() -> None:
    policy = BackoffPolicy()
    d = {"created_at": 1000.0, "attempts": 0}
    now, schedule = 1000.0, []
    for _ in range(200):
        state, attempts, next_at = next_state(d, False, now, policy)
        d["attempts"] = attempts
        if state == "failed":
            break
        assert state == "pending" and next_at is not None
        schedule.append(next_at - now)
        now = next_at
    assert now - 1000.0 >= 24 * 3600 and now - 1000.0 < 24 * 3600 + 900
    assert schedule[:8] == [10, 20, 40, 80, 160, 320, 640, 900] and set(schedule[8:]) == {900}
    assert next_state({"created_at": 0.0, "attempts": 3}, True, 10.0 ** 9, policy) == ("delivered", 4, None)


def test_a_pending_earlier_delivery_blocks_the_later_ones_of_its_intervention_only() -> None:
    rows = [{"id": 1, "ordering_key": "pbx1/intervention/1"}, {"id": 2, "ordering_key": "pbx1/intervention/2"},
            {"id": 3, "ordering_key": "pbx1/intervention/1"}, {"id": 4, "ordering_key": "pbx2/intervention/9"}]
    assert [d["id"] for d in heads(rows, lambda node: True)] == [1, 2, 4]
    assert [d["id"] for d in heads(rows, lambda node: node == "pbx1")] == [1, 2]  # pbx2 is another instance's


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakePost:
    """A receiver that answers from a script and remembers what it was sent."""

    def __init__(self, answers: Mapping[str, list[str | None]] | None = None) -> None:
        self.answers = {k: list(v) for k, v in (answers or {}).items()}
        self.sent: list[tuple[str, dict[str, str], dict]] = []

    def __call__(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        doc = json.loads(body)
        self.sent.append((doc["event"], dict(headers), doc))
        script = self.answers.get(doc["event"])
        return script.pop(0) if script else None


def loop_for(engine, post, clock: Clock, receiver: WebhookConfig | None = None, **kw) -> ReceiverLoop:
    return ReceiverLoop(receiver or hook(), WebhookStore(engine), clock=clock, post=post, run=lambda fn: fn(), **kw)


def states(engine) -> list[tuple[str, str, int]]:
    with engine.connect() as c:
        return [(r["event"], r["state"], r["attempts"]) for r in reversed(queries.list_webhook_deliveries(c))]


def test_in_order_per_intervention_with_retries_then_failed_after_24_hours_then_retried(engine, tmp_path: Path) -> None:
    clock = Clock()
    audit = AuditStore(engine, hooks=[Outbox([hook()], clock=clock)])
    audit.apply_changes([opened_full("a"), mode("a", "listen", "m1"), opened_full("b", outcome="denied", reason="not_in_team")])
    post = FakePost({"intervention.started": ["HTTP 500", "timed out after 2s"]})
    loop = loop_for(engine, post, clock, poll=60.0)
    loop.deliver_once()
    # a's start failed: a's mode change waits behind it; b (another intervention) is delivered
    assert [e for e, _h, _d in post.sent] == ["intervention.started", "intervention.refused"]
    assert states(engine) == [("intervention.started", "pending", 1), ("intervention.mode_changed", "pending", 0),
                              ("intervention.refused", "delivered", 1)]
    assert loop.deliver_once() == pytest.approx(10.0)  # nothing due: the retry is in 10 s
    clock.now += 10
    loop.deliver_once()
    clock.now += 20
    loop.deliver_once()
    loop.deliver_once()
    assert [e for e, _h, _d in post.sent][2:] == ["intervention.started", "intervention.started", "intervention.mode_changed"]
    assert states(engine)[:2] == [("intervention.started", "delivered", 3), ("intervention.mode_changed", "delivered", 1)]
    # the same delivery id on every attempt; the signature is over the exact body
    ids = {h["X-Fsbarge-Delivery"] for e, h, _d in post.sent if e == "intervention.started"}
    assert len(ids) == 1
    event, headers, doc = post.sent[-1]
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    assert headers["X-Fsbarge-Signature"] == sign(SECRET, body) and headers["X-Fsbarge-Event"] == event

    # another intervention whose receiver never answers: given up after 24 h, then put back by an operator
    audit.apply_changes([opened_full("c")])
    down = FakePost({"intervention.started": ["HTTP 503"] * 200})
    loop = loop_for(engine, down, clock)
    start = clock.now
    for _ in range(200):  # 24 h of 15-minute retries is about 100 attempts
        if states(engine)[-1][1] != "pending":
            break
        loop.deliver_once()
        clock.now = max(clock.now, min(d["next_attempt_at"] for d in WebhookStore(engine).pending(URL)) if
                        WebhookStore(engine).pending(URL) else clock.now)
    assert states(engine)[-1][1] == "failed" and 24 * 3600 <= clock.now - start < 24 * 3600 + 900
    with engine.connect() as c:
        failed = queries.list_webhook_deliveries(c, state="failed")[0]
    assert failed["last_error"] == "HTTP 503"
    assert WebhookStore(engine).retry(failed["id"], clock.now) == "failed"
    loop = loop_for(engine, FakePost(), clock)
    loop.deliver_once()
    assert states(engine)[-1][1] == "delivered"
    with pytest.raises(ValueError):
        WebhookStore(engine).retry(failed["id"], clock.now)
    with pytest.raises(LookupError):
        WebhookStore(engine).retry(999, clock.now)


# --------------------------------------------------------------------------- a real HTTP server on loopback


@pytest.fixture
def sqlite_engine(db_path: Path):
    eng = make_engine(f"sqlite:///{db_path}")
    yield eng
    eng.dispose()


def one_delivery(engine, receiver_url: str, timeout: float = 2.0, secret: str = SECRET) -> tuple[ReceiverLoop, Clock]:
    r = hook(receiver_url, timeout=timeout, secret=secret)
    clock = Clock()
    AuditStore(engine, hooks=[Outbox([r], clock=clock)]).apply_changes([opened_full("a")])
    return ReceiverLoop(r, WebhookStore(engine), clock=clock, run=lambda fn: fn()), clock


def only(engine) -> dict:
    with engine.connect() as c:
        [row] = queries.list_webhook_deliveries(c)
    return row


def test_receiver_down_is_retried_later(sqlite_engine) -> None:
    loop, clock = one_delivery(sqlite_engine, f"http://127.0.0.1:{free_port()}/hook")
    loop.deliver_once()
    row = only(sqlite_engine)
    assert (row["state"], row["attempts"]) == ("pending", 1)
    assert "refused" in row["last_error"].lower() and row["next_attempt_at"] == pytest.approx(clock.now + 10, abs=0.01)


@pytest.mark.parametrize("behaviour, error", [("500", "HTTP 500"), ("hang", "timed out after 0.3s"), ("cut", "")])
def test_a_receiver_that_fails_is_retried_and_then_gets_the_same_delivery(sqlite_engine, behaviour: str, error: str) -> None:
    with Receiver(SECRET, behaviour=behaviour) as rx:
        loop, clock = one_delivery(sqlite_engine, rx.url, timeout=0.3)
        loop.deliver_once()
        row = only(sqlite_engine)
        assert (row["state"], row["attempts"]) == ("pending", 1), row
        assert error in row["last_error"]
        rx.release.set()
        rx.behaviour = "ok"
        clock.now += 10
        loop.deliver_once()
        row = only(sqlite_engine)
        assert (row["state"], row["attempts"], row["last_error"]) == ("delivered", 2, None)
        first, second = rx.requests
        assert first["delivery"] == second["delivery"] == row["delivery_id"] == second["json"]["delivery_id"]
        assert second["signature_ok"] and second["event"] == "intervention.started"
        assert second["json"]["intervention"]["supervisor_uuid"] == "sup-a"


def test_a_wrong_secret_is_caught_by_the_receiver(sqlite_engine) -> None:
    with Receiver("the-crm-expects-another-secret") as rx:
        loop, _clock = one_delivery(sqlite_engine, rx.url, secret=SECRET)
        loop.deliver_once()
        [req] = rx.requests
        assert not req["signature_ok"]
        assert (only(sqlite_engine)["state"], only(sqlite_engine)["last_error"]) == ("pending", "HTTP 401")
        rx.secret = SECRET  # the CRM is told the right secret
        loop.clock.now += 10  # type: ignore[attr-defined]
        loop.deliver_once()
        assert rx.requests[-1]["signature_ok"] and only(sqlite_engine)["state"] == "delivered"


def test_the_readme_check_accepts_a_real_delivery_and_refuses_it_replayed_later(sqlite_engine, monkeypatch) -> None:
    """The receiver's check printed in the README, on what went over the wire: the delivery verifies
    on arrival; the same bytes replayed six minutes later do not, nor with a fresh timestamp
    pasted in, while the body-only signature of SPEC.md would accept the replay for ever."""
    with Receiver(SECRET) as rx:
        loop, _clock = one_delivery(sqlite_engine, rx.url)
        loop.deliver_once()
        [req] = rx.requests
    assert req["signature_ok"] and only(sqlite_engine)["state"] == "delivered"
    verified, headers, body = readme_verified(), req["headers"], req["body"]
    sent = int(headers["X-Fsbarge-Timestamp"])
    assert abs(sent - time.time()) < 60 and headers["X-Fsbarge-Signature-V2"] == sign_timestamped(SECRET, sent, body)
    assert verified(body, headers, SECRET)
    assert not verified(body, headers, "another-secret-of-16")
    assert not verified(body + b" ", headers, SECRET)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 360)
    assert not verified(body, headers, SECRET)  # replayed 6 minutes later
    assert not verified(body, {**headers, "X-Fsbarge-Timestamp": str(int(time.time()))}, SECRET)
    assert headers["X-Fsbarge-Signature"] == sign(SECRET, body)  # body-only: no defence against the replay


# --------------------------------------------------------------------------- the command line


def test_webhooks_list_and_retry(db_path: Path, capsys) -> None:
    engine = make_engine(f"sqlite:///{db_path}")
    AuditStore(engine, hooks=[Outbox([hook()])]).apply_changes([opened_full("a"), close("a")])
    store = WebhookStore(engine)
    first, second = store.pending(URL)
    store.record_attempt(first["id"], state="failed", attempts=90, at=5.0, next_attempt_at=None, error="HTTP 502")
    store.record_attempt(second["id"], state="delivered", attempts=1, at=6.0, next_attempt_at=None, error=None)
    url = f"sqlite:///{db_path}"
    assert main(["webhooks", "list", "--database", url, "--format", "json", "--state", "failed"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["id"], row["event"], row["state"], row["attempts"], row["last_error"]) == (
        first["id"], "intervention.started", "failed", 90, "HTTP 502")
    assert main(["webhooks", "list", "--database", url]) == 0
    table = capsys.readouterr().out
    assert "intervention.ended" in table and "delivered" in table and SECRET not in table
    assert main(["webhooks", "retry", str(first["id"]), "--database", url]) == 0
    assert "failed -> pending" in capsys.readouterr().out
    assert [d["id"] for d in store.pending(URL)] == [first["id"]]
    assert main(["webhooks", "retry", str(second["id"]), "--database", url]) == 1
    assert "already delivered" in capsys.readouterr().err
    assert main(["webhooks", "retry", "77", "--database", url]) == 1
    assert "no webhook delivery with id 77" in capsys.readouterr().err
    assert main(["status", "--database", url, "--format", "json"]) == 3  # no daemon; the backlog is still shown
    doc = json.loads(capsys.readouterr().out)
    assert doc["backlogs"]["webhooks"] == 1 and doc["webhooks"] == {"pending": 1, "failed": 0}
    engine.dispose()


# --------------------------------------------------------------------------- configuration

BASE = '[[freeswitch]]\nname = "pbx1"\nhost = "127.0.0.1"\npassword = "ClueCon"\n[[teams]]\nname = "s"\nagents = ["1000"]\nsupervisors = ["1002"]\n'
LEAKY = "leaky-secret-value-0123"


@pytest.mark.parametrize(
    "table, env, error",
    [
        ('url = "https://crm.example/h"', {}, "webhooks[0].secret: set exactly one of secret or secret_env"),
        (f'url = "https://crm.example/h"\nsecret = "{LEAKY}"\nsecret_env = "X"', {}, "webhooks[0].secret: set exactly one"),
        ('url = "https://crm.example/h"\nsecret_env = "HOOK"', {}, "webhooks[0].secret_env: environment variable HOOK is not set or empty"),
        ('url = "https://crm.example/h"\nsecret = "short"', {}, "webhooks[0].secret: the secret must be at least 16 characters"),
        (f'url = "crm.example/h"\nsecret = "{LEAKY}"', {}, "webhooks[0].url: must be an http:// or https:// URL"),
        (f'url = "https://crm.example/h"\nsecret = "{LEAKY}"\nevents = ["intervention.begun"]', {},
         'webhooks[0].events[0]: unknown event "intervention.begun"'),
        (f'url = "https://crm.example/h"\nsecret = "{LEAKY}"\nevents = []', {}, "webhooks[0].events: must be a non-empty array"),
        (f'url = "https://crm.example/h"\nsecret = "{LEAKY}"\ntimeout = 0', {}, "webhooks[0].timeout: must be a number of seconds"),
        (f'url = "https://crm.example/h"\nsecret = "{LEAKY}"\nsecrets = 1', {}, 'webhooks[0].secrets: unknown key (did you mean "secret"?)'),
        (f'url = "https://crm.example/h"\nsecret = "{LEAKY}"\n[[webhooks]]\nurl = "https://crm.example/h"\nsecret = "{LEAKY}"', {},
         'webhooks[1].url: "https://crm.example/h" is already webhooks[0]'),
    ],
)
def test_webhook_configuration_errors_are_one_line_naming_the_key_and_never_the_secret(table: str, env: dict, error: str) -> None:
    from fsbarge.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + "[[webhooks]]\n" + table + "\n", "/etc/fsbarge/fsbarge.toml", env)
    message = str(caught.value)
    assert message.startswith("/etc/fsbarge/fsbarge.toml: " + error), message
    assert "\n" not in message and LEAKY not in message


def test_a_secret_from_the_environment_is_used_hidden_and_redacted_from_logs() -> None:
    from fsbarge.config import parse_config

    config = parse_config(BASE + '[[webhooks]]\nurl = "https://crm.example/h"\nsecret_env = "HOOK"\n', "f.toml", {"HOOK": LEAKY})
    [w] = config.webhooks
    from fsbarge.core.terms import WEBHOOK_EVENTS

    assert (w.secret, w.events, w.timeout) == (LEAKY, WEBHOOK_EVENTS, 10.0)  # all events by default
    assert LEAKY not in repr(config) and LEAKY in config.all_passwords()


def test_a_long_blocked_backlog_does_not_hide_the_next_intervention(engine) -> None:
    audit = AuditStore(engine, hooks=[Outbox([hook()])])
    audit.apply_changes([opened_full("a"), *(mode("a", "listen", f"m{i}") for i in range(30)), opened_full("b")])
    store = WebhookStore(engine)
    assert len(store.pending(URL)) == 32
    assert [json.loads(d["body"])["intervention"]["supervisor_uuid"] for d in store.heads(URL)] == ["sup-a", "sup-b"]
    assert [d["event"] for d in store.heads(URL)] == ["intervention.started", "intervention.started"]


def test_direct_writes_of_tools_and_tests_are_events_too(engine) -> None:
    audit = AuditWriter(engine, hooks=[Outbox([hook()])])
    common = dict(node="pbx1", supervisor="1002", supervisor_uuid="s", agent="1000", target_uuid="t", customer="1001",
                  requested_mode="listen", started_at=10.0)
    active = audit.create(outcome="active", reason=None, **common)
    audit.add_mode(active, "listen", 10.5, "feature_code")
    audit.close(active, outcome="completed", ended_at=20.0, end_reason="supervisor_hangup")
    audit.create(outcome="denied", reason="not_in_team", **common)
    assert [r["event"] for r in outbox_rows(engine)] == [
        "intervention.started", "intervention.mode_changed", "intervention.ended", "intervention.refused"]
