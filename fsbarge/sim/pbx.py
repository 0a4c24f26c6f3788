"""The simulated PBX: channel life cycle, dialplan, bridge (hang-ups: hangup.py, apps: apps.py).

Everything runs synchronously (no greenlet switches): an action produces its whole event sequence
at once, in the order the captures show, so tests are deterministic. Where FreeSWITCH's own order
depends on thread timing, the order of one capture is used and named in a comment.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from .apps import AppsMixin
from .hangup import HangupMixin
from .headers import CoreInfo, EventFactory
from .legs import inbound_leg, outbound_answer_variables, outbound_leg, sdp
from .network import NetworkMixin
from .model import CALLSTATE_NUMBERS, DOMAIN, PCMU, STATE_NUMBERS, Channel, Frame, User, new_uuid, switch_true
from .originate import OriginateJob, OriginateMixin
from .wire import Event

FEATURE_CODE = re.compile(r"\*3([345])(\d+)")
FEATURE_MODES = {"3": "listen", "4": "whisper", "5": "barge"}
LOCAL_EXTENSION = re.compile(r"10[01][0-9]")  # the stock Local_Extension pattern


@dataclass
class Call:
    """A call placed by a phone: the inbound leg and, if it was bridged, the outbound leg."""

    a_uuid: str
    b_uuid: str | None
    caller: str
    dest: str


class Pbx(HangupMixin, AppsMixin, NetworkMixin, OriginateMixin):
    """Channels and their applications; emits every event through ``emit``. The mixins use it only
    as the Protocols of host.py name it (``AppsHost``, ``HangupHost``, ...)."""

    def __init__(
        self,
        core: CoreInfo,
        directory: dict[str, User],
        emit: Callable[[Event], None],
        clock: Callable[[], float],
    ) -> None:
        self.core = core
        self.directory = directory
        self.emit = emit
        self.clock = clock
        self.factory = EventFactory(core, clock)
        self.channels: dict[str, Channel] = {}
        # supervisor uuid -> {"target", "modes": [(mode, cause)], "end": cause}: what eavesdrop really did
        self.eavesdrop_log: dict[str, dict[str, Any]] = {}
        # uuid_displace: every start/stop as (uuid, action, file, limit, flags), and what runs per channel
        self.displace_log: list[tuple[str, str, str, int, str]] = []
        self.displacing: dict[str, set[str]] = {}
        # leg uuid -> digits its phone received from the bridged peer (ground truth for tests)
        self.delivered: dict[str, list[str]] = {}
        self.links: dict[str, tuple[Any, str]] = {}  # calls with other simulated nodes (network.py)
        self.sessions_since_startup = 0
        self.peak_sessions = 0
        self.playback_seconds = 0.0
        self.auto_answer = True
        self.hash: dict[str, dict[str, str]] = {}
        self.extensions: list[tuple[re.Pattern[str], Callable[[Channel, re.Match[str]], list[tuple[str, str]]]]] = []
        self._b_uuids: dict[str, str] = {}
        self._session_ids = 0
        # originate: the jobs whose leg still rings, and every originate as {uuid, ext, variables, result}
        self.originating: dict[str, OriginateJob] = {}
        self.originate_log: list[dict[str, Any]] = []

    # -- small helpers -------------------------------------------------------------------
    def fire(self, name: str, ch: Channel | None = None, **kw) -> Event:
        event = self.factory.build(name, ch, **kw)
        self.emit(event)
        return event

    def now_us(self) -> int:
        return int(self.clock() * 1_000_000)

    def set_state(self, ch: Channel, state: str, number: int | None = None, fire: bool = True) -> None:
        ch.state = state
        ch.state_number = STATE_NUMBERS[state] if number is None else number
        if fire:
            self.fire("CHANNEL_STATE", ch)

    def set_callstate(self, ch: Channel, new: str) -> None:
        old, ch.callstate = ch.callstate, new
        self.fire("CHANNEL_CALLSTATE", ch, pre=[
            ("Original-Channel-Call-State", old),
            ("Channel-Call-State-Number", str(CALLSTATE_NUMBERS[new])),
        ])

    def presence_in(self, ch: Channel, status: str, info_state: str) -> None:
        """PRESENCE_IN fired by check_presence()/mark_answered() for channels with a presence_id."""
        if not ch.presence_id:
            return
        if status == "answered":
            site = ("src/switch_channel.c", "switch_channel_perform_mark_answered", "3906")
        else:
            site = ("src/switch_core_state_machine.c", "check_presence", "521")
        self.fire("PRESENCE_IN", ch, post=[
            ("proto", "any"), ("login", "src/switch_channel.c"), ("from", ch.presence_id),
            ("rpid", "unknown"), ("status", status), ("event_type", "presence"),
            ("alt_event_type", "dialog"), ("presence-call-info-state", info_state),
            ("presence-call-direction", ch.direction), ("event_count", str(ch.presence_count)),
            ("Presence-Calling-File", site[0]), ("Presence-Calling-Function", site[1]),
            ("Presence-Calling-Line", site[2]),
        ])
        ch.presence_count += 1

    def codec_events(self, ch: Channel) -> None:
        """The two CODEC events of media setup (note FreeSWITCH's 'Channel-Write-codec-bit-rate')."""
        ch.read_codec = ch.write_codec = PCMU
        self.fire("CODEC", ch, post=[("channel-read-codec-name", "PCMU"), ("channel-read-codec-rate", "8000"),
                                     ("channel-read-codec-bit-rate", "64000")])
        self.fire("CODEC", ch, post=[("Channel-Write-Codec-Name", "PCMU"), ("Channel-Write-Codec-Rate", "8000"),
                                     ("Channel-Write-codec-bit-rate", "64000")])

    def new_session_id(self) -> str:
        self._session_ids += 1
        return str(self._session_ids)

    def count_session(self) -> None:
        self.sessions_since_startup += 1
        self.peak_sessions = max(self.peak_sessions, len(self.channels))

    # -- phones place calls ---------------------------------------------------------------
    def dial(self, ext: str, dest: str, authenticated: bool = True, uuid: str | None = None,
             b_uuid: str | None = None, caller_id_name: str | None = None, trunk: bool = False) -> Channel:
        """A phone (or, with ``trunk``, the carrier) sends INVITE <dest>: create the inbound leg,
        route it, run its dialplan."""
        ch = self._new_inbound(ext, dest, authenticated, uuid or new_uuid(), caller_id_name, trunk)
        if b_uuid:
            self._b_uuids[ch.uuid] = b_uuid
        self.set_state(ch, "CS_NEW", 0)
        ch.show_profile = ch.show_presence = True
        self.codec_events(ch)
        self.set_state(ch, "CS_INIT", 1)
        ch.state_number = 2
        self.fire("CHANNEL_CREATE", ch)
        ch.state = "CS_ROUTING"
        self.set_callstate(ch, "RINGING")
        self.fire("CHANNEL_STATE", ch)
        apps = self.route(ch)
        ch.state_number = 4 if apps is not None else 2
        self.presence_in(ch, "CS_ROUTING", "progressing")
        if apps is None:
            # switch_core_standard_on_routing: "No Route, Aborting"
            self.hangup_channel(ch, "NO_ROUTE_DESTINATION")
            return ch
        ch.dialplan = deque(apps)
        ch.set_var("current_application", None)
        self.set_state(ch, "CS_EXECUTE", 4)
        self.pump(ch)
        return ch

    def hold(self, ch: Channel, on: bool) -> None:
        """The phone on ``ch`` holds (re-INVITE a=sendonly) or resumes, as captured in
        tests/fixtures/realfs-captures/agent-with-call-on-hold: CHANNEL_CALLSTATE HELD then
        CHANNEL_HOLD; CHANNEL_CALLSTATE UNHELD, CHANNEL_UNHOLD, CHANNEL_CALLSTATE ACTIVE."""
        if on:
            self.set_callstate(ch, "HELD")
            self.fire("CHANNEL_HOLD", ch)
        else:
            self.set_callstate(ch, "UNHELD")
            self.fire("CHANNEL_UNHOLD", ch)
            self.set_callstate(ch, "ACTIVE")

    def place_call(self, caller: str, dest: str, authenticated: bool = True, a_uuid: str | None = None,
                   b_uuid: str | None = None, caller_id_name: str | None = None, trunk: bool = False) -> Call:
        ch = self.dial(caller, dest, authenticated, a_uuid, b_uuid, caller_id_name, trunk)
        return Call(ch.uuid, ch.peer or ch.ringing_peer or self._b_uuids.get(ch.uuid), caller, dest)

    def route(self, ch: Channel) -> list[tuple[str, str]] | None:
        """XML dialplan 'default': extra extensions first, then feature codes, then users."""
        dest = ch.profile.destination_number
        cross = self.cross_node_route(ch)
        if cross is not None:
            return cross
        for pattern, build in self.extensions:
            m = pattern.fullmatch(dest)
            if m:
                return build(ch, m)
        m = FEATURE_CODE.fullmatch(dest)
        if m:
            ch.set_var("DP_MATCH", f"ARRAY::{dest}|:{m[2]}")
            return [("answer", ""), ("set", f"fsbarge_mode={FEATURE_MODES[m[1]]}"),
                    ("set", f"fsbarge_target={m[2]}"), ("park", "")]
        if dest in self.directory or LOCAL_EXTENSION.fullmatch(dest):
            ch.set_var("DP_MATCH", f"ARRAY::{dest}|:{dest}")
            return [("set", "call_timeout=30"), ("set", "hangup_after_bridge=true"),
                    ("bridge", f"user/{dest}@{DOMAIN}")]
        return None

    def _new_inbound(self, ext: str, dest: str, authenticated: bool, uuid: str,
                     caller_id_name: str | None = None, trunk: bool = False) -> Channel:
        ch = inbound_leg(ext, dest, uuid, None if trunk else self.directory.get(ext), authenticated, caller_id_name,
                         self.clock(), self.new_session_id(), self.factory.core_headers("REQUEST_PARAMS"), trunk)
        self.channels[uuid] = ch
        self.count_session()
        return ch

    # -- bridge to user/<ext> ----------------------------------------------------------------
    def originate_user(self, a: Channel, frame: Frame, ext: str, b_uuid: str | None) -> str | None:
        """bridge user/<ext>: create the agent's outbound leg; returns None while it runs."""
        user = self.directory.get(ext)
        if user is None:
            return self.bridge_failed(a, frame, "SUBSCRIBER_ABSENT")
        if not user.registered:
            return self.bridge_failed(a, frame, "USER_NOT_REGISTERED")
        b = self._new_outbound(a, user, b_uuid or self._b_uuids.pop(a.uuid, None) or new_uuid())
        b.state, b.state_number = "CS_NONE", 1
        self.fire("CHANNEL_OUTGOING", b)
        b.show_presence = True
        b.call_uuid = a.uuid
        self.set_state(b, "CS_INIT", 1)
        b.state_number = 2
        self.fire("CHANNEL_CREATE", b)
        self.fire("CHANNEL_ORIGINATE", b)
        b.bridged_call_uuid = a.uuid  # the core db sets channels.call_uuid on CHANNEL_ORIGINATE
        self.set_state(b, "CS_ROUTING", 2)
        b.state_number = 7
        self.presence_in(b, "CS_ROUTING", "progressing")
        self.set_state(b, "CS_CONSUME_MEDIA", 7)
        self.codec_events(b)
        a.ringing_peer = b.uuid
        if self.auto_answer:
            self.answer_outbound(b)
        else:
            # 180 Ringing from the phone (guessed: not in the captures).
            b.profile.progress = self.now_us()
            self.set_callstate(b, "RINGING")
            self.fire("CHANNEL_PROGRESS", b)
            a.profile.progress = self.now_us()
            self.fire("CHANNEL_PROGRESS", a)
        return None

    def _new_outbound(self, a: Channel, user: User, uuid: str) -> Channel:
        b = outbound_leg(a, user, uuid, self.clock(), self.new_session_id())
        self.channels[uuid] = b
        self.count_session()
        return b

    def answer_outbound(self, b: Channel) -> None:
        """The agent's phone sends 200 OK: answer both legs and bridge them (capture 03 order)."""
        a = self.channels.get(b.variables.get("originator", ""))
        if a is None or not a.alive or not b.alive:
            return
        user = self.directory[b.user]
        a.ringing_peer = None
        b.variables.update(outbound_answer_variables(b))
        for leg in (b, a):
            leg.profile.callee_id_name = user.callee_name
            leg.profile.callee_id_number = user.ext
            leg.callee_name, leg.callee_num = user.callee_name, user.ext
        if b.other_profile is not None:
            b.other_profile.callee_id_name = user.callee_name
            b.other_profile.callee_id_number = user.ext
        if a.answer_state != "answered":
            a.variables.update({"originate_signal_bond": b.uuid,
                                "originated_legs": f"{b.uuid};Outbound Call;gw+{b.user}"})
        self.mark_answered(b)
        if a.answer_state != "answered":
            a.variables.update({"dialed_user": b.user, "dialed_domain": DOMAIN})
            self.mark_answered(a)
        self.fire("CHANNEL_OUTGOING", b)
        # switch_ivr_multi_threaded_bridge
        now = self.now_us()
        a.peer, b.peer = b.uuid, a.uuid
        a.originator = True
        a.bridged_call_uuid = b.bridged_call_uuid = a.uuid
        a.other_type = "originatee"
        a.other_profile = b.profile.copy(logical_direction="inbound")
        a.variables.pop("originate_signal_bond", None)
        a.variables.update({
            "originate_disposition": "SUCCESS", "DIALSTATUS": "SUCCESS", "signal_bond": b.uuid,
            "originated_legs": f"ARRAY::{b.uuid};Outbound Call;gw+{b.user}",
            "originate_causes": f"ARRAY::{b.uuid};NONE",
        })
        a.profile.bridged = b.profile.bridged = now
        self.fire("CHANNEL_BRIDGE", a, pre=[("Bridge-A-Unique-ID", a.uuid), ("Bridge-B-Unique-ID", b.uuid)])
        self.set_state(b, "CS_EXCHANGE_MEDIA", 5)
        a_name = b.profile.caller_id_name
        a_num = b.profile.caller_id_number
        b.variables.update({
            "endpoint_disposition": "ANSWER", "record_stereo": "true", "user_context": "default",
            "effective_caller_id_name": user.effective_name, "effective_caller_id_number": user.ext,
            "callgroup": user.callgroup, "bridge_to": a.uuid, "last_bridge_to": a.uuid,
            "bridge_channel": a.name, "bridge_uuid": a.uuid, "last_sent_callee_id_name": a_name,
            "last_sent_callee_id_number": a_num, "originate_endpoint": "user",
        })
        b.sent_callee_name, b.sent_callee_num = a_name, a_num
        self.fire("CALL_UPDATE", b, pre=[("Direction", "SEND"), ("Sent-Callee-ID-Name", a_name),
                                         ("Sent-Callee-ID-Number", a_num), ("Bridged-To", a.uuid)])
        a.variables.update({
            "bridge_to": b.uuid, "last_bridge_to": b.uuid, "bridge_channel": b.name, "bridge_uuid": b.uuid,
            "last_sent_callee_id_name": user.callee_name, "last_sent_callee_id_number": user.ext,
        })
        a.sent_callee_name, a.sent_callee_num = user.callee_name, user.ext
        self.fire("CALL_UPDATE", a, pre=[("Direction", "SEND"), ("Sent-Callee-ID-Name", user.callee_name),
                                         ("Sent-Callee-ID-Number", user.ext), ("Bridged-To", b.uuid)])

    def bridge_failed(self, a: Channel, frame: Frame, cause: str) -> str | None:
        """The originate failed: mod_dptools hangs the caller up with the originate cause, unless
        continue_on_fail is set (then the bridge returns and the channel goes on)."""
        a.variables.update({"originate_disposition": cause, "DIALSTATUS": cause,
                            "originate_failed_cause": cause})
        if switch_true(a.variables.get("continue_on_fail")):
            if frame in a.frames:
                self.complete(a, frame, "_none_")
                self.pump(a)
            return None
        self.hangup_channel(a, cause)
        return None

    def mark_answered(self, ch: Channel) -> None:
        """switch_channel_perform_mark_answered: CHANNEL_ANSWER, PRESENCE_IN, CHANNEL_CALLSTATE."""
        ch.profile.answered = self.now_us()
        ch.answered_at = self.clock()
        ch.answer_state = "answered"
        port = 16000 + 2 * (int(ch.variables.get("session_id", "1")) % 1000)
        ch.variables.update({"rtp_local_sdp_str": sdp(port, "sendrecv"), "local_media_ip": DOMAIN,
                             "local_media_port": str(port), "advertised_media_ip": DOMAIN,
                             "rtp_use_timer_name": "soft", "rtp_use_pt": "0",
                             "rtp_use_ssrc": str(3_000_000_000 + port),
                             "rtp_2833_send_payload": "101", "rtp_2833_recv_payload": "101"})
        self.fire("CHANNEL_ANSWER", ch)
        self.presence_in(ch, "answered", "active")
        self.set_callstate(ch, "ACTIVE")
        self.leg_answered(ch)
