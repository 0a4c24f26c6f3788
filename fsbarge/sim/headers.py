"""Builds event headers in the order and shape FreeSWITCH 1.11 prints them.

Layout of a channel event (switch_event_prep_for_delivery + switch_channel_event_set_data):
  [lead headers, e.g. a sendmsg packet]  Event-Name  core headers  [event 'pre' headers]
  Channel-* basic data  Caller-* profile  [Other-Type + Other-Leg-*]  [variable_*]  [event 'post']
Only some event types carry variable_* (switch_channel_event_set_extended_data); DTMF, CODEC,
CHANNEL_STATE, CHANNEL_CALLSTATE, PRESENCE_IN, CHANNEL_OUTGOING and PRIVATE_COMMAND do not.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .model import Channel, Profile
from .wire import Event

# Event-Calling-File / -Function / -Line-Number as seen in the captures.
CALL_SITES: dict[str, tuple[str, str, str]] = {
    "API": ("switch_loadable_module.c", "switch_api_execute", "2954"),
    "CALL_UPDATE": ("switch_channel.c", "switch_channel_flip_cid", "3279"),
    "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", "3848"),
    "CHANNEL_BRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", "1689"),
    "CHANNEL_CALLSTATE": ("switch_channel.c", "switch_channel_perform_set_callstate", "302"),
    "CHANNEL_CREATE": ("switch_core_state_machine.c", "switch_core_session_run", "626"),
    "CHANNEL_DESTROY": ("switch_core_session.c", "switch_core_session_perform_destroy", "1588"),
    "CHANNEL_EXECUTE": ("switch_core_session.c", "switch_core_session_exec", "2949"),
    "CHANNEL_EXECUTE_COMPLETE": ("switch_core_session.c", "switch_core_session_exec", "2972"),
    "CHANNEL_HANGUP": ("switch_channel.c", "switch_channel_perform_hangup", "3447"),
    "CHANNEL_HANGUP_COMPLETE": ("switch_core_state_machine.c", "switch_core_session_reporting_state", "943"),
    "CHANNEL_ORIGINATE": ("switch_core_state_machine.c", "switch_core_session_run", "632"),
    "CHANNEL_OUTGOING": ("switch_core_session.c", "switch_core_session_outgoing_channel", "768"),
    "CHANNEL_PARK": ("switch_ivr.c", "switch_ivr_park", "1002"),
    "CHANNEL_PROGRESS": ("switch_channel.c", "switch_channel_perform_mark_ring_ready_value", "3545"),
    "CHANNEL_STATE": ("switch_channel.c", "switch_channel_perform_set_running_state", "2409"),
    "CHANNEL_UNBRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", "1879"),
    "CHANNEL_UNPARK": ("switch_ivr.c", "switch_ivr_park", "1213"),
    "CODEC": ("switch_core_codec.c", "switch_core_session_set_read_codec", "300"),
    "DTMF": ("switch_channel.c", "switch_channel_dequeue_dtmf", "678"),
    "HEARTBEAT": ("switch_core.c", "send_heartbeat", "95"),
    "MEDIA_BUG_START": ("switch_core_media_bug.c", "switch_core_media_bug_add", "1014"),
    "MEDIA_BUG_STOP": ("switch_core_media_bug.c", "switch_core_media_bug_destroy", "84"),
    "PLAYBACK_START": ("switch_ivr_play_say.c", "switch_ivr_play_file", "1649"),
    "PLAYBACK_STOP": ("switch_ivr_play_say.c", "switch_ivr_play_file", "2023"),
    "PRESENCE_IN": ("switch_channel.c", "switch_channel_perform_presence", "806"),
    "PRIVATE_COMMAND": ("switch_ivr.c", "switch_ivr_parse_next_event", "804"),
    "RECV_INFO": ("sofia.c", "create_info_event", "9733"),
    "BACKGROUND_JOB": ("mod_event_socket.c", "api_exec", "1557"),
    "SHUTDOWN": ("switch_core.c", "switch_core_destroy", "3108"),
    "CUSTOM": ("mod_event_socket.c", "parse_command", "2034"),
    "CHANNEL_APPLICATION": ("mod_dptools.c", "event_function", "1902"),  # the event app, renamed by its args
}

VARIABLE_EVENTS = frozenset({
    "CHANNEL_CREATE", "CHANNEL_ORIGINATE", "CHANNEL_UUID", "CHANNEL_ANSWER", "CHANNEL_PARK",
    "CHANNEL_UNPARK", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DATA",
    "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_DESTROY", "API", "RECORD_START",
    "RECORD_STOP", "PLAYBACK_START", "PLAYBACK_STOP", "CALL_UPDATE", "MEDIA_BUG_START",
    "MEDIA_BUG_STOP", "CHANNEL_HOLD", "CHANNEL_UNHOLD", "CUSTOM",
})


@dataclass
class CoreInfo:
    """What every event's core headers say about the switch (changes on a restart)."""

    core_uuid: str
    hostname: str = "fsbarge-sim"
    ipv4: str = "127.0.0.1"
    ipv6: str = "::1"
    started: float = field(default_factory=time.time)


def profile_headers(prefix: str, p: Profile, index: bool) -> list[tuple[str, str]]:
    """switch_caller_profile_event_set_data(); Other-Leg-* copies have no Profile-Index."""
    h = [
        (f"{prefix}-Direction", p.direction),
        (f"{prefix}-Logical-Direction", p.logical_direction or p.direction),
        (f"{prefix}-Username", p.username),
        (f"{prefix}-Dialplan", p.dialplan),
        (f"{prefix}-Caller-ID-Name", p.caller_id_name),
        (f"{prefix}-Caller-ID-Number", p.caller_id_number),
        (f"{prefix}-Orig-Caller-ID-Name", p.orig_caller_id_name or p.caller_id_name),
        (f"{prefix}-Orig-Caller-ID-Number", p.orig_caller_id_number or p.caller_id_number),
    ]
    if p.callee_id_name is not None:
        h.append((f"{prefix}-Callee-ID-Name", p.callee_id_name))
    if p.callee_id_number is not None:
        h.append((f"{prefix}-Callee-ID-Number", p.callee_id_number))
    h += [
        (f"{prefix}-Network-Addr", p.network_addr),
        (f"{prefix}-ANI", p.ani or p.caller_id_number),
        (f"{prefix}-Destination-Number", p.destination_number),
        (f"{prefix}-Unique-ID", p.uuid),
        (f"{prefix}-Source", p.source),
        (f"{prefix}-Context", p.context),
        (f"{prefix}-Channel-Name", p.chan_name),
    ]
    if index:
        h.append((f"{prefix}-Profile-Index", "1"))
    h += [
        (f"{prefix}-Profile-Created-Time", str(p.created)),
        (f"{prefix}-Channel-Created-Time", str(p.created)),
        (f"{prefix}-Channel-Answered-Time", str(p.answered)),
        (f"{prefix}-Channel-Progress-Time", str(p.progress)),
        (f"{prefix}-Channel-Progress-Media-Time", str(p.progress_media)),
        (f"{prefix}-Channel-Hangup-Time", str(p.hangup)),
        (f"{prefix}-Channel-Transfer-Time", str(p.transfer)),
        (f"{prefix}-Channel-Resurrect-Time", str(p.resurrect)),
        (f"{prefix}-Channel-Bridged-Time", str(p.bridged)),
        (f"{prefix}-Channel-Last-Hold", "0"),
        (f"{prefix}-Channel-Hold-Accum", "0"),
        (f"{prefix}-Screen-Bit", "true"),
        (f"{prefix}-Privacy-Hide-Name", "false"),
        (f"{prefix}-Privacy-Hide-Number", "false"),
    ]
    return h


def channel_headers(ch: Channel) -> list[tuple[str, str]]:
    """switch_channel_event_set_basic_data(): Channel-*, Caller-*, Other-Leg-*."""
    h = [
        ("Channel-State", ch.state),
        ("Channel-Call-State", ch.callstate),
        ("Channel-State-Number", str(ch.state_number)),
        ("Channel-Name", ch.name),
        ("Unique-ID", ch.uuid),
        ("Call-Direction", ch.direction),
        ("Presence-Call-Direction", ch.direction),
        ("Channel-HIT-Dialplan", "true" if ch.hit_dialplan else "false"),
    ]
    if ch.presence_id and ch.show_presence:
        h.append(("Channel-Presence-ID", ch.presence_id))
    h.append(("Channel-Call-UUID", ch.call_uuid or ch.uuid))
    h.append(("Answer-State", ch.answer_state))
    if ch.hangup_cause:
        h.append(("Hangup-Cause", ch.hangup_cause))
    if ch.read_codec:
        h += [("Channel-Read-Codec-Name", ch.read_codec[0]), ("Channel-Read-Codec-Rate", ch.read_codec[1]),
              ("Channel-Read-Codec-Bit-Rate", ch.read_codec[2])]
    if ch.write_codec:
        h += [("Channel-Write-Codec-Name", ch.write_codec[0]), ("Channel-Write-Codec-Rate", ch.write_codec[1]),
              ("Channel-Write-Codec-Bit-Rate", ch.write_codec[2])]
    if ch.show_profile:
        h += profile_headers("Caller", ch.profile, index=True)
    if ch.other_type and ch.other_profile is not None:
        h.append(("Other-Type", ch.other_type))
        h += profile_headers("Other-Leg", ch.other_profile, index=False)
    return h


class EventFactory:
    """Numbers and stamps events; one per FreeSWITCH 'boot' (Event-Sequence restarts with it)."""

    def __init__(self, core: CoreInfo, clock: Callable[[], float]) -> None:
        self.core = core
        self.clock = clock
        self._seq = itertools.count(1)

    def core_headers(self, name: str) -> list[tuple[str, str]]:
        now = self.clock()
        site = CALL_SITES.get(name, ("switch_event.c", "switch_event_fire_detailed", "2000"))
        return [
            ("Core-UUID", self.core.core_uuid),
            ("FreeSWITCH-Hostname", self.core.hostname),
            ("FreeSWITCH-Switchname", self.core.hostname),
            ("FreeSWITCH-IPv4", self.core.ipv4),
            ("FreeSWITCH-IPv6", self.core.ipv6),
            ("Event-Date-Local", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))),
            ("Event-Date-GMT", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))),
            ("Event-Date-Timestamp", str(int(now * 1_000_000))),
            ("Event-Calling-File", site[0]),
            ("Event-Calling-Function", site[1]),
            ("Event-Calling-Line-Number", site[2]),
            ("Event-Sequence", str(next(self._seq))),
        ]

    def build(
        self,
        name: str,
        ch: Channel | None = None,
        *,
        pre: Iterable[tuple[str, str]] = (),
        post: Iterable[tuple[str, str]] = (),
        lead: Iterable[tuple[str, str]] = (),
        body: str | None = None,
        subclass: str | None = None,
        with_vars: bool | None = None,
    ) -> Event:
        headers: list[tuple[str, str]] = list(lead)
        if subclass is not None and not any(k.lower() == "event-subclass" for k, _ in headers):
            headers.append(("Event-Subclass", subclass))
        headers.append(("Event-Name", name))
        headers += self.core_headers(name)
        headers += list(pre)
        if ch is not None:
            headers += channel_headers(ch)
            if with_vars is None:
                with_vars = name in VARIABLE_EVENTS
            if with_vars:
                headers += [(f"variable_{k}", v) for k, v in ch.variables.items()]
        headers += list(post)
        return Event(name, headers, body, subclass)
