"""What a (re)connect means, decided from the snapshot alone: pure, tested by tables.

After ``show channels`` has replaced the node's channel table, :func:`plan` compares the node's
Core-UUID with the one stored before anything else stores the new one (FreeSWITCH restarted:
every open intervention ended with it), re-attaches or closes each open intervention, and finds
the supervisors still parked on a feature code whom nobody has served.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .barge import AddMode, BargeMachine, CloseAudit, Effect, SendKey
from .events import Event

__all__ = ["FEATURE_CODE", "Plan", "plan"]

# The feature codes of freeswitch-conf/ (a parked channel that dialled one is a request), and
# the calls other nodes send here (fsbarge.crossnode).
FEATURE_CODE = re.compile(r"^(?:\*3[345][0-9]+|fsbarge-[0-9a-f]{32})$")


@dataclass
class Plan:
    freeswitch_restarted: bool
    effects: list[Effect] = field(default_factory=list)
    #: parked feature-code calls nobody decided yet: serve them as the CHANNEL_PARK we missed
    serve: list[str] = field(default_factory=list)
    #: re-attached interventions whose mode is re-asserted once the held events are applied
    #: (BargeMachine.reassert): a key pressed during the resync must not be overridden
    reassert: list[str] = field(default_factory=list)


def endings(records: Iterable[Mapping[str, Any]], held: Iterable[tuple[Event, float]]) -> dict[str, tuple[str, float]]:
    """How open interventions ended, read from the events held while the snapshot was taken.

    The snapshot may already miss a supervisor whose hang-up is among them: its end reason and
    time come from that event, not from a guess (first ending wins)."""
    by_sup = {r["supervisor_uuid"]: r.get("target_uuid") for r in records}
    by_target: dict[str, list[str]] = {}
    for sup, target in by_sup.items():
        if target:
            by_target.setdefault(target, []).append(sup)
    out: dict[str, tuple[str, float]] = {}
    for ev, at in held:
        shutdown = ev.hangup_cause == "SYSTEM_SHUTDOWN"
        if ev.name == "CHANNEL_HANGUP" and ev.uuid in by_sup:
            out.setdefault(ev.uuid, ("freeswitch_shutdown" if shutdown else "supervisor_hangup", at))
        elif ev.name == "CHANNEL_HANGUP" and ev.uuid in by_target:
            for sup in by_target[ev.uuid]:
                out.setdefault(sup, ("freeswitch_shutdown" if shutdown else "call_ended", at))
        elif ev.name == "DTMF" and ev.uuid in by_sup and ev.dtmf_digit == "*":
            out.setdefault(ev.uuid, ("supervisor_left", at))
    return out


def plan(
    machine: BargeMachine,
    records: Iterable[Mapping[str, Any]],
    *,
    stored_core: str | None,
    core: str | None,
    first: bool,
    last_seen: float | None,
    decided: Collection[str],
    now: float,
    held: Iterable[tuple[Event, float]] = (),
) -> Plan:
    """Decide the resync of one node; ``machine.channels`` already holds the snapshot.

    ``records``: the open interventions (the journal's), with their mode history;
    ``stored_core``: the Core-UUID seen before this connection (None: never);
    ``first``: the daemon's first connection since it started; ``last_seen``: when the
    daemon last processed events (the best end time after its own restart);
    ``decided``: supervisor channels whose request is already audited; ``held``: the events
    read before the snapshot was applied (applied after it), for endings the snapshot hides.
    """
    records = list(records)
    restarted = bool(core and stored_core and core != stored_core)
    out = Plan(freeswitch_restarted=restarted)
    if restarted:
        out.effects = [CloseAudit(r["supervisor_uuid"], "completed", now, "freeswitch_shutdown") for r in records]
        machine.active.clear()
    else:
        effects = machine.reattach(
            [{**r, "last_mode_at": max((m["at"] for m in r.get("modes", ())), default=None)} for r in records],
            now,
            restarted=first,
            last_seen=last_seen,
            endings=endings(records, held),
        )
        out.reassert = [e.uuid for e in effects if isinstance(e, SendKey)]
        out.effects = [e for e in effects if not isinstance(e, SendKey) and not (isinstance(e, AddMode) and e.source == "reattach")]
    open_sups = {r["supervisor_uuid"] for r in records}
    for ch in machine.channels.channels.values():
        if ch.application != "park" or not ch.destination or not FEATURE_CODE.match(ch.destination):
            continue
        if ch.uuid in machine.active or ch.uuid in open_sups:
            continue
        if ch.uuid in machine.decided or ch.uuid in decided:
            # Decided (and audited) before, but still parked: the tone and hang-up were lost
            # with the connection or the daemon. Finish the job; the audit already has it.
            out.effects += machine.refusal_tone(ch.uuid)
        else:
            out.serve.append(ch.uuid)
    return out
