"""Event Socket framing without IO: bytes in, frames out; commands out.

Every event FreeSWITCH sends passes through here, so the reader works on whole
buffers (no per-line reads) and leaves URL-decoding to whoever reads a value:
an event-plain body is split into lines *before* any value is decoded, so a
value containing ``%0A`` can never forge another header (greenswitch decodes
the whole event first and is open to exactly that).
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import unquote

__all__ = [
    "BadFrame",
    "Frame",
    "FrameReader",
    "ProtocolError",
    "decode",
    "parse_event",
    "parse_plain",
]

# A frame larger than this cannot be a real event (the largest in the captures is
# ~12 kB); treating it as a desynchronised stream is safer than buffering it.
MAX_FRAME_BYTES = 16 * 1024 * 1024


class ProtocolError(Exception):
    """The byte stream cannot be resynchronised; the connection must be dropped."""


class Frame:
    """One ESL message: outer headers (never URL-encoded) and an optional body."""

    __slots__ = ("headers", "body")

    def __init__(self, headers: dict[str, str], body: bytes) -> None:
        self.headers = headers
        self.body = body

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    def __repr__(self) -> str:
        return f"Frame({self.headers!r}, {len(self.body)} body bytes)"


class BadFrame:
    """A frame that could not be understood; the reader skipped it and went on."""

    __slots__ = ("reason", "excerpt")

    def __init__(self, reason: str, excerpt: bytes) -> None:
        self.reason = reason
        self.excerpt = excerpt[:120]

    def __repr__(self) -> str:
        return f"BadFrame({self.reason!r})"


def _split_headers(block: bytes) -> dict[str, str] | None:
    text = block.decode("utf-8", "replace")
    headers: dict[str, str] = {}
    for line in text.split("\n"):
        name, sep, value = line.partition(": ")
        if not sep:
            name, sep, value = line.partition(":")
            if not sep or not name:
                return None
        headers[name.strip()] = value.strip()
    return headers


class FrameReader:
    """Incremental ESL frame parser: ``feed(bytes) -> [Frame | BadFrame]``."""

    __slots__ = ("_buf", "_pending")

    def __init__(self) -> None:
        self._buf = b""
        self._pending: dict[str, str] | None = None  # headers waiting for their body

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame | BadFrame]:
        buf = self._buf + data if self._buf else data
        out: list[Frame | BadFrame] = []
        pos = 0
        end = len(buf)
        pending = self._pending
        while True:
            if pending is not None:
                length = int(pending["Content-Length"])
                if end - pos < length:
                    break
                out.append(Frame(pending, buf[pos : pos + length]))
                pos += length
                pending = None
                continue
            # FreeSWITCH never sends blank lines between frames, but a peer might.
            while pos < end and buf[pos] == 10:
                pos += 1
            sep = buf.find(b"\n\n", pos)
            if sep < 0:
                if end - pos > MAX_FRAME_BYTES:
                    raise ProtocolError("header block exceeds %d bytes" % MAX_FRAME_BYTES)
                break
            block = buf[pos:sep]
            pos = sep + 2
            headers = _split_headers(block)
            if headers is None:
                out.append(BadFrame("header line without ':'", block))
                continue
            length_text = headers.get("Content-Length")
            if length_text is None:
                out.append(Frame(headers, b""))
                continue
            try:
                length = int(length_text)
                if length < 0:
                    raise ValueError
            except ValueError:
                out.append(BadFrame(f"bad Content-Length {length_text[:20]!r}", block))
                continue
            if length > MAX_FRAME_BYTES:
                raise ProtocolError(f"Content-Length {length} exceeds the frame limit")
            pending = headers
        self._pending = pending
        self._buf = buf[pos:] if pos < end else b""
        return out


def parse_plain(body: bytes) -> tuple[dict[str, str], bytes]:
    """Split a text/event-plain body into raw (still URL-encoded) headers and its own body.

    Values stay encoded: :func:`decode` them when read. Lines are split first,
    so an encoded newline inside a value stays inside that value.
    """
    sep = body.find(b"\n\n")
    head = body if sep < 0 else body[:sep]
    headers: dict[str, str] = {}
    _pairs(head.decode("utf-8", "replace"), headers)
    return headers, _inner(body, sep, headers)


def _inner(body: bytes, sep: int, headers: dict[str, str]) -> bytes:
    """An event's own body: after the blank line, as long as its inner Content-Length says."""
    length = headers.get("Content-Length")
    if sep < 0 or length is None or not length.isdigit():
        return b""
    return body[sep + 2 : sep + 2 + int(length)]


def _pairs(text: str, into: dict[str, str]) -> None:
    # Values are URL-encoded (a space is %20, a colon %3A), so ": " appears once per
    # line, as the separator: one replace and one split give key, value, key, value...
    # When the counts disagree (a malformed line), take the careful path instead.
    if text.count(": ") == text.count("\n") + 1:
        parts = text.replace(": ", "\n").split("\n")
        into.update(zip(parts[::2], parts[1::2]))
        return
    for line in text.split("\n"):
        name, found, value = line.partition(":")
        if found and name:
            into[name] = value[1:] if value.startswith(" ") else value


def parse_event(
    body: bytes, variables: tuple[bytes, ...], park_variables: tuple[bytes, ...] = ()
) -> tuple[dict[str, str], bytes]:
    """Like :func:`parse_plain`, but of the ``variable_*`` lines only those named are read.

    The hot path: FreeSWITCH puts every channel variable (most of an 8 kB event)
    between the channel headers and the application headers, and fsbarge needs a
    handful of them. ``variables`` are search keys like ``b"\\nvariable_user_name: "``;
    ``park_variables`` are looked for in CHANNEL_PARK events only. The result has
    ``variable_uuid`` when the event carries channel variables at all. Only whole
    lines can match: a newline inside a value is always encoded.
    """
    sep = body.find(b"\n\n")
    end = len(body) if sep < 0 else sep
    vstart = body.find(b"\nvariable_", 0, end)
    headers: dict[str, str] = {}
    if vstart < 0:
        _pairs(body[:end].decode("utf-8", "replace"), headers)
    else:
        _pairs(body[:vstart].decode("utf-8", "replace"), headers)
        last = body.rfind(b"\nvariable_", vstart, end)
        tail = body.find(b"\n", last + 1, end)
        if tail >= 0:
            _pairs(body[tail + 1 : end].decode("utf-8", "replace"), headers)
        headers["variable_uuid"] = headers.get("Unique-ID", "")
        if park_variables and headers.get("Event-Name") == "CHANNEL_PARK":
            variables = variables + park_variables
        for key in variables:
            i = body.find(key, vstart, end)
            if i >= 0:
                i += len(key)
                j = body.find(b"\n", i, end)
                headers[key[1:-2].decode()] = body[i : j if j >= 0 else end].decode("utf-8", "replace")
    return headers, _inner(body, sep, headers)


@lru_cache(maxsize=8192)
def _unquote(value: str) -> str:
    # Channel names and presence ids repeat in every event of a channel.
    return unquote(value)


def decode(value: str | None) -> str | None:
    """URL-decode one header value (cheap when there is nothing to decode)."""
    if value is None or "%" not in value:
        return value
    return _unquote(value)
