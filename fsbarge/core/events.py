"""Raw ESL headers -> one typed, decoded event.

A single slotted class rather than one class per event name: every event goes
through here, the fields the daemon reads are the same across channel events,
and ``event.name`` is as easy to match on as a type. Only the fields below are
URL-decoded, once, when the event is built.
"""

from __future__ import annotations

from fsbarge.core.wire import decode, parse_event

__all__ = ["Event", "from_headers", "from_plain", "SUBSCRIBED_EVENTS"]

# The events fsbarge needs (never `ALL`: FreeSWITCH drops a listener that falls
# 500 events behind, so every event we do not read is a risk and a cost).
SUBSCRIBED_EVENTS: tuple[str, ...] = (
    "CHANNEL_CREATE",
    "CHANNEL_ANSWER",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_PARK",
    "CHANNEL_UNPARK",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_DESTROY",
    "CHANNEL_UUID",
    # Hold and resume (Channel-Call-State HELD / UNHELD): the agent's held call is not the one a
    # barge joins. They fire only when a phone holds or resumes, so they cost next to nothing.
    "CHANNEL_HOLD",
    "CHANNEL_UNHOLD",
    "DTMF",
    "MEDIA_BUG_START",
    "MEDIA_BUG_STOP",
    "BACKGROUND_JOB",
    "HEARTBEAT",
    "SHUTDOWN",
    # Help requests (fsbarge.core.help). Last: every word after CUSTOM names a subclass.
    "CUSTOM",
    "fsbarge::help",
)

def _micros(value: str | None) -> float | None:
    """FreeSWITCH times are microseconds since the epoch; 0 means 'not yet'."""
    if not value or value == "0":
        return None
    try:
        return int(value) / 1_000_000
    except ValueError:
        return None


class Event:
    """The decoded fields of one event that any part of fsbarge reads."""

    __slots__ = (
        "name",
        "subclass",
        "uuid",
        "core_uuid",
        "timestamp",
        "sequence",
        "channel_name",
        "direction",
        "state",
        "call_state",
        "answer_state",
        "caller_number",
        "callee_number",
        "ani",
        "destination",
        "presence_id",
        "call_uuid",
        "other_uuid",
        "bridge_a",
        "bridge_b",
        "old_uuid",
        "created_time",
        "answered_time",
        "user_name",
        "dialed_user",
        "application",
        "application_data",
        "application_uuid",
        "application_response",
        "hangup_cause",
        "dtmf_digit",
        "dtmf_source",
        "media_bug_function",
        "media_bug_target",
        "fsbarge_mode",
        "fsbarge_target",
        "fsbarge_ticket",
        "help_agent",
        "help_reason",
        "job_uuid",
        "body",
        "has_variables",
    )

    name: str
    uuid: str | None

    def __init__(self, name: str, uuid: str | None = None, **fields: object) -> None:
        for slot in self.__slots__:
            setattr(self, slot, fields.pop(slot, None))
        self.name = name
        self.uuid = uuid
        if fields:
            raise TypeError(f"unknown event fields: {sorted(fields)}")

    def __repr__(self) -> str:
        return f"<Event {self.name} {self.uuid}>"


def from_headers(h: dict[str, str], body: bytes = b"") -> Event:
    """Build an Event from raw (still URL-encoded) event-plain headers."""
    ev = Event.__new__(Event)
    g = h.get
    ev.name = g("Event-Name") or ""
    ev.subclass = decode(g("Event-Subclass"))
    ev.uuid = g("Unique-ID")
    ev.core_uuid = g("Core-UUID")
    ts = g("Event-Date-Timestamp")
    ev.timestamp = _micros(ts)
    seq = g("Event-Sequence")
    ev.sequence = int(seq) if seq and seq.isdigit() else None
    ev.channel_name = decode(g("Channel-Name"))
    ev.direction = g("Call-Direction")
    ev.state = g("Channel-State")
    ev.call_state = g("Channel-Call-State")
    ev.answer_state = g("Answer-State")
    ev.caller_number = decode(g("Caller-Caller-ID-Number"))
    ev.callee_number = decode(g("Caller-Callee-ID-Number"))
    # The number the caller presented when the leg was created. Unlike Caller-ID-Number, FreeSWITCH
    # never swaps it with the callee's (uuid_bridge, att_xfer and transfers do swap those).
    ev.ani = decode(g("Caller-ANI"))
    ev.destination = decode(g("Caller-Destination-Number"))
    ev.presence_id = decode(g("Channel-Presence-ID"))
    ev.call_uuid = g("Channel-Call-UUID")
    ev.other_uuid = g("Other-Leg-Unique-ID")
    ev.bridge_a = g("Bridge-A-Unique-ID")
    ev.bridge_b = g("Bridge-B-Unique-ID")
    ev.old_uuid = g("Old-Unique-ID")
    ev.created_time = _micros(g("Caller-Channel-Created-Time"))
    ev.answered_time = _micros(g("Caller-Channel-Answered-Time"))
    # DTMF events carry no variable_* headers at all (captures README); remember
    # whether this event could have told us about variables, so that absence is
    # not mistaken for "unset".
    ev.has_variables = "variable_uuid" in h
    ev.user_name = decode(g("variable_user_name"))
    ev.dialed_user = decode(g("variable_dialed_user"))
    ev.application = g("Application")
    ev.application_data = decode(g("Application-Data"))
    ev.application_uuid = g("Application-UUID")
    ev.application_response = decode(g("Application-Response"))
    ev.hangup_cause = g("Hangup-Cause")
    ev.dtmf_digit = decode(g("DTMF-Digit"))
    ev.dtmf_source = g("DTMF-Source")
    ev.media_bug_function = g("Media-Bug-Function")
    ev.media_bug_target = g("Media-Bug-Target")
    ev.fsbarge_mode = decode(g("variable_fsbarge_mode"))
    ev.fsbarge_target = decode(g("variable_fsbarge_target"))
    ev.fsbarge_ticket = decode(g("variable_fsbarge_ticket"))  # a supervisor sent from another node
    # `fsbarge help request` (sendevent CUSTOM fsbarge::help): the agent's extension and why
    ev.help_agent = decode(g("Fsbarge-Agent"))
    ev.help_reason = decode(g("Fsbarge-Reason"))
    ev.job_uuid = g("Job-UUID")
    ev.body = body
    return ev


# The only channel variables the daemon reads (see from_headers); the fsbarge ones
# matter only on CHANNEL_PARK, the hand-off from the dialplan.
_VARIABLES = (b"\nvariable_user_name: ", b"\nvariable_dialed_user: ")
_PARK_VARIABLES = (b"\nvariable_fsbarge_mode: ", b"\nvariable_fsbarge_target: ", b"\nvariable_fsbarge_ticket: ")


# Applications that run and return at once. Their CHANNEL_EXECUTE / _COMPLETE pairs
# (a third of a call's events: every set/export/hash of a dialplan) change nothing
# fsbarge tracks, so they are dropped before the costly parse.
INSTANT_APPS = frozenset(
    {
        b"set", b"unset", b"multiset", b"export", b"bridge_export", b"set_global", b"set_profile_var",
        b"set_user", b"hash", b"log", b"info", b"event", b"db", b"limit", b"answer", b"pre_answer",
        b"ring_ready", b"sched_hangup", b"sched_transfer", b"bind_meta_app", b"unbind_meta_app",
        b"set_audio_level", b"set_mute", b"send_display", b"privacy", b"set_name", b"strftime",
        b"presence", b"respond", b"redirect", b"deflect", b"send_info", b"verbose_events",
        b"session_loglevel", b"enable_heartbeat", b"enable_keepalive", b"sleep_ms", b"capture",
    }
)
_EXECUTE = b"Event-Name: CHANNEL_EXECUTE"
_APPLICATION = b"\nApplication: "


def from_plain(body: bytes) -> Event | None:
    """Parse a text/event-plain body into an Event (reading only the variables we use).

    None for the execution events of instant applications (see INSTANT_APPS).
    """
    if body.startswith(_EXECUTE):
        # Application comes after the channel variables, near the end: look from there.
        i = body.rfind(_APPLICATION)
        if i >= 0:
            i += len(_APPLICATION)
            j = body.find(b"\n", i)
            if body[i:j] in INSTANT_APPS:
                return None
    headers, inner = parse_event(body, _VARIABLES, _PARK_VARIABLES)
    return from_headers(headers, inner)
