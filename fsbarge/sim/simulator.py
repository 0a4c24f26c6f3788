"""FreeSwitchSim: the public control API of the simulator (calls, waiters, failure modes).

Runs in the caller's gevent hub by default: every method returns without blocking the hub, and
the waiters use gevent events with timeouts. With ``threaded=True`` the simulator gets its own OS
thread and hub instead, so a test that blocks its own thread (subprocess.run, time.sleep, plain
stdlib sockets) cannot starve it; public methods are then marshalled into that thread.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import gevent
import gevent.event

from .api import Api
from .headers import CoreInfo
from .hub import HubThread
from .model import Channel, User, default_directory, new_uuid
from .pbx import Call, Pbx
from .server import EslServer
from .wire import DISCONNECT_MESSAGE, Command, Event, disconnect_notice

T = TypeVar("T")
# The waiters' default bound: they return as soon as their condition holds, so it only matters when
# the condition never comes, and must leave room for a loaded machine (tests run beside other work).
WAIT = 60.0

# FreeSWITCH's event-heartbeat-interval default (switch.conf.xml): the captures show one HEARTBEAT
# every 20 s. The simulator fires none unless asked (heartbeat_interval), so tests stay quiet.
HEARTBEAT_SECONDS = 20.0


@dataclass(frozen=True)
class ClientInfo:
    """A connected ESL client as the simulator sees it."""

    id: int
    peer: tuple
    authed: bool
    events: frozenset[str]
    all_events: bool
    format: str
    customs: frozenset[str] = frozenset()  # CUSTOM subclasses subscribed
    silent: bool = False  # silenced (FreeSwitchSim.silence): it hears nothing from us any more


def _in_sim(method: Callable[..., T]) -> Callable[..., T]:
    """Run a public method inside the simulator's hub (only matters with threaded=True)."""

    @functools.wraps(method)
    def wrapper(self: "FreeSwitchSim", *args: Any, **kwargs: Any) -> T:
        return self._call(method, self, *args, **kwargs)

    return wrapper


class FreeSwitchSim:
    """A FreeSWITCH 1.11 stand-in speaking the inbound Event Socket protocol on 127.0.0.1."""

    def __init__(
        self,
        password: str = "ClueCon",
        core_uuid: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        hostname: str = "fsbarge-sim",
        clock: Callable[[], float] = time.time,
        users: dict[str, User] | None = None,
        playback_seconds: float = 0.0,
        auto_answer: bool = True,
        threaded: bool = False,
        heartbeat_interval: float | None = None,
    ) -> None:
        self.password = password
        self.clock = clock
        self.reject_auth = False
        self.disconnect_on_next_command = False
        self.silent = False  # see silence()
        self.received_commands: list[tuple[int, str]] = []
        self.events: list[Event] = []
        self.errors: list[BaseException] = []  # exceptions raised while serving a command (bugs)
        self.directory = users if users is not None else default_directory()
        self._hostname = hostname
        self._core = CoreInfo(core_uuid or new_uuid(), hostname, started=clock())
        self._pbx = self._new_pbx()
        self._pbx.playback_seconds = playback_seconds
        self._pbx.auto_answer = auto_answer
        self._extensions: list = []
        self._server = EslServer(self, host, port)
        self._unstalled = gevent.event.Event()
        self._unstalled.set()
        self._change = gevent.event.Event()
        self._threaded = threaded
        self._hub = HubThread()
        self._started = False
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat: gevent.Greenlet | None = None

    def _new_pbx(self) -> Pbx:
        pbx = Pbx(self._core, self.directory, self._emit, self.clock)
        self._api = Api(pbx)
        return pbx

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> "FreeSwitchSim":
        """Start listening (port 0 picks a free port; see ``port``)."""
        if self._started:
            return self
        if self._threaded:
            self._hub.start(self._setup_in_hub, self._teardown_in_hub)
        else:
            self._server.listen()
            self._start_heartbeat()
        self._started = True
        return self

    def _start_heartbeat(self) -> None:
        """HEARTBEAT every ``heartbeat_interval`` seconds, as the core does every 20 s."""
        if self._heartbeat_interval:
            def beat() -> None:
                while True:
                    gevent.sleep(self._heartbeat_interval)
                    self.heartbeat()

            self._heartbeat = gevent.spawn(beat)

    def _teardown_in_hub(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.kill()
        self._pbx.leave_network()
        self._server.stop()

    def stop(self) -> None:
        """Close the listener and every connection."""
        if not self._started:
            return
        self._started = False
        if self._hub.running:
            self._call(self._teardown_in_hub)
            self._hub.stop()
        else:
            self._teardown_in_hub()

    def __enter__(self) -> "FreeSwitchSim":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def address(self) -> tuple[str, int]:
        return self._server.host, self._server.port

    @property
    def core_uuid(self) -> str:
        return self._core.core_uuid

    @property
    def hostname(self) -> str:
        return self._core.hostname

    # -- threaded mode ------------------------------------------------------------------------
    def _setup_in_hub(self) -> None:
        # gevent primitives belong to the hub that waits on them: recreate them in the sim's hub.
        self._unstalled = gevent.event.Event()
        self._unstalled.set()
        self._change = gevent.event.Event()
        self._server.listen()
        self._start_heartbeat()

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._hub.call(fn, *args, **kwargs)

    def _emit(self, event: Event) -> None:
        """Every event the PBX fires: recorded, sent to the subscribed clients, waiters woken."""
        self.events.append(event)
        self._server.broadcast(event)
        self.changed()

    # -- what the Event Socket server uses (fsbarge.sim.host.EslHost) ---------------------------
    @property
    def pbx(self) -> Pbx:
        """The PBX the commands run on (a new one after :meth:`shutdown_restart`)."""
        return self._pbx

    @property
    def api(self) -> Api:
        return self._api

    def changed(self) -> None:
        """Something a waiter may wait for happened: wake them (they check their condition again)."""
        old, self._change = self._change, gevent.event.Event()
        old.set()

    def record_command(self, conn_id: int, cmd: Command) -> None:
        self.received_commands.append((conn_id, cmd.text))
        self.changed()

    def wait_unstalled(self) -> None:
        """Block a connection's command worker while :meth:`stall_replies` is on."""
        self._unstalled.wait()

    # -- waiters -----------------------------------------------------------------------------
    def wait_for(self, predicate: Callable[[], T], timeout: float = WAIT) -> T:
        """Wait until predicate() is truthy (checked after every change); TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            change = self._change
            value = self._call(predicate)
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout}s")
            if self._hub.running and not self._hub.in_thread():
                gevent.sleep(min(0.005, remaining))  # another thread changes the state: poll
            else:
                change.wait(remaining)

    def wait_for_command(self, predicate: Callable[[str], bool], timeout: float = WAIT,
                         start: int = 0) -> tuple[int, str]:
        """First received (connection id, command text) from index ``start`` that matches."""

        def find() -> tuple[int, str] | None:
            for item in self.received_commands[start:]:
                if predicate(item[1]):
                    return item
            return None

        return self.wait_for(find, timeout)

    def wait_for_event(self, name: str | None = None, predicate: Callable[[Event], bool] | None = None,
                       timeout: float = WAIT, start: int = 0) -> Event:
        """First fired event from index ``start`` with this Event-Name that matches."""

        def find() -> Event | None:
            for ev in self.events[start:]:
                if (name is None or ev.name == name) and (predicate is None or predicate(ev)):
                    return ev
            return None

        return self.wait_for(find, timeout)

    def wait_for_clients(self, count: int = 1, authed: bool = True, subscribed: bool = False,
                         timeout: float = WAIT) -> list[ClientInfo]:
        def enough() -> list[ClientInfo] | None:
            cl = [c for c in self.clients() if (c.authed or not authed) and (c.events or c.all_events or not subscribed)]
            return cl if len(cl) >= count else None

        return self.wait_for(enough, timeout)

    # -- observation -------------------------------------------------------------------------
    @_in_sim
    def clients(self) -> list[ClientInfo]:
        return [ClientInfo(c.id, c.addr, c.authed, frozenset(c.events), c.all_events, c.fmt, frozenset(c.customs), c.silent)
                for c in self._server.connections.values() if not c.closing]

    @_in_sim
    def channels(self) -> list[Channel]:
        return list(self._pbx.channels.values())

    @_in_sim
    def channel(self, uuid: str) -> Channel | None:
        return self._pbx.channels.get(uuid)

    @_in_sim
    def eavesdrop_mode(self, uuid: str) -> str | None:
        """'listen' | 'whisper' | 'barge' | 'customer_whisper' while ``uuid`` eavesdrops, else None."""
        ch = self._pbx.channels.get(uuid)
        return ch.eavesdrop.mode if ch is not None and ch.eavesdrop is not None else None

    @_in_sim
    def eavesdrop_log(self) -> dict[str, dict]:
        """Ground truth for tests: per supervisor uuid, the eavesdrop's target, every mode it applied
        as (mode, cause: start | dtmf | command) and how it ended (star, target_hangup,
        supervisor_hangup, shutdown; None while running). Not something FreeSWITCH reports."""
        return {k: {**v, "modes": list(v["modes"])} for k, v in self._pbx.eavesdrop_log.items()}

    @_in_sim
    def tones_mixed_into(self, uuid: str) -> list[str]:
        """The files mixed (uuid_displace with ``m``, write side: what the phone hears) into channel
        ``uuid``, in order."""
        return [f for u, action, f, _limit, flags in self._pbx.displace_log
                if u == uuid and action == "start" and "m" in flags and "r" not in flags]

    @_in_sim
    def eavesdrop_target(self, uuid: str) -> str | None:
        ch = self._pbx.channels.get(uuid)
        return ch.eavesdrop.target if ch is not None and ch.eavesdrop is not None else None

    @_in_sim
    def eavesdroppers(self, target_uuid: str) -> list[str]:
        return [c.uuid for c in self._pbx.channels.values()
                if c.eavesdrop is not None and c.eavesdrop.target == target_uuid]

    @_in_sim
    def hears_supervisor(self, uuid: str) -> set[str]:
        """Channels that hear the eavesdropping ``uuid``: key 2 -> target, 1 -> its peer, 3 -> both."""
        ch = self._pbx.channels.get(uuid)
        if ch is None or ch.eavesdrop is None:
            return set()
        ed = ch.eavesdrop
        target = self._pbx.channels.get(ed.target)
        out = set()
        if ed.mux_write:
            out.add(ed.target)
        if ed.mux_read and target is not None and target.peer:
            out.add(target.peer)
        return out

    @_in_sim
    def digits_sent_to(self, uuid: str) -> str:
        """The DTMF digits the phone on this leg received from its bridged peer (not FreeSWITCH's
        own report: the simulator's ground truth)."""
        return "".join(self._pbx.delivered.get(uuid, ()))

    @_in_sim
    def far_leg(self, uuid: str) -> str | None:
        """The leg on another simulated node of the network call this channel is bridged to (or is)."""
        ch = self._pbx.channels.get(uuid)
        if ch is None:
            return None
        for leg in (uuid, ch.peer or "", ch.ringing_peer or ""):
            link = self._pbx.links.get(leg)
            if link is not None:
                return link[1]
        return None

    @_in_sim
    def supervisor_hears(self, uuid: str) -> set[str]:
        """Channels whose audio the eavesdropper hears (eavesdrop_bridge_aleg/_bleg)."""
        ch = self._pbx.channels.get(uuid)
        if ch is None or ch.eavesdrop is None:
            return set()
        ed = ch.eavesdrop
        target = self._pbx.channels.get(ed.target)
        out = {ed.target} if ed.bridge_read else set()
        if ed.bridge_write and target is not None and target.peer:
            out.add(target.peer)
        return out

    # -- the phones --------------------------------------------------------------------------
    @_in_sim
    def place_call(self, caller: str, dest: str, authenticated: bool = True, a_uuid: str | None = None,
                   b_uuid: str | None = None, caller_id_name: str | None = None, trunk: bool = False) -> Call:
        """Phone ``caller`` dials ``dest``; a user extension is bridged to user/<dest>. ``trunk``: the
        carrier delivers a call from number ``caller`` (unauthenticated 'external' profile)."""
        return self._pbx.place_call(caller, dest, authenticated, a_uuid, b_uuid, caller_id_name, trunk)

    @_in_sim
    def hold(self, uuid: str, on: bool = True) -> None:
        """The phone on this leg puts the call on hold (``on``) or resumes it."""
        self._pbx.hold(self._require(uuid), on)

    @_in_sim
    def dial(self, ext: str, dest: str, authenticated: bool = True, uuid: str | None = None,
             caller_id_name: str | None = None) -> str:
        """Phone ``ext`` dials ``dest`` (e.g. '*331000'); returns the PBX leg's uuid."""
        return self._pbx.dial(ext, dest, authenticated, uuid, caller_id_name=caller_id_name).uuid

    @_in_sim
    def answer(self, uuid: str) -> None:
        """A ringing phone answers: an agent's (only with auto_answer off), or one rung by the
        ``originate`` api (always rings until answered, rejected, cancelled or timed out)."""
        ch = self._require(uuid)
        if ch.uuid in self._pbx.originating:
            self._pbx.answer_originated(ch)
        elif ch.direction == "outbound":
            self._pbx.answer_outbound(ch)

    @_in_sim
    def ringing(self, ext: str | None = None) -> list[str]:
        """Legs the ``originate`` api created that ring still (to phone ``ext`` if given), oldest first."""
        return [c.uuid for c in self._pbx.ringing_originated() if ext is None or c.user == ext]

    @_in_sim
    def originate_log(self) -> list[dict]:
        """Ground truth for tests: every ``originate`` as {uuid, ext, variables (the {} ones), result
        (``+OK <uuid>``, ``-ERR <cause>``, None while it rings)}."""
        return [dict(entry, variables=dict(entry["variables"])) for entry in self._pbx.originate_log]

    @_in_sim
    def meta_bindings(self, uuid: str, sent: bool = False) -> dict[str, str]:
        """bind_meta_app keys bound on a leg: key -> '<app>::<args>', for the digits its phone sends
        (listen 'a'), or with ``sent`` for those its peer sends to it (listen 'b')."""
        ch = self._require(uuid)
        md = ch.meta_send if sent else ch.meta
        return {k: f"{b.app}::{b.arg}" for k, b in (md.keys.items() if md else ())}

    @_in_sim
    def hangup(self, uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        """The phone on this leg hangs up (SIP BYE); bridged peers follow as FreeSWITCH does."""
        self._pbx.hangup_channel(self._require(uuid), cause, remote=True)

    @_in_sim
    def press(self, uuid: str, digits: str, source: str = "RTP", duration: int | None = None) -> None:
        """DTMF from the phone: RTP (RFC2833), ENDPOINT (SIP INFO), APP, UNKNOWN. On a leg with
        bind_meta_app, '*' then a bound digit runs the bound app instead (e.g. the agent's *9)."""
        self._pbx.press(self._require(uuid), digits, source, duration)

    @_in_sim
    def set_var(self, uuid: str, name: str, value: str | None) -> None:
        self._require(uuid).set_var(name, value)

    def _require(self, uuid: str) -> Channel:
        ch = self._pbx.channels.get(uuid)
        if ch is None:
            raise KeyError(f"no such channel {uuid}")
        return ch

    @_in_sim
    def add_user(self, ext: str, name: str | None = None, effective_name: str | None = None,
                 callgroup: str = "default", registered: bool = True) -> User:
        user = User(ext, name or f"Extension {ext}", effective_name or f"{name or 'Extension'} {ext}",
                    callgroup, registered)
        self.directory[ext] = user
        return user

    @_in_sim
    def set_registered(self, ext: str, registered: bool) -> None:
        self.directory[ext].registered = registered

    @_in_sim
    def add_extension(self, pattern: str, apps: list[tuple[str, str]]) -> None:
        """Extra dialplan extension tried first; '$1'.. in app data are replaced by groups."""
        regex = re.compile(pattern)

        def build(ch: Channel, m: re.Match[str]) -> list[tuple[str, str]]:
            out = []
            for app, data in apps:
                for i, g in enumerate(m.groups(), 1):
                    data = data.replace(f"${i}", g or "")
                out.append((app, data))
            return out

        self._extensions.append((regex, build))
        self._pbx.extensions.append((regex, build))

    @property
    def playback_seconds(self) -> float:
        return self._pbx.playback_seconds

    @playback_seconds.setter
    def playback_seconds(self, value: float) -> None:
        self._pbx.playback_seconds = value

    @property
    def auto_answer(self) -> bool:
        return self._pbx.auto_answer

    @auto_answer.setter
    def auto_answer(self, value: bool) -> None:
        self._pbx.auto_answer = value

    # -- failure modes -------------------------------------------------------------------------
    @_in_sim
    def drop_connections(self, rst: bool = False) -> int:
        """Close every client socket without a disconnect notice (rst=True: RST instead of FIN)."""
        conns = list(self._server.connections.values())
        for conn in conns:
            conn.abort(rst=rst)
        return len(conns)

    @_in_sim
    def send_disconnect_notice(self, message: str = DISCONNECT_MESSAGE, close: bool = True) -> int:
        """Send text/disconnect-notice to every client (and close, as FreeSWITCH does)."""
        conns = [c for c in self._server.connections.values() if not c.closing]
        for conn in conns:
            conn.send(disconnect_notice(message))
            if close:
                conn.close_after_flush()
        return len(conns)

    @_in_sim
    def stall_replies(self, on: bool = True) -> None:
        """While on, commands are received (and recorded) but neither run nor answered."""
        if on:
            self._unstalled.clear()
        else:
            self._unstalled.set()

    @_in_sim
    def silence(self, on: bool = True) -> int:
        """A silent stall (``on``): every open connection stops sending anything at all (events,
        replies, HEARTBEAT) and ignores its commands, but its socket stays open: what a hung
        FreeSWITCH or a firewall that dropped the flow looks like from the client. Connections
        accepted while it is on are silent too (not even auth/request). ``silence(False)`` lets
        new connections work again; the silenced ones stay dead until their client closes them.
        Returns how many connections were silenced."""
        self.silent = on
        if not on:
            return 0
        conns = [c for c in self._server.connections.values() if not c.closing and not c.silent]
        for conn in conns:
            conn.silent = True
        return len(conns)

    @_in_sim
    def silenced(self) -> list[int]:
        """Ids of the connections that are silent (and still open)."""
        return [c.id for c in self._server.connections.values() if c.silent and not c.closed]

    @property
    def stalled(self) -> bool:
        return not self._unstalled.is_set()

    @_in_sim
    def send_raw(self, data: bytes, authed_only: bool = False) -> int:
        """Write raw bytes to every client (malformed frames: see fsbarge.sim.malformed)."""
        return self._server.send_all(data, authed_only)

    @property
    def refuse_connections(self) -> bool:
        return not self._call(lambda: self._server.listening)

    @refuse_connections.setter
    def refuse_connections(self, refuse: bool) -> None:
        def apply() -> None:
            if refuse and self._server.listening:
                self._server.close_listener()
            elif not refuse and not self._server.listening and self._started:
                self._server.listen()

        self._call(apply)

    @_in_sim
    def shutdown_restart(self, new_core_uuid: str | None = None, hangup_channels: bool = True) -> str:
        """FreeSWITCH stops and comes back: SHUTDOWN, SYSTEM_SHUTDOWN hang-ups, sockets dropped,
        a new Core-UUID, no channels, Event-Sequence from 1 again. Returns the new Core-UUID."""
        self._pbx.fire("SHUTDOWN", None, post=[("Event-Info", "System Shutting Down")])
        for ch in self._pbx.channels.values():
            log = self._pbx.eavesdrop_log.get(ch.uuid)
            if ch.eavesdrop is not None and log is not None and log["end"] is None:
                log["end"] = "shutdown"
        if hangup_channels:
            for ch in list(self._pbx.channels.values()):
                if ch.alive and not ch.destroyed:
                    self._pbx.hangup_channel(ch, "SYSTEM_SHUTDOWN")
        for conn in list(self._server.connections.values()):
            conn.close_after_flush()  # what was fired reaches the client, then the socket closes (no notice)
        old = self._pbx
        self._core = CoreInfo(new_core_uuid or new_uuid(), self._hostname, started=self.clock())
        self._pbx = self._new_pbx()
        self._pbx.extensions = list(self._extensions)
        self._pbx.playback_seconds, self._pbx.auto_answer = old.playback_seconds, old.auto_answer
        self._pbx.eavesdrop_log = old.eavesdrop_log
        if old.sip_address is not None:
            self._pbx.node_acl = old.node_acl
            self._pbx.join_network(old.sip_address)
        self.changed()
        return self._core.core_uuid

    def join_network(self, sip_address: str, acl: set[str] | None = None) -> None:
        """Make this node reachable by the other simulators of the process at ``sip_address``
        (a cross-node barge's SIP leg); ``acl``: the addresses whose fsbarge-<token> calls the
        node's drop-in dialplan admits (None: all). Not with ``threaded``: the nodes share a hub."""
        if self._threaded:
            raise RuntimeError("simulated nodes on one network share the caller's hub (threaded=False)")
        self._pbx.node_acl = acl
        self._pbx.join_network(sip_address)

    @_in_sim
    def heartbeat(self) -> Event:
        """Fire a HEARTBEAT event like the core does every 20 s (switch.conf.xml's
        event-heartbeat-interval; the captures show one every 20 s), with the captured headers."""
        up_ms = int((self.clock() - self._core.started) * 1000)
        up, ms = divmod(up_ms, 1000)
        minutes, secs = divmod(up, 60)
        hours, minutes = divmod(minutes, 60)
        sessions = str(len(self._pbx.channels))
        since = str(self._pbx.sessions_since_startup)
        return self._pbx.fire("HEARTBEAT", None, post=[
            ("Event-Info", "System Ready"),
            ("Up-Time", f"0 years, 0 days, {hours} hours, {minutes} minutes, {secs} seconds, {ms} milliseconds, 0 microseconds"),
            ("FreeSWITCH-Version", "1.11.1-release~64bit"), ("Uptime-msec", str(up_ms)),
            ("Session-Count", sessions), ("Max-Sessions", "100"),
            ("Session-Per-Sec", "30"), ("Session-Per-Sec-Last", "0"), ("Session-Per-Sec-Max", "2"),
            ("Session-Per-Sec-FiveMin", "0"), ("Session-Since-Startup", since),
            ("Session-Peak-Max", sessions), ("Session-Peak-FiveMin", sessions),
            ("Idle-CPU", "99.733333")])
