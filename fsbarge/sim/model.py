"""Plain data of the simulated PBX: directory users, channels, caller profiles, running apps.

Names and values follow FreeSWITCH (switch_types.h, switch_channel.c) so that the header builder
can print them unchanged.
"""

from __future__ import annotations

import uuid as uuidlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

DOMAIN = "127.0.0.1"

STATE_NUMBERS = {
    "CS_NEW": 0, "CS_INIT": 1, "CS_ROUTING": 2, "CS_SOFT_EXECUTE": 3, "CS_EXECUTE": 4,
    "CS_EXCHANGE_MEDIA": 5, "CS_PARK": 6, "CS_CONSUME_MEDIA": 7, "CS_HIBERNATE": 8, "CS_RESET": 9,
    "CS_HANGUP": 10, "CS_REPORTING": 11, "CS_DESTROY": 12, "CS_NONE": 13,
}
CALLSTATE_NUMBERS = {
    "DOWN": 0, "DIALING": 1, "RINGING": 2, "EARLY": 3, "ACTIVE": 4, "HELD": 5, "RING_WAIT": 6,
    "HANGUP": 7, "UNHELD": 8,
}
# switch_call_cause_t values; hangup_cause_q850 carries the number.
CAUSES = {
    "NONE": 0, "UNALLOCATED_NUMBER": 1, "NO_ROUTE_TRANSIT_NET": 2, "NO_ROUTE_DESTINATION": 3,
    "CHANNEL_UNACCEPTABLE": 6, "NORMAL_CLEARING": 16, "USER_BUSY": 17, "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19, "SUBSCRIBER_ABSENT": 20, "CALL_REJECTED": 21, "NUMBER_CHANGED": 22,
    "DESTINATION_OUT_OF_ORDER": 27, "INVALID_NUMBER_FORMAT": 28, "FACILITY_REJECTED": 29,
    "NORMAL_UNSPECIFIED": 31, "NORMAL_CIRCUIT_CONGESTION": 34, "NETWORK_OUT_OF_ORDER": 38,
    "NORMAL_TEMPORARY_FAILURE": 41, "SWITCH_CONGESTION": 42, "RECOVERY_ON_TIMER_EXPIRE": 102,
    "INTERWORKING": 127, "ORIGINATOR_CANCEL": 487, "LOSE_RACE": 502, "MANAGER_REQUEST": 503,
    "BLIND_TRANSFER": 600, "ATTENDED_TRANSFER": 601, "ALLOTTED_TIMEOUT": 602, "USER_CHALLENGE": 603,
    "MEDIA_TIMEOUT": 604, "PICKED_OFF": 605, "USER_NOT_REGISTERED": 606, "PROGRESS_TIMEOUT": 607,
    "CRASH": 700, "SYSTEM_SHUTDOWN": 701,
}

# switch_event.c EVENT_NAMES: what 'event plain <names>' and 'sendevent <name>' accept.
EVENT_NAMES = frozenset("""
CUSTOM CLONE CHANNEL_CREATE CHANNEL_DESTROY CHANNEL_STATE CHANNEL_CALLSTATE CHANNEL_ANSWER
CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HOLD
CHANNEL_UNHOLD CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA
CHANNEL_OUTGOING CHANNEL_PARK CHANNEL_UNPARK CHANNEL_APPLICATION CHANNEL_ORIGINATE CHANNEL_UUID API
LOG INBOUND_CHAN OUTBOUND_CHAN STARTUP SHUTDOWN PUBLISH UNPUBLISH TALK NOTALK SESSION_CRASH
MODULE_LOAD MODULE_UNLOAD DTMF MESSAGE PRESENCE_IN NOTIFY_IN PRESENCE_OUT PRESENCE_PROBE
MESSAGE_WAITING MESSAGE_QUERY ROSTER CODEC BACKGROUND_JOB DETECTED_SPEECH DETECTED_TONE
PRIVATE_COMMAND HEARTBEAT TRAP ADD_SCHEDULE DEL_SCHEDULE EXE_SCHEDULE RE_SCHEDULE RELOADXML NOTIFY
PHONE_FEATURE PHONE_FEATURE_SUBSCRIBE SEND_MESSAGE RECV_MESSAGE REQUEST_PARAMS CHANNEL_DATA GENERAL
COMMAND SESSION_HEARTBEAT CLIENT_DISCONNECTED SERVER_DISCONNECTED SEND_INFO RECV_INFO
RECV_RTCP_MESSAGE SEND_RTCP_MESSAGE CALL_SECURE NAT RECORD_START RECORD_STOP PLAYBACK_START
PLAYBACK_STOP CALL_UPDATE FAILURE SOCKET_DATA MEDIA_BUG_START MEDIA_BUG_STOP CONFERENCE_DATA_QUERY
CONFERENCE_DATA CALL_SETUP_REQ CALL_SETUP_RESULT CALL_DETAIL DEVICE_STATE TEXT SHUTDOWN_REQUESTED ALL
""".split())

PCMU = ("PCMU", "8000", "64000")
L16 = ("L16", "8000", "128000")  # eavesdrop swaps the supervisor's read codec to L16


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def switch_true(value: str | None) -> bool:
    """switch_true(): the strings FreeSWITCH treats as true."""
    if value is None:
        return False
    v = value.strip().lower()
    if v in ("yes", "on", "true", "t", "enable", "enabled", "active", "allow"):
        return True
    try:
        return int(v) != 0
    except ValueError:
        return False


@dataclass
class User:
    """A directory user (directory/default/<ext>.xml) and its registered phone."""

    ext: str
    name: str  # caller-id name the phone sends in From
    effective_name: str  # effective_caller_id_name from the directory
    callgroup: str = "default"
    registered: bool = True
    answer_name: str | None = None  # Remote-Party-ID the phone answers with (callee name)

    @property
    def callee_name(self) -> str:
        return self.answer_name or self.name


def default_directory() -> dict[str, User]:
    """The stock 1000-1019 users; 1000-1002 named like the captures' agent/customer/supervisor."""
    users = {}
    for n in range(1000, 1020):
        ext = str(n)
        users[ext] = User(ext, f"Extension {ext}", f"Extension {ext}")
    users["1000"] = User("1000", "Agent", "Agent 1000", "agents")
    users["1001"] = User("1001", "Customer", "Customer 1001", "customers")
    users["1002"] = User("1002", "Supervisor", "Supervisor 1002", "supervisors")
    return users


@dataclass
class Profile:
    """switch_caller_profile_t, printed as Caller-* / Other-Leg-* headers. Times in microseconds."""

    direction: str
    username: str
    caller_id_name: str
    caller_id_number: str
    destination_number: str
    uuid: str
    chan_name: str
    created: int
    logical_direction: str | None = None
    orig_caller_id_name: str | None = None
    orig_caller_id_number: str | None = None
    callee_id_name: str | None = None
    callee_id_number: str | None = None
    ani: str | None = None
    network_addr: str = DOMAIN
    dialplan: str = "XML"
    source: str = "mod_sofia"
    context: str = "default"
    answered: int = 0
    progress: int = 0
    progress_media: int = 0
    hangup: int = 0
    transfer: int = 0
    resurrect: int = 0
    bridged: int = 0

    def copy(self, **changes: Any) -> "Profile":
        data = dict(self.__dict__)
        data.update(changes)
        return Profile(**data)


@dataclass(eq=False)  # identity matters: two runs of one app are different frames
class Frame:
    """An application running on a channel (dialplan or sendmsg), innermost last."""

    app: str
    data: str
    app_uuid: str
    private: list[tuple[str, str]] | None = None  # the sendmsg packet, re-fired as PRIVATE_COMMAND
    event_lock: bool = False  # run from a sendmsg with event-lock: no other sendmsg is parsed until it returns


@dataclass(eq=False)
class Eavesdrop:
    """State of switch_ivr_eavesdrop_session() on the supervisor's channel."""

    target: str
    frame: Frame
    mux_read: bool  # supervisor heard by the target's peer (whisper_aleg, key 1)
    mux_write: bool  # supervisor heard by the target itself (whisper_bleg, key 2)
    bridge_read: bool  # supervisor hears the target's own audio
    bridge_write: bool  # supervisor hears the audio written to the target (its peer)
    dtmf: bool
    queued_digits: list[str] = field(default_factory=list)
    target_ch: Any = field(default=None, repr=False)  # kept for MEDIA_BUG_STOP after the target is gone

    @property
    def mode(self) -> str:
        return {
            (False, False): "listen",
            (True, False): "customer_whisper",
            (False, True): "whisper",
            (True, True): "barge",
        }[(self.mux_read, self.mux_write)]


@dataclass
class MetaBinding:
    """One ``bind_meta_app <key> <listen> <respond> <app>::<args>``."""

    listen: str  # 'a': digits the phone on this leg sends, 'b': digits sent to it
    respond: str  # 's' same leg, 'o' opposite, 'a'/'b', 'i' inline, '1' once
    app: str
    arg: str


@dataclass
class MetaBindings:
    """The meta key state of one leg (dtmf_meta_data_t): '*' then a bound digit runs its app."""

    meta_key: str = "*"
    keys: dict[str, MetaBinding] = field(default_factory=dict)
    meta_on: bool = False
    last_digit: float = 0.0


@dataclass(eq=False)
class Channel:
    """One FreeSWITCH session (sofia leg) and everything the event headers print about it."""

    uuid: str
    name: str
    direction: str
    profile: Profile
    user: str  # directory user of the phone on this leg
    created: float
    variables: dict[str, str] = field(default_factory=dict)
    state: str = "CS_NEW"
    state_number: int = 0
    callstate: str = "DOWN"
    answer_state: str = "ringing"
    hit_dialplan: bool = True
    presence_id: str | None = None
    show_presence: bool = False
    show_profile: bool = False
    call_uuid: str = ""
    read_codec: tuple[str, str, str] | None = None
    write_codec: tuple[str, str, str] | None = None
    hangup_cause: str | None = None
    other_type: str | None = None
    other_profile: Profile | None = None
    frames: list[Frame] = field(default_factory=list)
    dialplan: deque[tuple[str, str]] = field(default_factory=deque)
    private_queue: deque[list[tuple[str, str]]] = field(default_factory=deque)
    peer: str | None = None  # bridged partner
    originator: bool = False  # runs the bridge application (A-leg)
    eavesdrop: Eavesdrop | None = None
    callee_name: str = ""
    callee_num: str = ""
    sent_callee_name: str = ""
    sent_callee_num: str = ""
    bridged_call_uuid: str = ""  # show channels 'call_uuid' column, set by a bridge
    ip_addr: str = DOMAIN
    initial: dict[str, str] = field(default_factory=dict)
    answered_at: float | None = None
    destroyed: bool = False
    busy: bool = False  # re-entrancy guard of the app pump
    ringing_peer: str | None = None  # A-leg waiting for this outbound leg to answer
    playback_token: object | None = None
    presence_count: int = 0
    runs_dialplan: bool = True  # inbound legs hang up when their dialplan runs out
    session_events: deque[list[tuple[str, str]]] = field(default_factory=deque)  # sendevent queue
    to_node: bool = False  # an outbound leg to another simulated node (network.py)
    show_app: tuple[str, str] = ("", "")  # show channels application; only CHANNEL_EXECUTE updates it
    meta: MetaBindings | None = None  # bind_meta_app on this leg, digits its phone sends (listen 'a')
    meta_send: MetaBindings | None = None  # ... digits sent to its phone by its peer (listen 'b')

    @property
    def alive(self) -> bool:
        return self.hangup_cause is None

    @property
    def running_app(self) -> Frame | None:
        return self.frames[-1] if self.frames else None

    def frame_named(self, app: str) -> Frame | None:
        for frame in reversed(self.frames):
            if frame.app == app:
                return frame
        return None

    @property
    def parked(self) -> bool:
        return bool(self.frames) and self.frames[-1].app == "park"

    def set_var(self, name: str, value: str | None) -> None:
        if value is None or value == "":
            self.variables.pop(name, None)
        else:
            self.variables[name] = value
