"""Event Socket framing, written independently of the daemon's parser.

Everything here copies what mod_event_socket and switch_event.c put on the wire (see
../shared/fixtures/esl-captures): URL-encoding of event values, the outer
``Content-Length``/``Content-Type`` frame, command replies, and the reader for the commands
a client sends (``read_packet`` in mod_event_socket.c).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

# switch_utils.h SWITCH_URL_UNSAFE; switch_url_encode() also escapes control and non-ASCII bytes.
_URL_UNSAFE = frozenset(b"\r\n #%&+:;<=>?@[\\]^`{|}\"")
_HEX = b"0123456789ABCDEF"

DISCONNECT_MESSAGE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def url_encode(value: str) -> str:
    """Encode a header value exactly like switch_url_encode() (double_encode off).

    FreeSWITCH quirk: a '%' that already starts an upper-case '%XX' escape is copied as is, so a
    value that *contains* '%0A' goes out as '%0A' and decodes to a newline on the other side.
    That is how a hostile SIP header can forge extra header lines for a careless parser.
    """
    raw = value.encode("utf-8", "surrogateescape")
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x25 and i + 2 < n and raw[i + 1] in _HEX and raw[i + 2] in _HEX:
            out += raw[i : i + 3]
            i += 3
            continue
        if c < 0x20 or c > 0x7E or c in _URL_UNSAFE:
            out += b"%" + bytes((_HEX[c >> 4], _HEX[c & 15]))
        else:
            out.append(c)
        i += 1
    return out.decode("ascii")



def header_value(headers: list[tuple[str, str]], name: str, default: str | None = None) -> str | None:
    """First value of a header, case-insensitively (FreeSWITCH's own lookup rule)."""
    low = name.lower()
    for k, v in headers:
        if k.lower() == low:
            return v
    return default

@dataclass
class Event:
    """One fired event: ordered headers (duplicates allowed, as FreeSWITCH has) and an optional body."""

    name: str
    headers: list[tuple[str, str]]
    body: str | None = None
    subclass: str | None = None
    _plain: bytes | None = field(default=None, repr=False)
    _json: bytes | None = field(default=None, repr=False)

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of a header (case-insensitive, like switch_event_get_header)."""
        return header_value(self.headers, name, default)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    @property
    def unique_id(self) -> str | None:
        return self.get("Unique-ID")

    def plain(self) -> bytes:
        """The text/event-plain body (switch_event_serialize with encoding on)."""
        if self._plain is None:
            self._plain = serialize_plain(self.headers, self.body)
        return self._plain

    def json(self) -> bytes:
        """The text/event-json body: values not encoded, body as "_body", no trailing newline."""
        if self._json is None:
            self._json = serialize_json(self.headers, self.body)
        return self._json


def serialize_plain(headers: list[tuple[str, str]], body: str | None = None) -> bytes:
    """Serialize like switch_event_serialize(): 'Name: url-encoded value' lines, blank line, body."""
    parts = []
    for name, value in headers:
        enc = url_encode(value)
        # switch_event_serialize writes an empty value as "_undef_".
        parts.append(f"{name}: {enc if enc else '_undef_'}\n")
    if body:
        raw = body.encode("utf-8", "surrogateescape")
        parts.append(f"Content-Length: {len(raw)}\n\n")
        return "".join(parts).encode("ascii") + raw
    parts.append("\n")
    return "".join(parts).encode("ascii")


def serialize_json(headers: list[tuple[str, str]], body: str | None = None) -> bytes:
    """Serialize like switch_event_serialize_json(); keeps duplicate header names (cJSON does)."""
    items = [json.dumps(k, ensure_ascii=False) + ":" + json.dumps(v, ensure_ascii=False) for k, v in headers]
    if body is not None:
        items.append('"_body":' + json.dumps(body, ensure_ascii=False))
    return ("{" + ",".join(items) + "}").encode("utf-8", "surrogateescape")


def event_frame(event: Event, fmt: str) -> bytes:
    """Outer frame of a queued event as the listener thread writes it."""
    payload = event.json() if fmt == "json" else event.plain()
    return f"Content-Length: {len(payload)}\nContent-Type: text/event-{fmt}\n\n".encode("ascii") + payload


def auth_request() -> bytes:
    return b"Content-Type: auth/request\n\n"


def command_reply(text: str) -> bytes:
    """'Reply-Text' reply; a leading '~' means raw headers follow (bgapi, userauth)."""
    if text.startswith("~"):
        return ("Content-Type: command/reply\n" + text[1:]).encode("utf-8")
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode("utf-8")


def api_response(body: str) -> bytes:
    raw = body.encode("utf-8", "surrogateescape")
    return f"Content-Type: api/response\nContent-Length: {len(raw)}\n\n".encode("ascii") + raw


def disconnect_notice(message: str = DISCONNECT_MESSAGE) -> bytes:
    raw = message.encode("utf-8")
    return f"Content-Type: text/disconnect-notice\nContent-Length: {len(raw)}\n\n".encode("ascii") + raw


def rude_rejection() -> bytes:
    """What mod_event_socket sends to an address its ACL refuses, before closing."""
    msg = b"Access Denied, go away.\n"
    return f"Content-Type: text/rude-rejection\nContent-Length: {len(msg)}\n\n".encode("ascii") + msg


@dataclass
class Command:
    """One packet from a client: first line, 'Name: value' headers and an optional body."""

    line: str
    headers: list[tuple[str, str]]
    body: str | None = None

    @property
    def text(self) -> str:
        """The command as received (line and header lines), for logs and test predicates."""
        lines = [self.line] + [f"{k}: {v}" for k, v in self.headers]
        text = "\n".join(lines)
        if self.body is not None:
            text += "\n\n" + self.body
        return text

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of a header (case-insensitive, like switch_event_get_header)."""
        return header_value(self.headers, name, default)


class CommandReader:
    """Incremental reader with read_packet() semantics.

    FreeSWITCH quirks kept: CR/LF before a packet are skipped; the header block ends at the second
    LF (CRs in between do not count); a header line without ':' is ignored; 'Content-Length' makes
    it read exactly that many body bytes.
    """

    MAX_HEADER = 10 * 1024 * 1024

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: tuple[str, list[tuple[str, str]], int] | None = None

    def feed(self, data: bytes) -> list[Command]:
        self._buf += data
        out: list[Command] = []
        while True:
            cmd = self._next()
            if cmd is None:
                return out
            out.append(cmd)

    def _next(self) -> Command | None:
        if self._pending is not None:
            line, headers, clen = self._pending
            if len(self._buf) < clen:
                return None
            body = bytes(self._buf[:clen]).decode("utf-8", "replace")
            del self._buf[:clen]
            self._pending = None
            return Command(line, headers, body)
        while self._buf[:1] in (b"\r", b"\n"):
            del self._buf[:1]
        end = self._header_end()
        if end is None:
            if len(self._buf) > self.MAX_HEADER:
                end = len(self._buf)
            else:
                return None
        block = bytes(self._buf[:end]).decode("utf-8", "replace")
        del self._buf[:end]
        lines = [ln.rstrip("\r") for ln in block.replace("\r\n", "\n").split("\n")]
        lines = [ln for ln in lines if ln.strip("\r")]
        if not lines:
            return None
        first, headers, clen = lines[0], [], 0
        for ln in lines[1:]:
            if ":" not in ln:
                continue
            name, _, value = ln.partition(":")
            value = value.lstrip(" ")
            headers.append((name, value))
            if name.lower() == "content-length":
                try:
                    clen = int(value.strip() or 0)
                except ValueError:
                    clen = 0
        if clen > 0:
            self._pending = (first, headers, clen)
            return self._next()
        return Command(first, headers)

    def _header_end(self) -> int | None:
        count = 0
        for i, c in enumerate(self._buf):
            if c == 0x0A:
                count += 1
                if count == 2:
                    return i + 1
            elif c != 0x0D:
                count = 0
        return None
