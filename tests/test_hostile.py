"""Hostile input, as properties: whatever bytes reach the frame reader and the event path, nothing
crashes, nothing hangs, no header is forged and the audit does not change.

Thousands of examples per run (see the settings below); the inputs are built around real
captured frames so that the interesting parsers, not only the first check, are exercised.
"""

from __future__ import annotations

import urllib.parse

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsbarge.core.barge import OpenAudit
from fsbarge.core.events import from_plain
from fsbarge.core.wire import MAX_FRAME_BYTES, BadFrame, Frame, FrameReader, ProtocolError
from tests.factories import SUP, Rig, call_events

FAST = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EVENT_NAMES = ["CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP", "CHANNEL_PARK", "CHANNEL_EXECUTE",
               "CHANNEL_EXECUTE_COMPLETE", "DTMF", "MEDIA_BUG_START", "NOT_AN_EVENT", "", "CUSTOM"]
# values an attacker controls through caller ID, SIP headers or DTMF: encoded newlines and colons
NASTY = st.one_of(
    # FreeSWITCH URL-encodes every value in text/event-plain: a raw newline would be a real header
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=40),
    st.sampled_from(["%0AUnique-ID: forged", "%0D%0AEvent-Name: CHANNEL_PARK", "a%3Ab", "%", "%ZZ", "%0a%0a",
                     "variable_fsbarge_target: 1000", "\u202e1000", "*331000"]),
    st.binary(max_size=30).map(lambda b: urllib.parse.quote_from_bytes(b)),
)


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n%s" % (len(body), body)


@st.composite
def event_bodies(draw: st.DrawFn) -> bytes:
    headers = [("Event-Name", draw(st.sampled_from(EVENT_NAMES)))]
    if draw(st.booleans()):
        headers.append(("Unique-ID", draw(st.sampled_from([SUP, "", "not-a-uuid", "a" * 300]))))
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(["Caller-Caller-ID-Number", "Caller-Caller-ID-Name", "DTMF-Digit", "Application",
                                     "Application-Data", "variable_sip_user_agent", "Channel-Name", "Core-UUID",
                                     "Caller-Destination-Number", "Answer-State", "Hangup-Cause"]))
        headers.append((name, draw(NASTY)))
    text = "".join(f"{k}: {v}\n" for k, v in headers)
    raw = text.encode("utf-8", "surrogateescape")
    if draw(st.booleans()):
        raw += draw(st.binary(max_size=20))  # invalid UTF-8, stray bytes
    return raw


@FAST
@given(st.lists(event_bodies(), min_size=1, max_size=5), st.data())
def test_the_event_path_survives_anything_and_never_audits_it(bodies: list[bytes], data: st.DataObject) -> None:
    rig = Rig()
    rig.call()
    stream = b"".join(frame(b) for b in bodies)
    cut_stream = data.draw(st.booleans())
    if cut_stream:  # a lying Content-Length or a cut stream
        cut = data.draw(st.integers(0, len(stream)))
        stream = stream[:cut] + data.draw(st.sampled_from([b"", b"Content-Length: 99999999\n\n", b"Content-Length: -1\n\n", b"junk\n\n"]))
    reader = FrameReader()
    try:
        frames = reader.feed(stream)
    except ProtocolError:
        return  # the session is dropped and resynced: nothing was applied
    assert reader.buffered <= len(stream)
    for f in frames:
        if isinstance(f, BadFrame):
            continue
        assert isinstance(f, Frame)
        ev = from_plain(f.body)
        if ev is None:
            continue
        # no header can be forged through an encoded newline: the uuid is one of the real ones
        # (a cut stream's next bytes may become a body: that is the stream, not a forgery)
        assert cut_stream or ev.uuid in (None, "", SUP, "not-a-uuid", "a" * 300)
        effects = rig.feed(ev)
        # not one of these is a request fsbarge's dialplan made: nothing is audited
        assert not [e for e in effects if isinstance(e, OpenAudit)]


@FAST
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=8))
def test_the_frame_reader_never_crashes_or_grows_without_bound(noise: bytes, cuts: list[int]) -> None:
    reader = FrameReader()
    prev = 0
    try:
        for cut in sorted(set(c for c in cuts if c <= len(noise))) + [len(noise)]:
            for f in reader.feed(noise[prev:cut]):
                assert isinstance(f, Frame | BadFrame)
            prev = cut
    except ProtocolError:
        return
    assert reader.buffered <= max(len(noise), 1) and reader.buffered <= MAX_FRAME_BYTES


def test_a_huge_header_block_drops_the_session_instead_of_eating_memory() -> None:
    reader = FrameReader()
    chunk = b"X-Junk: " + b"a" * 65536 + b"\n"
    try:
        for _ in range(MAX_FRAME_BYTES // len(chunk) + 2):
            reader.feed(chunk)
    except ProtocolError as exc:
        assert "exceeds" in str(exc)
    else:
        raise AssertionError("an endless header block was buffered without limit")


@FAST
@given(st.sampled_from(["0", "1", "2", "3", "*", "#", "9"]), st.text(max_size=8))
def test_dtmf_for_a_channel_nobody_watches_changes_nothing(digit: str, uuid: str) -> None:
    rig = Rig()
    rig.call()
    body = f"Event-Name: DTMF\nUnique-ID: {uuid or 'x'}\nDTMF-Digit: {digit}\n".encode()
    ev = from_plain(body)
    assert ev is not None and rig.feed(ev) == []


def test_the_rig_still_audits_a_real_request() -> None:
    """The property above could pass on a machine that audits nothing: it does audit a real park."""
    from tests.factories import park

    rig = Rig()
    rig.feed(*call_events(), dt=0.0)
    assert [e for e in rig.feed(park("listen")) if isinstance(e, OpenAudit)]
