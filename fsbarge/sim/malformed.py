"""Malformed and hostile frames for ``FreeSwitchSim.send_raw`` (parser robustness tests).

Each function returns the exact bytes to put on the wire. None of them can come from a healthy
FreeSWITCH except ``hostile_header_event``, which is what FreeSWITCH really sends when a
caller-controlled value contains '%0A' (switch_url_encode leaves an existing '%XX' alone).
"""

from __future__ import annotations

from .wire import serialize_plain, url_encode


def _frame(payload: bytes, content_type: str = "text/event-plain") -> bytes:
    return f"Content-Length: {len(payload)}\nContent-Type: {content_type}\n\n".encode() + payload


def garbage_headers() -> bytes:
    """Header lines without ':' and a NUL byte, then a blank line (no body)."""
    return b"this is not a header\nneither\x00is this\n\n"


def bad_content_length(kind: str = "nonnumeric") -> bytes:
    """Outer Content-Length that is not a number, negative, or far larger than what follows."""
    if kind == "negative":
        return b"Content-Length: -5\nContent-Type: text/event-plain\n\nEvent-Name: HEARTBEAT\n\n"
    if kind == "huge":
        return b"Content-Length: 99999999999\nContent-Type: text/event-plain\n\nEvent-Name: HEARTBEAT\n\n"
    return b"Content-Length: twelve\nContent-Type: text/event-plain\n\nEvent-Name: HEARTBEAT\n\n"


def truncated_event(uuid: str = "00000000-0000-0000-0000-000000000000") -> bytes:
    """A frame announcing more bytes than it carries (send it, then drop the connection)."""
    payload = f"Event-Name: CHANNEL_ANSWER\nUnique-ID: {uuid}\n\n".encode()
    return f"Content-Length: {len(payload) + 500}\nContent-Type: text/event-plain\n\n".encode() + payload


def non_utf8_event(uuid: str = "00000000-0000-0000-0000-000000000000") -> bytes:
    """A well-framed event whose header value is raw Latin-1 bytes, not UTF-8 or URL-encoded."""
    payload = (
        b"Event-Name: CHANNEL_CREATE\nUnique-ID: " + uuid.encode()
        + b"\nCaller-Caller-ID-Name: Jos\xe9 \xff\xfe\nChannel-Name: sofia/internal/1001%40127.0.0.1\n\n"
    )
    return _frame(payload)


def event_without_name(uuid: str = "00000000-0000-0000-0000-000000000000") -> bytes:
    """A text/event-plain frame with channel headers but no Event-Name."""
    return _frame(serialize_plain([("Unique-ID", uuid), ("Channel-State", "CS_EXECUTE")]))


def hostile_header_event(real_uuid: str, forged_uuid: str, event_name: str = "CHANNEL_PARK") -> bytes:
    """An event whose caller-controlled header decodes to a second 'Unique-ID:' line.

    Split-then-decode parsers see one Unique-ID (the real one); decode-then-split parsers (as
    greenswitch does) see a forged ``Unique-ID: <forged_uuid>`` after the real one.
    """
    hostile = f"Mallory%0AUnique-ID: {forged_uuid}"
    headers = [
        ("Event-Name", event_name),
        ("Unique-ID", real_uuid),
        ("Caller-Caller-ID-Name", hostile),
        ("variable_sip_from_display", hostile),
    ]
    assert "%0A" in url_encode(hostile)
    return _frame(serialize_plain(headers))


def unknown_content_type() -> bytes:
    return _frame(b"surprise\n", "text/x-unknown")


SAMPLES = {
    "garbage_headers": garbage_headers,
    "bad_content_length": bad_content_length,
    "non_utf8_event": non_utf8_event,
    "event_without_name": event_without_name,
    "unknown_content_type": unknown_content_type,
}
