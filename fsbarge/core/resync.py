"""What a (re)connect means, decided from the snapshot alone: pure, tested by tables.

After ``show channels`` has replaced the node's channel table, :func:`plan` compares the node's
Core-UUID with the one stored before anything else stores the new one (FreeSWITCH restarted:
every open intervention ended with it), re-attaches or closes each open intervention, and finds
the supervisors still parked on a feature code whom nobody has served.

It also marks the gap. FreeSWITCH reports no eavesdrop mode, and a key pressed while the daemon
was down or cut off from FreeSWITCH leaves no trace (the re-attach then puts the recorded mode
back), so an intervention that ran through the gap gets a mode entry ``unknown`` at the last
moment the daemon knew its mode (``source`` ``daemon_down`` or ``connection_lost``), before its
``reattach`` entry or its close: the record says the mode was unknown for that time instead of
claiming the recorded mode throughout.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fsbarge.core.effects import AddMode, CloseAudit, Effect, SendKey, Tones, refusal_tone
from fsbarge.core.intervention import Intervention
from fsbarge.core.reattach import Reattached, reattached
from fsbarge.core.channels import ChannelTable
from fsbarge.core.events import Event
from fsbarge.core.terms import (
    CALL_ENDED, COMPLETED, CONNECTION_LOST, DAEMON_DOWN, FREESWITCH_SHUTDOWN, REATTACH, SUPERVISOR_HANGUP, SUPERVISOR_LEFT,
    UNKNOWN_MODE,
)

__all__ = ["ENDING_EVENTS", "FEATURE_CODE", "Plan", "endings", "freeswitch_restarted", "gap_entries", "last_known_mode", "plan"]

# The feature codes of freeswitch-conf/ (a parked channel that dialled one is a request), and
# the calls other nodes send here (fsbarge.core.crossnode).
FEATURE_CODE = re.compile(r"^(?:\*3[345][0-9]+|fsbarge-[0-9a-f]{32})$")


@dataclass
class Plan:
    freeswitch_restarted: bool
    #: the interventions after the resync, for :meth:`fsbarge.core.barge.BargeMachine.adopt`
    interventions: Reattached
    effects: list[Effect] = field(default_factory=list)
    #: parked feature-code calls nobody decided yet: serve them as the CHANNEL_PARK we missed
    serve: list[str] = field(default_factory=list)
    #: re-attached interventions whose mode is re-asserted once the held events are applied
    #: (BargeMachine.reassert): a key pressed during the resync must not be overridden
    reassert: list[str] = field(default_factory=list)


#: the events :func:`endings` reads (what a failed resync attempt's held events are kept for)
ENDING_EVENTS = frozenset({"CHANNEL_HANGUP", "DTMF"})


def freeswitch_restarted(stored_core: str | None, core: str | None) -> bool:
    """Did FreeSWITCH restart since we last saw it? A Core-UUID other than the stored one says so
    (whatever ran there is gone); no stored one, or none read, says nothing. Shared by the event
    path (a Core-UUID on an event) and the resync."""
    return bool(core and stored_core and core != stored_core)


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
            out.setdefault(ev.uuid, (FREESWITCH_SHUTDOWN if shutdown else SUPERVISOR_HANGUP, at))
        elif ev.name == "CHANNEL_HANGUP" and ev.uuid in by_target:
            for sup in by_target[ev.uuid]:
                out.setdefault(sup, (FREESWITCH_SHUTDOWN if shutdown else CALL_ENDED, at))
        elif ev.name == "DTMF" and ev.uuid in by_sup and ev.dtmf_digit == "*":
            out.setdefault(ev.uuid, (SUPERVISOR_LEFT, at))
    return out


def last_known_mode(rec: Mapping[str, Any]) -> str | None:
    """The mode to re-assert: the newest entry of the history that was neither refused nor a gap
    (the journal folds an ``unknown`` entry into ``current_mode`` like any other, and a kill between
    the gap entry and the re-attach must not make the next re-attach assert "unknown")."""
    for m in reversed(rec.get("modes") or ()):
        if not m.get("refused") and m.get("mode") != UNKNOWN_MODE:
            return str(m["mode"])
    current = rec.get("current_mode")
    return None if current == UNKNOWN_MODE else current


def gap_entries(
    effects: list[Effect],
    records: Iterable[Mapping[str, Any]],
    reattached: Collection[str],
    *,
    known_until: float | None,
    source: str,
    now: float,
) -> list[Effect]:
    """``effects`` with an ``unknown`` mode entry for every intervention that ran through the gap.

    The gap starts at the last moment the daemon knew the mode: ``known_until`` (the last read on
    the lost connection, or after our own restart the journaled last-seen time), never before the
    record's own last entry. A re-attached intervention gets the entry first (its ``reattach``
    entry follows once the held events are applied); a closed one gets it just before its close
    when that close is later than the gap's start (``daemon_restart`` closes at the start itself:
    nothing to mark). A record whose eavesdrop never started claims no mode and gets none.
    """
    starts: dict[str, float] = {}
    for rec in records:
        history = rec.get("modes") or ()
        if not any(not m.get("refused") for m in history) and not rec.get("current_mode"):
            continue
        times = [t for t in (known_until, rec.get("started_at"), *(m.get("at") for m in history)) if t is not None]
        starts[rec["supervisor_uuid"]] = min(max(times), now) if times else now
    out: list[Effect] = [AddMode(sup, UNKNOWN_MODE, starts[sup], source) for sup in reattached if sup in starts]
    for eff in effects:
        if isinstance(eff, CloseAudit) and eff.key in starts and eff.ended_at > starts[eff.key]:
            out.append(AddMode(eff.key, UNKNOWN_MODE, starts[eff.key], source))
        out.append(eff)
    return out


def plan(
    snapshot: ChannelTable,
    records: Iterable[Mapping[str, Any]],
    *,
    active: Mapping[str, Intervention],
    tones: Tones,
    stored_core: str | None,
    core: str | None,
    first: bool,
    last_seen: float | None,
    decided: Collection[str],
    now: float,
    held: Iterable[tuple[Event, float]] = (),
) -> Plan:
    """Decide the resync of one node. Pure: changes nothing it is given; the caller hands
    ``Plan.interventions`` to the machine (:meth:`fsbarge.core.barge.BargeMachine.adopt`) and carries out the effects.

    ``snapshot``: the node's channel table, already replaced by ``show channels``;
    ``records``: the open interventions (the journal's), with their mode history;
    ``active``: the interventions the machine holds now; ``tones``: the machine's;
    ``stored_core``: the Core-UUID seen before this connection (None: never);
    ``first``: the daemon's first connection since it started; ``last_seen``: the last moment
    the daemon knew the node's state: after its own restart the journaled last-seen time (also
    the best end time then), after a reconnect the last read on the lost connection;
    ``decided``: supervisor channels whose request is already decided (audited, or by the
    machine); ``held``: the events read before the snapshot was applied (applied after it), for
    endings the snapshot hides.
    """
    records = list(records)
    restarted = freeswitch_restarted(stored_core, core)
    out = Plan(freeswitch_restarted=restarted, interventions=Reattached(active={}))
    if restarted:
        effects: list[Effect] = [CloseAudit(r["supervisor_uuid"], COMPLETED, now, FREESWITCH_SHUTDOWN) for r in records]
    else:
        out.interventions = reattached(
            [
                {**r, "current_mode": last_known_mode(r), "last_mode_at": max((m["at"] for m in r.get("modes", ())), default=None)}
                for r in records
            ],
            active,
            snapshot,
            tones,
            now,
            restarted=first,
            last_seen=last_seen,
            endings=endings(records, held),
        )
        effects = out.interventions.effects
        out.reassert = [e.uuid for e in effects if isinstance(e, SendKey)]
        effects = [e for e in effects if not isinstance(e, SendKey) and not (isinstance(e, AddMode) and e.source == REATTACH)]
    out.effects = gap_entries(
        effects, records, out.reassert, known_until=last_seen, source=DAEMON_DOWN if first else CONNECTION_LOST, now=now
    )
    open_sups = {r["supervisor_uuid"] for r in records}
    for ch in snapshot.channels.values():
        if ch.application != "park" or not ch.destination or not FEATURE_CODE.match(ch.destination):
            continue
        if ch.uuid in out.interventions.active or ch.uuid in open_sups:
            continue
        if ch.uuid in decided:
            # Decided (and audited) before, but still parked: the tone and hang-up were lost
            # with the connection or the daemon. Finish the job; the audit already has it.
            out.effects += refusal_tone(ch.uuid, tones)
        else:
            out.serve.append(ch.uuid)
    return out
