"""What a resync makes of the open interventions: re-attached to the eavesdrop FreeSWITCH still
runs, or closed by what the channels and the held events show. Pure: used by
:func:`fsbarge.core.resync.plan` and :meth:`fsbarge.core.barge.BargeMachine.reattach`."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fsbarge.core.channels import ChannelTable
from fsbarge.core.effects import AddMode, CloseAudit, Effect, SendKey, Tones, play_then_hang_up
from fsbarge.core.intervention import MODE_KEYS, Intervention
from fsbarge.core.terms import (
    CALL_ENDED, COMPLETED, CONNECTION_LOST, DAEMON_RESTART, FAILED, LISTEN, REATTACH, SUPERVISOR_HANGUP, SUPERVISOR_LEFT,
)

__all__ = ["Reattached", "reattached"]


@dataclass
class Reattached:
    """What a resync makes of the open interventions (:func:`reattached`)."""

    #: the interventions running after the resync (copies: those given are left as they were)
    active: dict[str, Intervention]
    effects: list[Effect] = field(default_factory=list)
    #: supervisors re-attached from a record alone: their request counts as decided
    decided: list[str] = field(default_factory=list)
    #: supervisors whose eavesdrop never started: stopped at once if FreeSWITCH still starts it
    abandoned: set[str] = field(default_factory=set)


def reattached(
    records: Iterable[Mapping[str, Any]],
    active: Mapping[str, Intervention],
    channels: ChannelTable,
    tones: Tones,
    now: float,
    *,
    restarted: bool,
    last_seen: float | None,
    endings: Mapping[str, tuple[str, float]] | None = None,
) -> Reattached:
    """Match open audit records against the channels FreeSWITCH shows after a (re)connect. Pure:
    changes neither ``active`` nor its interventions.

    A supervisor channel still running eavesdrop on the recorded target is
    re-attached and its recorded mode re-asserted (keys pressed while we were
    away left no trace). Otherwise the record is closed: by the ending read
    in the events held during the resync when there is one (``endings``:
    supervisor uuid -> (end_reason, time)); else ``daemon_restart`` after our
    own restart (we cannot know how it ended), or, after a mere reconnect, by
    what the channels show. An intervention in memory with no open record (should
    not happen) is dropped.
    """
    endings = endings or {}
    out = Reattached(active={})
    effects = out.effects
    for rec in records:
        sup_uuid = rec["supervisor_uuid"]
        sup = channels.get(sup_uuid)
        target = rec.get("target_uuid")
        running = (
            sup is not None
            and sup.still_eavesdropping
            and sup.application_data == target
            and channels.get(target) is not None
        )
        if running and target:
            mode = rec.get("current_mode") or rec.get("requested_mode") or LISTEN
            known = active.get(sup_uuid)
            if known is not None:
                iv = copy.copy(known)
            else:
                iv = Intervention(
                    sup_uuid=sup_uuid,
                    supervisor=rec.get("supervisor") or "",
                    agent=rec.get("agent") or "",
                    target_uuid=target,
                    requested_mode=rec.get("requested_mode") or mode,
                    started_at=rec.get("started_at") or now,
                    app_uuid=rec.get("application_uuid"),
                )
                out.decided.append(sup_uuid)
            iv.reattach(mode)
            out.active[sup_uuid] = iv
            effects.append(SendKey(sup_uuid, MODE_KEYS.get(mode, "0")))
            effects.append(AddMode(sup_uuid, mode, now, REATTACH))
            continue
        if not rec.get("modes") and not rec.get("current_mode"):
            # Eavesdrop never started (the connection went while we were starting it).
            effects.append(
                CloseAudit(sup_uuid, FAILED, now, None, reason=DAEMON_RESTART if restarted else CONNECTION_LOST)
            )
            tone = tones.error
            if sup is not None:
                out.abandoned.add(sup_uuid)
        elif sup_uuid in endings:
            reason, at = endings[sup_uuid]
            effects.append(CloseAudit(sup_uuid, COMPLETED, at, reason))
            tone = tones.ended
        elif restarted:
            ended = max(t for t in (rec.get("last_mode_at"), last_seen, rec.get("started_at")) if t is not None)
            effects.append(CloseAudit(sup_uuid, COMPLETED, ended, DAEMON_RESTART))
            tone = tones.ended
        else:
            # A reconnect: what the channels show. The agent's call alive and the supervisor
            # still on the line without eavesdrop (back in park): they left with eavesdrop's
            # own key, `*`.
            if target and channels.get(target) is not None:
                reason = SUPERVISOR_LEFT if sup is not None else SUPERVISOR_HANGUP
            else:
                reason = CALL_ENDED
            effects.append(CloseAudit(sup_uuid, COMPLETED, now, reason))
            tone = tones.ended
        if sup is not None:
            effects += play_then_hang_up(sup_uuid, tone, "NORMAL_CLEARING")
    return out
