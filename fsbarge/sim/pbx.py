"""The simulated PBX: channel life cycle, dialplan, bridge and hang-up sequences.

Everything runs synchronously (no greenlet switches): an action produces its whole event sequence
at once, in the order the captures show, so tests are deterministic. Where FreeSWITCH's own order
depends on thread timing, the order of one capture is used and named in a comment.
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from .apps import AppsMixin
from .headers import CoreInfo, EventFactory
from .model import (
    CALLSTATE_NUMBERS, CAUSES, DOMAIN, PCMU, STATE_NUMBERS, Channel, Frame, Profile, User, new_uuid,
    switch_true,
)
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


def _sdp(port: int, direction: str | None = None) -> str:
    """A PCMU SDP like the phones'; its CRLFs travel as %0D%0A in plain events."""
    lines = ["v=0", "o=FreeSWITCH 1795321662 1795321663 IN IP4 127.0.0.1", "s=FreeSWITCH", "c=IN IP4 127.0.0.1",
             "t=0 0", f"m=audio {port} RTP/AVP 0 101 13", "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000",
             "a=fmtp:101 0-15", "a=rtpmap:13 CN/8000", "a=ptime:20"]
    if direction:
        lines.append(f"a={direction}")
    return "\r\n".join(lines) + "\r\n"


class Pbx(AppsMixin):
    """Channels and their applications; emits every event through ``emit``."""

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
        self.sessions_since_startup = 0
        self.peak_sessions = 0
        self.playback_seconds = 0.0
        self.auto_answer = True
        self.hash: dict[str, dict[str, str]] = {}
        self.extensions: list[tuple[re.Pattern[str], Callable[[Channel, re.Match[str]], list[tuple[str, str]]]]] = []
        self._b_uuids: dict[str, str] = {}
        self._session_ids = 0

    # -- small helpers -------------------------------------------------------------------
    def fire(self, name: str, ch: Channel | None = None, **kw) -> Event:
        event = self.factory.build(name, ch, **kw)
        self.emit(event)
        return event

    def now_us(self) -> int:
        return int(self.clock() * 1_000_000)

    def _set_state(self, ch: Channel, state: str, number: int | None = None, fire: bool = True) -> None:
        ch.state = state
        ch.state_number = STATE_NUMBERS[state] if number is None else number
        if fire:
            self.fire("CHANNEL_STATE", ch)

    def _callstate(self, ch: Channel, new: str) -> None:
        old, ch.callstate = ch.callstate, new
        self.fire("CHANNEL_CALLSTATE", ch, pre=[
            ("Original-Channel-Call-State", old),
            ("Channel-Call-State-Number", str(CALLSTATE_NUMBERS[new])),
        ])

    def _presence(self, ch: Channel, status: str, info_state: str) -> None:
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

    def _codecs(self, ch: Channel) -> None:
        """The two CODEC events of media setup (note FreeSWITCH's 'Channel-Write-codec-bit-rate')."""
        ch.read_codec = ch.write_codec = PCMU
        self.fire("CODEC", ch, post=[("channel-read-codec-name", "PCMU"), ("channel-read-codec-rate", "8000"),
                                     ("channel-read-codec-bit-rate", "64000")])
        self.fire("CODEC", ch, post=[("Channel-Write-Codec-Name", "PCMU"), ("Channel-Write-Codec-Rate", "8000"),
                                     ("Channel-Write-codec-bit-rate", "64000")])

    def _session_id(self) -> str:
        self._session_ids += 1
        return str(self._session_ids)

    def _count_session(self) -> None:
        self.sessions_since_startup += 1
        self.peak_sessions = max(self.peak_sessions, len(self.channels))

    # -- phones place calls ---------------------------------------------------------------
    def dial(self, ext: str, dest: str, authenticated: bool = True, uuid: str | None = None,
             b_uuid: str | None = None, caller_id_name: str | None = None) -> Channel:
        """A phone sends INVITE <dest>: create the inbound leg, route it, run its dialplan."""
        ch = self._new_inbound(ext, dest, authenticated, uuid or new_uuid(), caller_id_name)
        if b_uuid:
            self._b_uuids[ch.uuid] = b_uuid
        self._set_state(ch, "CS_NEW", 0)
        ch.show_profile = ch.show_presence = True
        self._codecs(ch)
        self._set_state(ch, "CS_INIT", 1)
        ch.state_number = 2
        self.fire("CHANNEL_CREATE", ch)
        ch.state = "CS_ROUTING"
        self._callstate(ch, "RINGING")
        self.fire("CHANNEL_STATE", ch)
        apps = self.route(ch)
        ch.state_number = 4 if apps is not None else 2
        self._presence(ch, "CS_ROUTING", "progressing")
        if apps is None:
            # switch_core_standard_on_routing: "No Route, Aborting"
            self.hangup_channel(ch, "NO_ROUTE_DESTINATION")
            return ch
        ch.dialplan = deque(apps)
        ch.set_var("current_application", None)
        self._set_state(ch, "CS_EXECUTE", 4)
        self.pump(ch)
        return ch

    def place_call(self, caller: str, dest: str, authenticated: bool = True, a_uuid: str | None = None,
                   b_uuid: str | None = None, caller_id_name: str | None = None) -> Call:
        ch = self.dial(caller, dest, authenticated, a_uuid, b_uuid, caller_id_name)
        return Call(ch.uuid, ch.peer or ch.ringing_peer or self._b_uuids.get(ch.uuid), caller, dest)

    def route(self, ch: Channel) -> list[tuple[str, str]] | None:
        """XML dialplan 'default': extra extensions first, then feature codes, then users."""
        dest = ch.profile.destination_number
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
                     caller_id_name: str | None = None) -> Channel:
        user = self.directory.get(ext)
        now = self.clock()
        us = int(now * 1_000_000)
        name = f"sofia/internal/{ext}@{DOMAIN}"
        # The From display name is whatever the phone sends (caller-controlled, may be hostile).
        cid_name = caller_id_name if caller_id_name is not None else (user.name if user else ext)
        profile = Profile("inbound", ext, cid_name, ext, dest, uuid, name, us)
        ch = Channel(uuid, name, "inbound", profile, ext, now, call_uuid=uuid)
        ch.presence_id = f"{ext}@{DOMAIN}"
        ch.initial = {"cid_name": cid_name, "cid_num": ext, "ip_addr": DOMAIN, "dest": dest}
        tag = new_uuid()[:13]
        v = ch.variables
        v.update({
            "direction": "inbound", "uuid": uuid, "call_uuid": uuid, "session_id": self._session_id(),
            "sip_from_user": ext, "sip_from_uri": f"{ext}@{DOMAIN}", "sip_from_host": DOMAIN,
            "video_media_flow": "disabled", "text_media_flow": "disabled", "channel_name": name,
            "sip_call_id": new_uuid(), "sip_local_network_addr": DOMAIN, "sip_network_ip": DOMAIN,
            "sip_network_port": "5070", "sip_invite_stamp": str(us), "sip_received_ip": DOMAIN,
            "sip_received_port": "5070", "sip_via_protocol": "udp", "sip_authorized": "true",
        })
        if authenticated and user is not None:
            # Digest-authenticated INVITE: the REQUEST_PARAMS of the directory lookup leak into the
            # channel as variable_Event-Name etc. (a parser must not mistake them for the real ones),
            # then sofia_reg_parse_auth copies the directory user in.
            req = self.factory.core_headers("REQUEST_PARAMS")
            v["Event-Name"] = "REQUEST_PARAMS"
            v.update({k: val for k, val in req if k != "Event-Sequence"})
            v.update({
                "Event-Calling-File": "sofia.c", "Event-Calling-Function": "sofia_handle_sip_i_invite",
                "Event-Calling-Line-Number": "10735", "Event-Sequence": str(us % 100000),
            })
            v.update({
                "sip_number_alias": ext, "sip_auth_username": ext, "sip_auth_realm": DOMAIN,
                "number_alias": ext, "requested_user_name": ext, "requested_domain_name": DOMAIN,
                "record_stereo": "true", "user_context": "default",
                "effective_caller_id_name": user.effective_name, "effective_caller_id_number": ext,
                "callgroup": user.callgroup, "user_name": ext, "domain_name": DOMAIN,
            })
        else:
            # Admitted by apply-inbound-acl: authorized, but no user_name (nobody was challenged).
            v["sip_acl_authed_by"] = "domains"
        v.update({
            "sip_from_user_stripped": ext, "sip_from_tag": tag, "sofia_profile_name": "internal",
            "sofia_profile_url": f"sip:mod_sofia@{DOMAIN}:5060", "recovery_profile_name": "internal",
            "sip_full_via": f"SIP/2.0/UDP {DOMAIN}:5070;rport=5070;branch=z9hG4bK{tag}",
            "sip_from_display": cid_name, "sip_full_from": f'"{cid_name}" <sip:{ext}@{DOMAIN}>;tag={tag}',
            "sip_full_to": f"<sip:{dest}@{DOMAIN}:5060>",
            "sip_allow": "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, REGISTER, REFER, NOTIFY",
            "sip_req_user": dest, "sip_req_port": "5060", "sip_req_uri": f"{dest}@{DOMAIN}:5060",
            "sip_req_host": DOMAIN, "sip_to_user": dest, "sip_to_port": "5060",
            "sip_to_uri": f"{dest}@{DOMAIN}:5060", "sip_to_host": DOMAIN,
            "sip_contact_params": f"transport=udp;gw={ext}", "sip_contact_user": f"gw+{ext}",
            "sip_contact_port": "5070", "sip_contact_uri": f"gw+{ext}@{DOMAIN}:5070",
            "sip_contact_host": DOMAIN, "sip_user_agent": "FreeSWITCH-mod_sofia/1.11.1-release~64bit",
            "sip_via_host": DOMAIN, "sip_via_port": "5070", "sip_via_rport": "5070", "max_forwards": "70",
            "presence_id": ch.presence_id, "switch_r_sdp": _sdp(20140),
            "ep_codec_string": "CORE_PCM_MODULE.PCMU@8000h@20i@64000b,CORE_PCM_MODULE.PCMA@8000h@20i@64000b",
            "rtp_use_codec_string": "PCMU,PCMA", "remote_video_media_flow": "inactive",
            "remote_text_media_flow": "inactive", "remote_audio_media_flow": "sendrecv",
            "audio_media_flow": "sendrecv", "remote_media_ip": DOMAIN, "remote_media_port": "20140",
            "rtp_audio_recv_pt": "0", "rtp_use_codec_name": "PCMU", "rtp_use_codec_rate": "8000",
            "rtp_use_codec_ptime": "20", "rtp_use_codec_channels": "1",
            "rtp_last_audio_codec_string": "PCMU@8000h@20i@1c", "read_codec": "PCMU",
            "original_read_codec": "PCMU", "read_rate": "8000", "original_read_rate": "8000",
            "write_codec": "PCMU", "write_rate": "8000", "dtmf_type": "rfc2833",
            "endpoint_disposition": "RECEIVED",
        })
        self.channels[uuid] = ch
        self._count_session()
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
        self._set_state(b, "CS_INIT", 1)
        b.state_number = 2
        self.fire("CHANNEL_CREATE", b)
        self.fire("CHANNEL_ORIGINATE", b)
        self._set_state(b, "CS_ROUTING", 2)
        b.state_number = 7
        self._presence(b, "CS_ROUTING", "progressing")
        self._set_state(b, "CS_CONSUME_MEDIA", 7)
        self._codecs(b)
        a.ringing_peer = b.uuid
        if self.auto_answer:
            self.answer_outbound(b)
        else:
            # 180 Ringing from the phone (guessed: not in the captures).
            b.profile.progress = self.now_us()
            self._callstate(b, "RINGING")
            self.fire("CHANNEL_PROGRESS", b)
            a.profile.progress = self.now_us()
            self.fire("CHANNEL_PROGRESS", a)
        return None

    def _new_outbound(self, a: Channel, user: User, uuid: str) -> Channel:
        ext = user.ext
        now = self.clock()
        us = int(now * 1_000_000)
        # The phones register with contact user 'gw+<ext>'; FreeSWITCH keeps it URL-escaped in the
        # channel name and destination (show channels prints 'gw%2B1000', events decode to 'gw+1000').
        name = f"sofia/internal/gw%2B{ext}@{DOMAIN}:5070"
        dest = f"gw%2B{ext}"
        eff_name = a.variables.get("effective_caller_id_name", a.profile.caller_id_name)
        eff_num = a.variables.get("effective_caller_id_number", a.profile.caller_id_number)
        profile = Profile("outbound", a.profile.username, eff_name, eff_num, dest, uuid, name, us,
                          orig_caller_id_name=a.profile.caller_id_name,
                          orig_caller_id_number=a.profile.caller_id_number,
                          callee_id_name="Outbound Call", callee_id_number=dest,
                          ani=a.profile.caller_id_number)
        b = Channel(uuid, name, "outbound", profile, ext, now, hit_dialplan=False, call_uuid=uuid,
                    runs_dialplan=False, show_profile=True)
        b.presence_id = f"{ext}@{DOMAIN}"
        b.other_type = "originator"
        b.other_profile = a.profile.copy(created=0, answered=0, progress=0, callee_id_name=None,
                                         callee_id_number=None)
        b.initial = {"cid_name": eff_name, "cid_num": eff_num, "ip_addr": DOMAIN, "dest": dest}
        b.variables.update({
            "direction": "outbound", "is_outbound": "true", "uuid": uuid, "session_id": self._session_id(),
            "sip_local_network_addr": DOMAIN, "sip_profile_name": "internal", "text_media_flow": "disabled",
            "channel_name": name,
            "sip_destination_url": f"sip:gw+{ext}@{DOMAIN}:5070;transport=udp;gw={ext}",
            "max_forwards": "69", "originator_codec": "PCMU@8000h@20i", "originator": a.uuid,
            "signal_bond": a.uuid, "call_uuid": a.uuid, "origination_uuid": uuid,
            "dialed_user": ext, "dialed_domain": DOMAIN, "sip_invite_domain": DOMAIN,
            "presence_id": b.presence_id, "originate_early_media": "true",
            "originating_leg_uuid": a.uuid, "originate_endpoint": "sofia",
            "rtp_use_codec_string": "PCMU@8000h@20i", "local_media_ip": DOMAIN, "local_media_port": "16404",
            "advertised_media_ip": DOMAIN, "audio_media_flow": "sendrecv", "video_media_flow": "inactive",
            "sip_outgoing_contact_uri": f"<sip:mod_sofia@{DOMAIN}:5060>",
            "sip_req_uri": f"gw+{ext}@{DOMAIN}:5070;transport=udp;gw={ext}", "sip_to_host": f"{DOMAIN}:5070",
            "sip_from_host": DOMAIN, "sip_nat_detected": "true", "sofia_profile_name": "internal",
            "recovery_profile_name": "internal", "sofia_profile_url": f"sip:mod_sofia@{DOMAIN}:5060",
        })
        self.channels[uuid] = b
        self._count_session()
        return b

    def answer_outbound(self, b: Channel) -> None:
        """The agent's phone sends 200 OK: answer both legs and bridge them (capture 03 order)."""
        a = self.channels.get(b.variables.get("originator", ""))
        if a is None or not a.alive or not b.alive:
            return
        user = self.directory[b.user]
        a.ringing_peer = None
        b.variables.update({
            "sip_reply_host": DOMAIN, "sip_reply_port": "5070", "sip_network_ip": DOMAIN,
            "sip_network_port": "5070", "sip_user_agent": "FreeSWITCH-mod_sofia/1.11.1-release~64bit",
            "sip_from_display": b.profile.caller_id_name, "sip_from_user": b.profile.caller_id_number,
            "sip_to_user": f"gw+{b.user}", "sip_to_host": DOMAIN, "read_codec": "PCMU",
            "original_read_codec": "PCMU", "read_rate": "8000", "original_read_rate": "8000",
            "write_codec": "PCMU", "write_rate": "8000", "dtmf_type": "rfc2833",
        })
        for leg in (b, a):
            leg.profile.callee_id_name = user.callee_name
            leg.profile.callee_id_number = user.ext
            leg.callee_name, leg.callee_num = user.callee_name, user.ext
        if b.other_profile is not None:
            b.other_profile.callee_id_name = user.callee_name
            b.other_profile.callee_id_number = user.ext
        b.variables.update({
            "sip_full_from": f'"{b.profile.caller_id_name}" <sip:{b.profile.caller_id_number}@{DOMAIN}>',
            "sip_full_to": f"<sip:gw+{b.user}@{DOMAIN}:5070;transport=udp;gw={b.user}>",
            "sip_contact_user": f"gw+{b.user}", "sip_contact_uri": f"gw+{b.user}@{DOMAIN}:5070",
            "sip_call_id": new_uuid(), "switch_r_sdp": _sdp(20128), "remote_media_ip": DOMAIN,
            "remote_media_port": "20128", "rtp_use_codec_name": "PCMU", "rtp_use_codec_rate": "8000",
            "rtp_use_codec_ptime": "20",
        })
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
        self._set_state(b, "CS_EXCHANGE_MEDIA", 5)
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
        """The originate failed: mod_dptools hangs the caller up with the originate cause."""
        a.variables.update({"originate_disposition": cause, "DIALSTATUS": cause,
                            "originate_failed_cause": cause})
        self.hangup_channel(a, cause)
        return None

    def mark_answered(self, ch: Channel) -> None:
        """switch_channel_perform_mark_answered: CHANNEL_ANSWER, PRESENCE_IN, CHANNEL_CALLSTATE."""
        ch.profile.answered = self.now_us()
        ch.answered_at = self.clock()
        ch.answer_state = "answered"
        port = 16000 + 2 * (int(ch.variables.get("session_id", "1")) % 1000)
        ch.variables.update({"rtp_local_sdp_str": _sdp(port, "sendrecv"), "local_media_ip": DOMAIN,
                             "local_media_port": str(port), "advertised_media_ip": DOMAIN,
                             "rtp_use_timer_name": "soft", "rtp_use_pt": "0",
                             "rtp_use_ssrc": str(3_000_000_000 + port),
                             "rtp_2833_send_payload": "101", "rtp_2833_recv_payload": "101"})
        self.fire("CHANNEL_ANSWER", ch)
        self._presence(ch, "answered", "active")
        self._callstate(ch, "ACTIVE")

    # -- hang-up -------------------------------------------------------------------------
    def hangup_channel(self, ch: Channel, cause: str = "NORMAL_CLEARING",
                       after_mark: Callable[[], None] | None = None, remote: bool = False) -> None:
        """Hang a channel up (phone BYE, uuid_kill, sendmsg hangup, hangup app, no route ...)."""
        if not ch.alive or ch.destroyed:
            return
        peer = self.channels.get(ch.peer) if ch.peer else None
        if peer is not None and peer.alive:
            self._hangup_bridged(ch, peer, cause, after_mark, remote)
            return
        ringing = self.channels.get(ch.ringing_peer) if ch.ringing_peer else None
        self._mark_hangup(ch, cause, remote)
        if after_mark:
            after_mark()
        if ringing is not None and ringing.alive:
            # The caller gave up while the agent's phone rang: cancel the outbound leg.
            self._mark_hangup(ringing, "ORIGINATOR_CANCEL", False)
            self._tail(ringing)
        if ch.direction == "outbound":
            origin = self.channels.get(ch.variables.get("originator", ""))
            if origin is not None and origin.ringing_peer == ch.uuid and origin.alive:
                # The agent's phone rejected the call: the bridge fails with that cause.
                origin.ringing_peer = None
                self._tail(ch)
                frame = origin.frame_named("bridge")
                if frame is not None:
                    self.bridge_failed(origin, frame, cause)
                return
        self.stop_eavesdroppers(ch)
        self._unwind(ch)
        self._tail(ch)

    def _hangup_bridged(self, ch: Channel, peer: Channel, cause: str,
                        after_mark: Callable[[], None] | None, remote: bool) -> None:
        a, b = (ch, peer) if ch.originator else (peer, ch)
        if ch is a:
            # Capture 03: the customer (A, runs 'bridge') hangs up first.
            self._mark_hangup(a, cause, remote)
            if after_mark:
                after_mark()
            self._mark_hangup(b, cause, False)
            self._t_hangup(b)
            self.stop_eavesdroppers(b)
            self.stop_eavesdroppers(a)
            self._t_report(b)
            self._unbridge(a, b)
            self._t_complete(b)
            self._unwind(a)
            self._t_hangup(a)
            self._t_destroy(b)
            self._t_report(a)
            self._t_complete(a)
            self._t_destroy(a)
            return
        # Capture 05 (2): the agent (B) hangs up first; A ends by hangup_after_bridge.
        self._mark_hangup(b, cause, remote)
        if after_mark:
            after_mark()
        self._t_hangup(b)
        self._t_report(b)
        self._t_complete(b)
        self._unbridge(a, b)
        end_a = switch_true(a.variables.get("hangup_after_bridge"))
        if end_a:
            self._mark_hangup(a, cause, False)
        frame = a.frame_named("bridge")
        if frame is not None:
            self.complete(a, frame, "_none_")
        self.stop_eavesdroppers(b)
        if not end_a:
            self._t_destroy(b)
            self.pump(a)
            return
        self.stop_eavesdroppers(a)
        self._unwind(a)
        self._t_hangup(a)
        self._t_destroy(b)
        self._t_report(a)
        self._t_complete(a)
        self._t_destroy(a)

    def _unbridge(self, a: Channel, b: Channel) -> None:
        """CHANNEL_UNBRIDGE on the A-leg; the B-leg's call uuid reverts to its own (capture 03/05)."""
        self.fire("CHANNEL_UNBRIDGE", a, pre=[("Bridge-A-Unique-ID", a.uuid), ("Bridge-B-Unique-ID", b.uuid)])
        for leg in (a, b):
            leg.variables.pop("bridge_to", None)
            leg.peer = None
        b.call_uuid = b.uuid
        b.variables["call_uuid"] = b.uuid

    def _mark_hangup(self, ch: Channel, cause: str, remote: bool) -> None:
        """switch_channel_perform_hangup: CHANNEL_HANGUP while the running state is unchanged."""
        ch.hangup_cause = cause
        ch.answer_state = "hangup"
        ch.state_number = 10
        q850 = CAUSES.get(cause, 0)
        if remote:
            ch.variables.update({"sip_term_status": "200", "proto_specific_hangup_cause": "sip:200",
                                 "sip_term_cause": str(q850)})
        ch.variables["sip_reason"] = f'Q.850;cause={q850};text="{cause}"'
        ch.variables["sip_hangup_disposition"] = "recv_bye" if remote else "send_bye"
        self.fire("CHANNEL_HANGUP", ch)

    def _unwind(self, ch: Channel) -> None:
        """Running applications return because the channel is down, innermost first."""
        ch.private_queue.clear()
        ch.dialplan.clear()
        ch.session_events.clear()
        while ch.frames:
            frame = ch.frames[-1]
            if frame.app in ("eavesdrop", "three_way") and ch.eavesdrop is not None:
                self.end_eavesdrop(ch)
            elif frame.app == "park":
                self.fire("CHANNEL_UNPARK", ch)
                self.complete(ch, frame, "_none_")
            elif frame.app == "playback":
                ch.playback_token = None
                self.fire("PLAYBACK_STOP", ch, post=self.playback_headers(frame.data) + [("Playback-Status", "break")])
                self.complete(ch, frame, "PLAYBACK ERROR")
            else:
                self.complete(ch, frame, "_none_")

    def _tail(self, ch: Channel) -> None:
        self._t_hangup(ch)
        self._t_report(ch)
        self._t_complete(ch)
        self._t_destroy(ch)

    def _t_hangup(self, ch: Channel) -> None:
        self._set_state(ch, "CS_HANGUP", 10)
        ch.profile.hangup = self.now_us()  # Caller-Channel-Hangup-Time shows from CALLSTATE HANGUP on
        self._callstate(ch, "HANGUP")

    def _t_report(self, ch: Channel) -> None:
        ch.state_number = 11
        self._presence(ch, "CS_HANGUP", "idle")
        self._set_state(ch, "CS_REPORTING", 11)

    def _t_complete(self, ch: Channel) -> None:
        """CHANNEL_HANGUP_COMPLETE with the CDR variables (Hangup-Cause is printed twice)."""
        self._cdr_vars(ch)
        self.fire("CHANNEL_HANGUP_COMPLETE", ch, pre=[("Hangup-Cause", ch.hangup_cause or "NORMAL_CLEARING")])

    def _t_destroy(self, ch: Channel) -> None:
        ch.state_number = 12
        self.fire("CHANNEL_DESTROY", ch)
        self._set_state(ch, "CS_DESTROY", 12)
        ch.destroyed = True
        self.channels.pop(ch.uuid, None)

    def _cdr_vars(self, ch: Channel) -> None:
        cause = ch.hangup_cause or "NORMAL_CLEARING"
        end = self.clock()
        start = ch.created
        answered = ch.answered_at
        fmt = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))  # noqa: E731
        v = ch.variables
        v["hangup_cause"] = cause
        v["hangup_cause_q850"] = str(CAUSES.get(cause, 0))
        v["digits_dialed"] = "none"
        v["start_stamp"] = fmt(start)
        v["profile_start_stamp"] = fmt(start)
        if answered is not None:
            v["answer_stamp"] = fmt(answered)
        v["end_stamp"] = fmt(end)
        v["start_epoch"] = str(int(start))
        v["start_uepoch"] = str(int(start * 1_000_000))
        v["answer_epoch"] = str(int(answered)) if answered else "0"
        v["answer_uepoch"] = str(int(answered * 1_000_000)) if answered else "0"
        v["end_epoch"] = str(int(end))
        v["end_uepoch"] = str(int(end * 1_000_000))
        if ch.frames or "current_application" in v:
            v["last_app"] = v.get("current_application", "")
            if v.get("current_application_data"):
                v["last_arg"] = v["current_application_data"]
        v["caller_id"] = f'"{ch.profile.caller_id_name}" <{ch.profile.caller_id_number}>'
        v["duration"] = str(int(end - start))
        v["billsec"] = str(int(end - answered)) if answered else "0"
        v["mduration"] = str(int((end - start) * 1000))
        v["billmsec"] = str(int((end - answered) * 1000)) if answered else "0"
        v["uduration"] = str(int((end - start) * 1_000_000))
        if ch.peer or ch.bridged_call_uuid:
            v["bridge_hangup_cause"] = cause
