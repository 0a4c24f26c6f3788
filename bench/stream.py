"""A realistic event stream for benchmarks, built from the real captures with fresh uuids.

Each simulated call replays the events of capture 02's customer -> agent call (and,
for one call in ``barge_every``, capture 03's supervisor leg too) restricted to the
events fsbarge subscribes to, in the order and proportions FreeSWITCH sent them,
with every channel uuid replaced by a fresh one. Calls are interleaved the way a
busy node interleaves them: many calls set up, talk, and hang up concurrently.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from fsbarge.core.events import SUBSCRIBED_EVENTS

_FRAME = re.compile(rb"Content-Length: (\d+)\nContent-Type: text/event-plain\n\n")
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SUBSCRIBED = {n.encode() for n in SUBSCRIBED_EVENTS}


def captures_dir() -> Path:
    """$FSBARGE_CAPTURES, else ../shared/fixtures/esl-captures beside the checkout."""
    env = os.environ.get("FSBARGE_CAPTURES")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    return here.parent / "shared" / "fixtures" / "esl-captures"


def _events(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out = []
    for m in _FRAME.finditer(data):
        body = data[m.end() : m.end() + int(m.group(1))]
        name = re.search(rb"Event-Name: (\S+)", body)
        if name and name.group(1) in _SUBSCRIBED:
            out.append(body)
    return out


def _legs(events: list[bytes]) -> list[bytes]:
    found = (re.search(rb"\nUnique-ID: (\S+)", e) for e in events)
    return list(dict.fromkeys(m.group(1) for m in found if m))


@dataclass
class Template:
    """The events of one call (bodies) and the channel uuids to replace in them."""

    events: list[bytes]
    uuids: list[bytes]

    def instance(self) -> list[bytes]:
        fresh = {u: str(uuid.uuid4()).encode() for u in self.uuids}
        pattern = re.compile(b"|".join(re.escape(u) for u in self.uuids))
        return [pattern.sub(lambda m: fresh[m.group(0)], e) for e in self.events]


def templates() -> tuple[Template, Template]:
    """(plain call, call with a supervisor barging) from the captures."""
    base = captures_dir()
    call = _events(base / "02-barge-dialplan-dtmf" / "events-plain.raw")
    legs = _legs(call)
    customer, agent = legs[0], legs[1]
    plain = [e for e in call if re.search(rb"\nUnique-ID: (" + customer + b"|" + agent + rb")\n", e)]
    barge = _events(base / "03-barge-esl-park-sendmsg" / "events-plain.raw")
    # The capture's dialplan used its own variable names; ours are fsbarge_target/fsbarge_mode.
    barge = [
        e.replace(b"\nvariable_barge_target_ext: ", b"\nvariable_fsbarge_target: ").replace(
            b"\nvariable_barge_mode: ", b"\nvariable_fsbarge_mode: "
        )
        for e in barge
    ]
    return Template(plain, [customer, agent]), Template(barge, _legs(barge))


def snapshot_rows(n_channels: int) -> dict:
    """A ``show channels as json`` answer with ``n_channels`` rows (bridged pairs, fresh uuids).

    Every caller leg is a trunk leg (no presence_id), as when customers call in over a SIP trunk:
    the resync asks FreeSWITCH about each of them (pipelined ``uuid_getvar``)."""
    import json

    rows = json.loads((captures_dir() / "02-barge-dialplan-dtmf" / "show_channels_as_json_bridged.json").read_text())["rows"]
    out = []
    for _ in range(max(1, n_channels // 2)):
        a, b = (dict(r) for r in rows)
        ua, ub = str(uuid.uuid4()), str(uuid.uuid4())
        a.update(uuid=ua, call_uuid=ua, application_data=a["application_data"].replace(rows[1]["uuid"], ub), presence_id="")
        b.update(uuid=ub, call_uuid=ua)
        out += [a, b]
    return {"row_count": len(out), "rows": out}


def core_uuid() -> str:
    """The Core-UUID the captured events carry (the bench peer answers with the same one)."""
    plain, _ = templates()
    m = re.search(rb"\nCore-UUID: (\S+)", plain.events[0])
    return m.group(1).decode() if m else ""


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body


def build(n_events: int, *, concurrent: int | None = None, barge_every: int = 50) -> list[bytes]:
    """About ``n_events`` framed events: ``concurrent`` calls in flight (default: up to 200,
    fewer for short streams so that calls run their course), interleaved round-robin."""
    plain, barge = templates()
    if concurrent is None:
        concurrent = max(1, min(200, n_events // 100))
    out: list[bytes] = []
    active: list[list[bytes]] = []
    calls = 0
    while len(out) < n_events:
        while len(active) < concurrent:
            calls += 1
            tpl = barge if barge_every and calls % barge_every == 0 else plain
            active.append(tpl.instance())
        for call in list(active):
            out.append(frame(call.pop(0)))
            if not call:
                active.remove(call)
            if len(out) >= n_events:
                break
    return out
