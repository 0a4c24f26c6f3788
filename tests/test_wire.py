"""Event Socket framing and header decoding, including hostile and malformed input."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbarge.core.events import from_plain
from fsbarge.core.wire import BadFrame, Frame, FrameReader, ProtocolError, decode, parse_plain
from tests.captures import captures  # noqa: F401  (fixture)


def event_frame(body: bytes) -> bytes:
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body


def test_hostile_header_value_cannot_forge_another_header() -> None:
    """A caller-controlled SIP header carrying %0A must not overwrite Unique-ID (greenswitch's flaw)."""
    body = (
        b"Event-Name: CHANNEL_PARK\n"
        b"Unique-ID: real-uuid\n"
        b"variable_sip_h_X-Evil: x%0AUnique-ID: forged%0AEvent-Name: SHUTDOWN\n"
        b"variable_user_name: 1002\n"
        b"variable_uuid: real-uuid\n\n"
    )
    [frame] = FrameReader().feed(event_frame(body))
    assert isinstance(frame, Frame)
    ev = from_plain(frame.body)
    assert (ev.name, ev.uuid, ev.user_name) == ("CHANNEL_PARK", "real-uuid", "1002")
    headers, _ = parse_plain(frame.body)
    assert decode(headers["variable_sip_h_X-Evil"]) == "x\nUnique-ID: forged\nEvent-Name: SHUTDOWN"


def test_hostile_value_in_a_field_we_read_stays_in_that_field() -> None:
    body = b"Event-Name: CHANNEL_CREATE\nUnique-ID: u1\nCaller-Caller-ID-Number: 1001%0AUnique-ID%3A%20forged\n\n"
    ev = from_plain(body)
    assert ev.uuid == "u1"
    assert ev.caller_number == "1001\nUnique-ID: forged"


def test_event_with_its_own_body_keeps_it_separate() -> None:
    inner = b"Signal=3\r\nDuration=250\r\n"
    body = b"Event-Name: RECV_INFO\nUnique-ID: u1\nContent-Length: %d\n\n" % len(inner) + inner
    headers, own = parse_plain(body)
    assert own == inner
    assert "Signal=3" not in "".join(headers)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"this is not a header\n\n", "header line without ':'"),
        (b"Content-Type: text/event-plain\nContent-Length: 12x\n\n", "bad Content-Length"),
        (b"Content-Type: text/event-plain\nContent-Length: -5\n\n", "bad Content-Length"),
    ],
)
def test_malformed_frames_are_reported_and_skipped(raw: bytes, reason: str) -> None:
    good = event_frame(b"Event-Name: HEARTBEAT\n\n")
    frames = FrameReader().feed(raw + good)
    assert isinstance(frames[0], BadFrame) and frames[0].reason.startswith(reason)
    assert isinstance(frames[1], Frame) and from_plain(frames[1].body).name == "HEARTBEAT"


def test_non_utf8_bytes_do_not_break_parsing() -> None:
    ev = from_plain(b"Event-Name: CHANNEL_CREATE\nUnique-ID: u1\nCaller-Caller-ID-Name: \xff\xfe\n\n")
    assert (ev.name, ev.uuid) == ("CHANNEL_CREATE", "u1")


def test_garbled_line_inside_an_event_body_keeps_the_rest() -> None:
    ev = from_plain(b"Event-Name: DTMF\nUnique-ID: u1\ngarbage without colon\nDTMF-Digit: 2\n\n")
    assert (ev.name, ev.uuid, ev.dtmf_digit) == ("DTMF", "u1", "2")


def test_an_absurd_content_length_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        FrameReader().feed(b"Content-Type: text/event-plain\nContent-Length: 999999999999\n\n")


def test_reply_and_api_frames() -> None:
    data = (
        b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"
        b"Content-Type: api/response\nContent-Length: 17\n\n{\"row_count\": 0}\n"
    )
    reply, api = FrameReader().feed(data)
    assert isinstance(reply, Frame) and reply.headers["Reply-Text"] == "+OK accepted"
    assert isinstance(api, Frame) and api.body == b'{"row_count": 0}\n'


@pytest.fixture(scope="module")
def stream(captures: Path) -> tuple[bytes, list]:  # noqa: F811
    """60 kB of capture 03's event stream, and its frames read in one go."""
    data = (captures / "03-barge-esl-park-sendmsg" / "events-plain.raw").read_bytes()[:60000]
    return data, [(f.headers, f.body) for f in FrameReader().feed(data) if isinstance(f, Frame)]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_split_of_the_stream_gives_the_same_frames(stream: tuple[bytes, list], data: st.DataObject) -> None:
    capture, whole = stream
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=len(capture) - 1), max_size=40))
    reader = FrameReader()
    out = []
    prev = 0
    for cut in sorted(set(cuts)) + [len(capture)]:
        out += [(f.headers, f.body) for f in reader.feed(capture[prev:cut]) if isinstance(f, Frame)]
        prev = cut
    assert out == whole
