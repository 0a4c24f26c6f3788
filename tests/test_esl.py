"""fsbarge.daemon.esl (the supervised Event Socket connection) against the simulator over real TCP, and
fsbarge.core.commands (effects -> exact ESL command text).

The simulator runs in this process's gevent hub; every wait is on a condition with a timeout.
Connect/command timeouts and backoff values are small so that the whole module stays fast.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent
import pytest
import structlog
from gevent.server import StreamServer
from structlog.testing import capture_logs
from tenacity import RetryCallState, Retrying

from fsbarge.core import commands
from fsbarge.core.barge import Execute, SendKey
from fsbarge.config import NodeConfig
from fsbarge.daemon.esl.connection import AuthRejected, CommandTimeout, ConnectError, ConnectionLost
from fsbarge.daemon.esl import link as link_module
from fsbarge.daemon.esl.link import NodeLink, _Backoff
from fsbarge.daemon.esl.session import EslSession
from fsbarge.core.events import SUBSCRIBED_EVENTS, Event
from fsbarge.sim import FreeSwitchSim, malformed
from tests.e2e import WAIT, wait_until
from tests.sim_fixtures import sim  # noqa: F401  (the simulator fixture)

SUBSCRIBE = "event plain " + " ".join(SUBSCRIBED_EVENTS)
FAST = dict(backoff_initial=0.01, backoff_max=0.05, auth_wait=0.3)


def node_for(
    port: int, password: str = "ClueCon", connect_timeout: float = 1.0, command_timeout: float = 0.5, idle_timeout: float = 30.0
) -> NodeConfig:
    return NodeConfig(
        "pbx1", "127.0.0.1", port, password=password, connect_timeout=connect_timeout, command_timeout=command_timeout,
        idle_timeout=idle_timeout,
    )


@dataclass
class Recorder:
    """Minimal NodeLink callbacks: on_connected proves the session works (api status) and records it.

    ``hook(session, call_number)`` runs first in on_connected (it may raise to fail the connect);
    ``after(session)`` runs once on_connected has succeeded.
    """

    hook: Callable[[EslSession, int], None] | None = None
    after: Callable[[EslSession], None] | None = None
    events: list[Event] = field(default_factory=list)
    sessions: list[EslSession] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    connected_at: list[float] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)
    calls: int = 0

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def on_connected(self, session: EslSession) -> None:
        self.calls += 1
        if self.hook is not None:
            self.hook(session, self.calls)
        self.statuses.append(session.api("status"))
        self.sessions.append(session)
        self.connected_at.append(time.monotonic())
        if self.after is not None:
            self.after(session)

    def on_disconnected(self, reason: str) -> None:
        self.disconnects.append(reason)

    def wait_sessions(self, count: int, timeout: float = WAIT) -> EslSession:
        wait_until(lambda: len(self.sessions) >= count, timeout, f"connection #{count}")
        return self.sessions[count - 1]

    def wait_event(self, predicate: Callable[[Event], bool], timeout: float = WAIT) -> Event:
        return wait_until(lambda: next((e for e in self.events if predicate(e)), None), timeout, "an event")


@pytest.fixture
def start_link(sim: FreeSwitchSim) -> Iterator[Callable[..., tuple[NodeLink, gevent.Greenlet]]]:
    """Factory: a NodeLink running in its own greenlet; stopped (and checked to end cleanly) afterwards."""
    running: list[tuple[NodeLink, gevent.Greenlet]] = []

    def start(node: NodeConfig, rec: Recorder, **kw: Any) -> tuple[NodeLink, gevent.Greenlet]:
        link = NodeLink(
            node,
            on_event=rec.on_event,
            on_connected=rec.on_connected,
            on_disconnected=rec.on_disconnected,
            **{**FAST, **kw},
        )
        greenlet = gevent.spawn(link.run)
        running.append((link, greenlet))
        return link, greenlet

    yield start
    for link, greenlet in running:
        link.stop()
        greenlet.join(timeout=WAIT)
        assert greenlet.dead, "NodeLink.run() did not end after stop()"
        assert greenlet.exception is None, repr(greenlet.exception)


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    """Every structlog entry as data (at every level) while the test runs; NodeLinks made inside see it."""
    wrapper = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as entries:
            yield entries
    finally:
        structlog.configure(wrapper_class=wrapper)


def entries(logs: list[dict[str, Any]], level: str, text: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["log_level"] == level and text in e["event"]]


def commands_of(sim: FreeSwitchSim, conn_id: int) -> list[str]:
    return [text for cid, text in sim.received_commands if cid == conn_id]


def auth_times(sim: FreeSwitchSim, count: int, timeout: float = WAIT) -> list[float]:
    """When each of the first ``count`` 'auth' commands reached the simulator (waiting for each)."""
    times = []
    for n in range(1, count + 1):
        sim.wait_for(lambda: sum(1 for _, t in sim.received_commands if t.startswith("auth ")) >= n, timeout)
        times.append(time.monotonic())
    return times


# --------------------------------------------------------------------------- connect and subscribe


def test_connects_authenticates_and_subscribes_to_exactly_the_events_fsbarge_reads(sim, start_link) -> None:
    """First auth, then one `event plain` naming SUBSCRIBED_EVENTS (never ALL), then on_connected."""
    rec = Recorder()
    link, _ = start_link(node_for(sim.port), rec)
    session = rec.wait_sessions(1)
    [client] = sim.wait_for_clients(1, subscribed=True)
    assert commands_of(sim, client.id)[:3] == ["auth ClueCon", SUBSCRIBE, "api status"]
    assert "ALL" not in SUBSCRIBE.split()
    # every word after CUSTOM is a subclass (the help requests' fsbarge::help)
    custom = SUBSCRIBED_EVENTS.index("CUSTOM")
    assert client.events == frozenset(SUBSCRIBED_EVENTS[: custom + 1]) and not client.all_events
    assert client.customs == frozenset(SUBSCRIBED_EVENTS[custom + 1 :]) == {"fsbarge::help"}
    assert rec.statuses[0].startswith("UP ") and "is ready" in rec.statuses[0]
    assert link.connects == 1 and link.session is session and session.connected


def test_events_reach_on_event_as_typed_events_and_unsubscribed_ones_do_not(sim, start_link) -> None:
    """A call's subscribed events arrive as fsbarge.core.events.Event; events fsbarge did not ask for never do."""
    rec = Recorder()
    start_link(node_for(sim.port), rec)
    rec.wait_sessions(1)
    call = sim.place_call("1001", "1000")
    rec.wait_event(lambda e: e.name == "CHANNEL_ANSWER" and e.uuid == call.b_uuid)
    created = rec.wait_event(lambda e: e.name == "CHANNEL_CREATE" and e.uuid == call.a_uuid)
    assert all(isinstance(e, Event) for e in rec.events)
    assert created.caller_number == "1001" and created.direction == "inbound"
    fired = {e.name for e in sim.events}
    assert fired - set(SUBSCRIBED_EVENTS), "the simulator fired only subscribed events: nothing to filter"
    assert {e.name for e in rec.events} <= set(SUBSCRIBED_EVENTS)


def test_a_hostile_header_value_cannot_forge_the_unique_id(sim, start_link) -> None:
    """An encoded newline in a caller-controlled header stays inside that value (split, then decode)."""
    rec = Recorder()
    start_link(node_for(sim.port), rec)
    rec.wait_sessions(1)
    real, forged = "11111111-2222-3333-4444-555555555555", "00000000-0000-0000-0000-000000000000"
    sim.send_raw(malformed.hostile_header_event(real, forged))
    park = rec.wait_event(lambda e: e.name == "CHANNEL_PARK")
    assert park.uuid == real


# --------------------------------------------------------------------------- reconnecting


@pytest.mark.parametrize("how", ["drop", "rst", "notice"])
def test_reconnects_resubscribes_and_recalls_on_connected_after_the_connection_is_lost(sim, start_link, how: str) -> None:
    """Socket closed without notice, reset, or a disconnect notice: the link reconnects on its own."""
    rec = Recorder()
    link, _ = start_link(node_for(sim.port), rec)
    old = rec.wait_sessions(1)
    {"drop": sim.drop_connections, "rst": lambda: sim.drop_connections(rst=True), "notice": sim.send_disconnect_notice}[how]()
    new = rec.wait_sessions(2)
    assert new is not old and not old.connected
    with pytest.raises(ConnectionLost):
        old.api("status")
    assert len(rec.disconnects) == 1 and rec.disconnects[0]
    if how == "notice":
        assert "disconnect notice" in rec.disconnects[0]
    [client] = sim.wait_for_clients(1, subscribed=True)
    assert commands_of(sim, client.id)[:2] == ["auth ClueCon", SUBSCRIBE]
    assert link.connects == 2
    call = sim.place_call("1001", "1000")
    rec.wait_event(lambda e: e.name == "CHANNEL_CREATE" and e.uuid == call.a_uuid)


def test_refused_connections_are_retried_until_freeswitch_listens_again(sim, start_link, logs) -> None:
    """While nothing listens, each attempt fails and is logged; once it listens again the link connects."""
    rec = Recorder()
    link, _ = start_link(node_for(sim.port), rec)
    rec.wait_sessions(1)
    sim.refuse_connections = True
    sim.drop_connections()
    wait_until(lambda: len(entries(logs, "warning", "cannot connect")) >= 3, what="three refused attempts")
    assert link.session is None and len(rec.sessions) == 1
    sim.refuse_connections = False
    rec.wait_sessions(2)
    assert link.connects == 2


def test_a_stalled_reply_raises_command_timeout_and_the_link_reconnects(sim, start_link) -> None:
    """A command with no reply raises CommandTimeout after command_timeout; the session is dropped and renewed."""
    rec = Recorder()
    start_link(node_for(sim.port, command_timeout=0.3), rec)
    session = rec.wait_sessions(1)
    sim.stall_replies(True)
    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        session.api("status")
    elapsed = time.monotonic() - started
    sim.stall_replies(False)
    assert 0.29 <= elapsed < WAIT  # not before command_timeout; and it does end
    assert not session.connected
    rec.wait_sessions(2)
    assert "timed out" in rec.disconnects[0]


def test_a_stalled_handshake_times_out_and_is_retried(sim, start_link) -> None:
    """No reply to `auth` within connect_timeout: that attempt is abandoned and a new one made."""
    sim.stall_replies(True)
    rec = Recorder()
    start_link(node_for(sim.port, connect_timeout=0.25), rec)
    first, second = auth_times(sim, 2)
    assert second - first >= 0.2
    ids = {cid for cid, t in sim.received_commands if t.startswith("auth ")}
    assert len(ids) == 2, "each attempt is a fresh connection"
    sim.stall_replies(False)
    rec.wait_sessions(1)
    assert rec.calls == 1


def _silent_server(accepted: list[float], hung_up: list[float]) -> StreamServer:
    """A hung FreeSWITCH: sends auth/request, never answers, and notes when the client hangs up."""

    def handle(sock: Any, _addr: Any) -> None:
        accepted.append(time.monotonic())
        sock.sendall(b"Content-Type: auth/request\n\n")
        while True:
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                break
        hung_up.append(time.monotonic())

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    return server


def test_an_abandoned_handshake_closes_its_socket(sim, start_link) -> None:
    """A handshake that timed out is not left open: the peer sees the socket closed (no fd leak per retry)."""
    accepted: list[float] = []
    hung_up: list[float] = []
    server = _silent_server(accepted, hung_up)
    try:
        start_link(node_for(server.server_port, connect_timeout=0.2), Recorder())
        wait_until(lambda: len(accepted) >= 2, what="a second attempt")
        wait_until(lambda: hung_up, what="the first attempt's socket closed")
    finally:
        server.stop(timeout=1)


# --------------------------------------------------------------------------- a rejected password


def retry_state(attempt: int, exc: BaseException) -> RetryCallState:
    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


@pytest.mark.parametrize("attempt", [1, 2, 3, 6, 20])
@pytest.mark.parametrize(
    "exc",
    [ConnectError("refused"), ConnectionLost("eof"), CommandTimeout("no reply"), AuthRejected("password rejected")],
    ids=lambda e: type(e).__name__,
)
def test_backoff_is_capped_exponential_and_at_least_auth_wait_after_a_rejection(attempt: int, exc: BaseException) -> None:
    """Delays grow as initial*2^(n-1) (+ jitter up to initial), capped at the maximum; a rejected
    password always waits at least auth_wait."""
    initial, maximum, auth_wait = 0.1, 1.0, 5.0
    wait = _Backoff(initial, maximum, auth_wait)
    base = initial * 2 ** (attempt - 1)
    delays = [wait(retry_state(attempt, exc)) for _ in range(50)]
    if isinstance(exc, AuthRejected):
        assert all(d >= auth_wait for d in delays)
    else:
        assert all(min(base, maximum) <= d <= min(base + initial, maximum) + 1e-9 for d in delays), delays


def test_a_wrong_password_is_logged_once_per_attempt_without_the_password_and_retried_slowly(
    sim, start_link, logs
) -> None:
    """AuthRejected: an error line that names the problem but not the secret; the next attempt waits auth_wait."""
    rec = Recorder()
    link, _ = start_link(node_for(sim.port, password="Wr0ngPass"), rec, auth_wait=0.4)
    first, second = auth_times(sim, 2)
    assert second - first >= 0.4
    errors = entries(logs, "error", "password")
    assert errors, logs
    assert errors[0]["retry_in"] >= 0.4
    assert not any("Wr0ngPass" in repr(e) for e in logs)
    assert rec.calls == 0 and link.connects == 0 and link.session is None


def test_a_rejected_auth_is_retried_and_connects_once_accepted(sim, start_link, logs) -> None:
    """FreeSWITCH answering `-ERR invalid` is survived: once it accepts, the link connects."""
    sim.reject_auth = True
    rec = Recorder()
    start_link(node_for(sim.port), rec, auth_wait=0.1)
    wait_until(lambda: entries(logs, "error", "password"), what="the rejection logged")
    sim.reject_auth = False
    rec.wait_sessions(1)
    assert not any("ClueCon" in repr(e) for e in logs)


def _rude_server(accepted: list[float]) -> StreamServer:
    """A listener that does what mod_event_socket does to a client its ACL refuses."""

    def handle(sock: Any, _addr: Any) -> None:
        accepted.append(time.monotonic())
        body = b"Access Denied, go away.\n"
        sock.sendall(b"Content-Type: text/rude-rejection\nContent-Length: %d\n\n%s" % (len(body), body))
        sock.close()

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    return server


def test_an_acl_rejection_is_handled_like_a_rejected_password(sim, start_link, logs) -> None:
    """text/rude-rejection ends the attempt as AuthRejected: logged as an error and retried after auth_wait."""
    accepted: list[float] = []
    server = _rude_server(accepted)
    try:
        rec = Recorder()
        start_link(node_for(server.server_port), rec, auth_wait=0.3)
        wait_until(lambda: len(accepted) >= 2, what="a second attempt")
        assert accepted[1] - accepted[0] >= 0.3
        assert entries(logs, "error", "")
        assert rec.calls == 0
    finally:
        server.stop()


# --------------------------------------------------------------------------- bad input, failing resync


def test_malformed_frames_are_skipped_with_a_warning_and_the_connection_kept(sim, start_link, logs) -> None:
    """Garbage headers, a bad Content-Length, a nameless event, an unknown type, non-UTF-8: skipped."""
    rec = Recorder()
    link, _ = start_link(node_for(sim.port), rec)
    session = rec.wait_sessions(1)
    for name, make in malformed.SAMPLES.items():
        assert sim.send_raw(make()) == 1, name
    call = sim.place_call("1001", "1000")
    rec.wait_event(lambda e: e.name == "CHANNEL_CREATE" and e.uuid == call.a_uuid)
    assert session.api("status").startswith("UP ")
    assert link.connects == 1 and len(rec.sessions) == 1 and rec.disconnects == []
    assert entries(logs, "warning", "malformed ESL frame")
    assert entries(logs, "warning", "without Event-Name")
    # the well-framed event with Latin-1 bytes is still delivered, undecodable bytes replaced
    rec.wait_event(lambda e: e.name == "CHANNEL_CREATE" and e.uuid == "00000000-0000-0000-0000-000000000000")
    # counted for fsbarge_malformed_frames_total, each skipped one once; the rest by name
    skipped = len(entries(logs, "warning", "malformed ESL frame")) + len(entries(logs, "warning", "without Event-Name"))
    assert link.counts["malformed"] == skipped >= 2
    assert link.stats.by_name["CHANNEL_CREATE"] >= 3 and link.counts["connects"] == 1


def _raise_connect_error(session: EslSession, n: int) -> None:
    if n == 1:
        raise ConnectError("resync failed")


def _drop_during_resync(sim: FreeSwitchSim) -> Callable[[EslSession, int], None]:
    def hook(session: EslSession, n: int) -> None:
        if n == 1:
            sim.drop_connections()
            session.api("show channels as json")  # ConnectionLost

    return hook


def _stall_during_resync(sim: FreeSwitchSim) -> Callable[[EslSession, int], None]:
    def hook(session: EslSession, n: int) -> None:
        if n == 1:
            sim.stall_replies(True)
            try:
                session.api("show channels as json")  # CommandTimeout
            finally:
                sim.stall_replies(False)

    return hook


@pytest.mark.parametrize("how", ["raises ConnectError", "connection dropped", "reply stalled"])
def test_a_connect_error_in_on_connected_is_retried_on_a_fresh_connection(sim, start_link, logs, how: str) -> None:
    """on_connected failing with a ConnectError (its own, or a command's) closes that session and retries."""
    hook = {
        "raises ConnectError": _raise_connect_error,
        "connection dropped": _drop_during_resync(sim),
        "reply stalled": _stall_during_resync(sim),
    }[how]
    rec = Recorder(hook=hook)
    link, _ = start_link(node_for(sim.port, command_timeout=0.3), rec)
    session = rec.wait_sessions(1)
    assert rec.calls == 2 and link.connects == 1 and link.session is session
    authed = {cid for cid, t in sim.received_commands if t == "auth ClueCon"}
    assert len(authed) == 2
    assert entries(logs, "warning", "cannot connect")


def test_a_session_abandoned_in_on_connected_is_closed_and_delivers_no_events(sim, start_link) -> None:
    """After on_connected failed, the abandoned connection is closed: FreeSWITCH sees one client and
    no event reaches on_event twice."""
    rec = Recorder(hook=_raise_connect_error)
    start_link(node_for(sim.port), rec)
    rec.wait_sessions(1)
    call = sim.place_call("1001", "1000")
    rec.wait_event(lambda e: e.name == "CHANNEL_ANSWER" and e.uuid == call.b_uuid)
    creates = [e for e in rec.events if e.name == "CHANNEL_CREATE" and e.uuid == call.a_uuid]
    assert len(creates) == 1, "the abandoned connection is still subscribed and delivering events"
    sim.wait_for(lambda: len(sim.clients()) == 1)


def test_a_refused_subscription_is_retried_and_never_reported_as_connected(sim, start_link, logs) -> None:
    """`event plain` answered with -ERR: on_connected is not called, the attempt is retried."""
    rec = Recorder()
    start_link(node_for(sim.port), rec, events=("NO_SUCH_EVENT",))
    sim.wait_for(lambda: sum(1 for _, t in sim.received_commands if t == "event plain NO_SUCH_EVENT") >= 2)
    assert rec.calls == 0
    assert any("subscription refused" in str(e.get("error")) for e in entries(logs, "warning", "cannot connect"))


def test_pending_commands_fail_with_connection_lost_when_the_socket_drops(sim, start_link) -> None:
    """Commands waiting for replies fail at once with ConnectionLost when the socket goes, not at the timeout."""
    rec = Recorder()
    start_link(node_for(sim.port, command_timeout=WAIT), rec)
    session = rec.wait_sessions(1)
    sim.stall_replies(True)
    try:
        pipelined = gevent.spawn(session.apis, ["status", "global_getvar core_uuid"])
        single = gevent.spawn(session.api, "show channels as json")
        for text in ("api global_getvar core_uuid", "api show channels as json"):
            sim.wait_for_command(lambda t, text=text: t == text)
        sim.drop_connections()
        gevent.joinall([pipelined, single], timeout=WAIT)  # command_timeout is WAIT: ConnectionLost comes first
    finally:
        sim.stall_replies(False)
    for g in (pipelined, single):
        assert g.dead
        assert isinstance(g.exception, ConnectionLost) and not isinstance(g.exception, CommandTimeout), g.exception
    rec.wait_sessions(2)


def test_a_connection_that_keeps_dying_at_once_is_not_reconnected_in_a_tight_loop(sim, start_link) -> None:
    """A node that drops every connection right after it is set up is retried with backoff, not hammered."""
    backoff = 0.05
    rec = Recorder(after=lambda session: sim.drop_connections())
    start_link(node_for(sim.port), rec, backoff_initial=backoff, backoff_max=1.0)
    rec.wait_sessions(5)
    first = rec.connected_at[:5]
    gaps = [b - a for a, b in zip(first, first[1:])]
    assert sum(gaps) >= 3 * backoff, f"5 connections in {sum(gaps):.3f}s: {gaps}"


def test_quick_losses_grow_the_one_backoff_and_a_session_that_lasted_starts_it_again(
    sim, start_link, logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lost session is a failure of the same backoff as a failed connect: four quick losses wait
    initial, 2x, 4x, 8x; the loss of a session that lasted STABLE_SECONDS waits like a first failure."""
    stable, initial = 0.3, 0.05
    monkeypatch.setattr(link_module, "STABLE_SECONDS", stable)
    rec = Recorder(after=lambda session: sim.drop_connections() if len(rec.sessions) <= 4 else None)
    start_link(node_for(sim.port), rec, backoff_initial=initial, backoff_max=10.0)
    rec.wait_sessions(5)
    # the link's own timer for "stable" fires before this wait ends (same hub, earlier deadline)
    wait_until(lambda: time.monotonic() - rec.connected_at[4] > 2 * stable, what="the fifth session to last")
    sim.drop_connections()
    rec.wait_sessions(6)
    waits = [e["retry_in"] for e in entries(logs, "debug", "reconnecting to FreeSWITCH")]
    assert len(waits) == 5, waits
    for n, wait in enumerate(waits[:4]):
        assert initial * 2**n - 0.001 <= wait <= initial * 2**n + initial + 0.001, waits
    assert initial - 0.001 <= waits[4] <= 2 * initial + 0.001, waits


# --------------------------------------------------------------------------- a silent FreeSWITCH


@dataclass
class GoesSilent:
    """A small fake Event Socket server: authenticates, accepts the subscription, then never sends
    another byte and never closes (a hung FreeSWITCH, or a firewall that dropped the flow). It notes
    what it read and when the client hung up."""

    received: list[tuple[int, str]] = field(default_factory=list)
    subscribed: list[float] = field(default_factory=list)
    hung_up: list[float] = field(default_factory=list)
    connections: int = 0

    def handle(self, sock: Any, _addr: Any) -> None:
        self.connections += 1
        conn = self.connections
        sock.sendall(b"Content-Type: auth/request\n\n")
        buf = b""
        while True:
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                break
            buf += data
            while b"\n\n" in buf:
                text, buf = buf.split(b"\n\n", 1)
                command = text.decode()
                self.received.append((conn, command))
                if command.startswith("auth "):
                    sock.sendall(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
                elif command.startswith("event plain "):
                    sock.sendall(b"Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n")
                    self.subscribed.append(time.monotonic())
                # anything else: silence
        self.hung_up.append(time.monotonic())


@pytest.fixture
def goes_silent() -> Iterator[tuple[GoesSilent, int]]:
    fake = GoesSilent()
    server = StreamServer(("127.0.0.1", 0), fake.handle)
    server.start()
    try:
        yield fake, server.server_port
    finally:
        server.stop(timeout=1)


def test_a_connection_that_goes_silent_is_probed_dropped_and_renewed(goes_silent, start_link, logs) -> None:
    """Subscribed, then nothing at all: after idle_timeout the link sends `api status`; with no reply
    within command_timeout it closes the socket, says so in one error line, and connects again."""
    fake, port = goes_silent
    rec = Recorder()
    rec.on_connected = rec.sessions.append  # type: ignore[method-assign]  # (its `api status` would get no reply)
    link, _ = start_link(node_for(port, idle_timeout=0.3, command_timeout=0.3), rec)
    wait_until(lambda: fake.hung_up, timeout=30, what="the link to give up on the silent connection")
    silent_for = fake.hung_up[0] - fake.subscribed[0]
    assert silent_for >= 0.55, f"dropped after {silent_for:.2f}s, before idle_timeout + command_timeout"
    assert [c for n, c in fake.received if n == 1] == ["auth ClueCon", SUBSCRIBE, "api status"]
    wait_until(lambda: fake.connections >= 2 and len(fake.subscribed) >= 2, timeout=30, what="a fresh connection")
    assert link.probes >= 1
    line = entries(logs, "error", "no event or reply from FreeSWITCH for")[0]
    assert line["event"].endswith("s; reconnecting") and line["node"] == "pbx1"
    assert rec.disconnects[0] == line["event"]
    assert not entries(logs, "warning", "lost FreeSWITCH connection")  # one line, not two


def test_a_quiet_freeswitch_that_answers_the_probe_keeps_its_connection(sim, start_link) -> None:
    """No events for a while is not a fault: the probe is answered and the same session goes on."""
    rec = Recorder()
    link, _ = start_link(node_for(sim.port, idle_timeout=0.2), rec)
    rec.wait_sessions(1)
    [client] = sim.wait_for_clients(1)
    wait_until(lambda: link.probes >= 3, timeout=30, what="three probes")
    assert commands_of(sim, client.id).count("api status") >= 3  # on_connected's own + the probes
    assert link.connects == 1 and rec.disconnects == [] and link.health.problems == []


def test_a_connection_lost_while_the_probe_waits_is_renewed_like_any_other(sim, start_link, logs) -> None:
    """The probe is waiting for its reply when the socket drops: an ordinary loss (a warning, no
    silence reported), and a new connection; the link does not spin probing a dead session."""
    rec = Recorder()
    link, _ = start_link(node_for(sim.port, idle_timeout=0.2, command_timeout=5.0), rec)
    rec.wait_sessions(1)
    sim.stall_replies(True)
    try:
        wait_until(lambda: link.probes >= 1, timeout=30, what="a probe (written, waiting for its reply)")
        sim.drop_connections()
        wait_until(lambda: rec.disconnects, timeout=30, what="the loss")
    finally:
        sim.stall_replies(False)
    rec.wait_sessions(2, timeout=30)
    assert not rec.disconnects[0].startswith("no event or reply") and link.health.problems == []
    assert entries(logs, "warning", "lost FreeSWITCH connection")


def test_anything_read_counts_as_a_sign_of_life(sim, start_link) -> None:
    """A HEARTBEAT (FreeSWITCH sends one every 20 s) resets the silence: no probe is needed."""
    rec = Recorder()
    link, _ = start_link(node_for(sim.port), rec)
    session = rec.wait_sessions(1)
    wait_until(lambda: session.silent_for() > 0.2, timeout=30, what="a silence")
    sim.heartbeat()
    rec.wait_event(lambda e: e.name == "HEARTBEAT", timeout=30)
    assert session.silent_for() < 0.2 and link.probes == 0


def test_a_silenced_simulator_is_noticed_reported_and_reconnected_once_it_speaks(sim, start_link, logs) -> None:
    """The simulator's silent stall: the link drops the connection, `fsbarge status`'s problem list
    names it while new connections get no answer either, and it clears once a session is back."""
    rec = Recorder()
    link, _ = start_link(node_for(sim.port, connect_timeout=0.3, idle_timeout=0.3, command_timeout=0.3), rec)
    rec.wait_sessions(1)
    [old] = sim.wait_for_clients(1)
    sim.silence()
    wait_until(lambda: rec.disconnects, timeout=30, what="the silence to be noticed")
    assert rec.disconnects[0].startswith("no event or reply from FreeSWITCH for")
    assert link.health.problems == [rec.disconnects[0]]
    sim.wait_for(lambda: old.id not in [c.id for c in sim.clients()], timeout=30)  # the link closed it
    wait_until(lambda: entries(logs, "warning", "cannot connect"), timeout=30, what="a new attempt, unanswered too")
    assert link.health.problems and link.session is None
    sim.silence(False)
    rec.wait_sessions(2, timeout=30)
    assert link.health.problems == []
    assert len(entries(logs, "error", "no event or reply from FreeSWITCH")) == 1


# --------------------------------------------------------------------------- stopping


@pytest.mark.parametrize("why", ["refused", "auth rejected"])
def test_stop_ends_run_promptly_while_waiting_in_backoff(sim, start_link, logs, why: str) -> None:
    """stop() during a long backoff (refused port, or a rejected password) ends run() at once."""
    if why == "refused":
        sim.refuse_connections = True
        node, waiting = node_for(sim.port), lambda: entries(logs, "warning", "cannot connect")
    else:
        node, waiting = node_for(sim.port, password="Wr0ngPass"), lambda: entries(logs, "error", "password")
    backoff = 2 * WAIT
    link, greenlet = start_link(node, Recorder(), backoff_initial=backoff, backoff_max=backoff, auth_wait=backoff)
    wait_until(waiting, what="the first failed attempt")
    link.stop()
    greenlet.join(timeout=WAIT)
    assert greenlet.dead and greenlet.exception is None  # long before the backoff was over


def test_stop_while_connected_ends_run_and_closes_the_connection(sim, start_link) -> None:
    """stop() with a live session: run() returns and FreeSWITCH sees the socket close."""
    rec = Recorder()
    link, greenlet = start_link(node_for(sim.port), rec)
    session = rec.wait_sessions(1)
    sim.wait_for_clients(1)
    link.stop()
    greenlet.join(timeout=WAIT)
    assert greenlet.dead and greenlet.exception is None
    assert link.connects == 1 and link.session is None
    sim.wait_for(lambda: not sim.clients())
    with pytest.raises(ConnectionLost):
        session.api("status")


# --------------------------------------------------------------------------- fsbarge.core.commands


SUP = "50000000-0000-0000-0000-000000000sup"


@pytest.mark.parametrize(
    "effect,text",
    [
        (
            Execute(SUP, "eavesdrop", "a0000000-0000-0000-0000-00000000agnt", event_uuid="e1"),
            f"sendmsg {SUP}\ncall-command: execute\nexecute-app-name: eavesdrop\n"
            "execute-app-arg: a0000000-0000-0000-0000-00000000agnt\nEvent-UUID: e1",
        ),
        (
            Execute(SUP, "playback", "tone_stream://%(200,100,480,620);loops=3"),
            f"sendmsg {SUP}\ncall-command: execute\nexecute-app-name: playback\n"
            "execute-app-arg: tone_stream://%(200,100,480,620);loops=3",
        ),
        (
            Execute(SUP, "playback", "tone_stream://%(300,100,440);loops=2", event_lock=True),
            f"sendmsg {SUP}\ncall-command: execute\nexecute-app-name: playback\n"
            "execute-app-arg: tone_stream://%(300,100,440);loops=2\nevent-lock: true",
        ),
        (Execute(SUP, "hangup"), f"sendmsg {SUP}\ncall-command: execute\nexecute-app-name: hangup"),
        (
            SendKey(SUP, "2"),
            f"sendevent CUSTOM\nEvent-Subclass: fsbarge::control\nUnique-ID: {SUP}\neavesdrop-command: 2",
        ),
    ],
    ids=["eavesdrop", "playback", "playback with event-lock", "hangup", "switch key"],
)
def test_an_effect_becomes_exact_esl_command_text(effect: Any, text: str) -> None:
    """Execute -> sendmsg with call-command/execute-app-* (and event-lock when the effect asks);
    SendKey -> sendevent with eavesdrop-command."""
    assert commands.to_command(effect) == text


@pytest.mark.parametrize("nl", ["\n", "\r", "\r\n"], ids=["LF", "CR", "CRLF"])
@pytest.mark.parametrize(
    "build",
    [
        lambda bad: commands.sendmsg(bad, "set"),
        lambda bad: commands.sendmsg(SUP, bad),
        lambda bad: commands.sendmsg(SUP, "set", bad),
        lambda bad: commands.sendmsg(SUP, "set", "x=1", event_uuid=bad),
        lambda bad: commands.sendevent_key(bad, "2"),
        lambda bad: commands.sendevent_key(SUP, bad),
        lambda bad: commands.to_command(Execute(SUP, "playback", bad)),
    ],
    ids=["uuid", "app", "arg", "event_uuid", "sendevent uuid", "key", "effect arg"],
)
def test_a_line_break_in_any_value_raises_instead_of_injecting_a_command(build: Callable[[str], str], nl: str) -> None:
    """A value with a line break could end the header block and smuggle in e.g. `api`: refused."""
    with pytest.raises(ValueError):
        build(f"x{nl}{nl}api shutdown")


def test_commands_text_is_what_freeswitch_receives_and_executes(sim, start_link) -> None:
    """sendmsg text written by the session reaches the simulator verbatim and runs on the channel."""
    rec = Recorder()
    start_link(node_for(sim.port), rec)
    session = rec.wait_sessions(1)
    call = sim.place_call("1001", "1000")
    text = commands.sendmsg(call.b_uuid, "set", "fsbarge_probe=42")
    assert session.command(text).startswith("+OK")
    assert any(t == text for _, t in sim.received_commands)
    wait_until(lambda: sim.channel(call.b_uuid).variables.get("fsbarge_probe") == "42", what="the variable set")
