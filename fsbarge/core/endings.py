"""How an intervention ends (fsbarge.core.barge delegates here): the eavesdrop returning, either
leg hanging up, FreeSWITCH going away under all of them. Pure: each takes the machine's open
interventions and returns the effects; an intervention that ends leaves ``active`` here.
"""

from __future__ import annotations

from fsbarge.core.channels import ChannelTable
from fsbarge.core.effects import CloseAudit, Effect, Tones, play_then_hang_up
from fsbarge.core.events import Event
from fsbarge.core.intervention import STARTING, Intervention, State
from fsbarge.core.terms import CALL_ENDED, COMPLETED, FAILED, FREESWITCH_SHUTDOWN, SUPERVISOR_HANGUP, SUPERVISOR_LEFT


def finish(iv: Intervention, end_reason: str, now: float) -> list[Effect]:
    return [CloseAudit(iv.sup_uuid, COMPLETED, now, end_reason)]


def forget(active: dict[str, Intervention], iv: Intervention) -> State:
    """Out of the machine, for good; returns the state it ended from."""
    active.pop(iv.sup_uuid, None)
    return iv.end()


def hangup_supervisor(iv: Intervention, tone: str | None) -> list[Effect]:
    return play_then_hang_up(iv.sup_uuid, tone, "NORMAL_CLEARING")


def eavesdrop_done(
    active: dict[str, Intervention], channels: ChannelTable, tones: Tones, iv: Intervention, now: float,
) -> list[Effect]:
    """The supervisor's eavesdrop returned (CHANNEL_EXECUTE_COMPLETE of our own sendmsg)."""
    was = forget(active, iv)
    if was is State.CALL_ENDED:
        return hangup_supervisor(iv, iv.end_tone)
    if was in STARTING:
        # EXECUTE_COMPLETE with no media bug: the target vanished between our
        # lookup and the execute (captures 04).
        return [
            CloseAudit(iv.sup_uuid, FAILED, now, None, reason="target_gone"),
            *hangup_supervisor(iv, tones.error),
        ]
    target_alive = channels.get(iv.target_uuid) is not None
    if was is State.LEAVING or target_alive:
        return [*finish(iv, SUPERVISOR_LEFT, now), *hangup_supervisor(iv, None)]
    return [*finish(iv, CALL_ENDED, now), *hangup_supervisor(iv, tones.ended)]


def supervisor_hangup(active: dict[str, Intervention], iv: Intervention, ev: Event, now: float) -> list[Effect]:
    if forget(active, iv) is State.CALL_ENDED:
        return []  # already closed when the call ended
    reason = FREESWITCH_SHUTDOWN if ev.hangup_cause == "SYSTEM_SHUTDOWN" else SUPERVISOR_HANGUP
    return finish(iv, reason, now)


def target_hangup(active: dict[str, Intervention], tones: Tones, ev: Event, now: float) -> list[Effect]:
    effects: list[Effect] = []
    shutdown = ev.hangup_cause == "SYSTEM_SHUTDOWN"
    for iv in list(active.values()):
        if iv.target_uuid != ev.uuid or iv.state in (State.CALL_ENDED, State.REQUESTED):
            continue  # REQUESTED: eavesdrop will return at once, handled as target_gone
        reason = FREESWITCH_SHUTDOWN if shutdown else CALL_ENDED
        # The call is over: close the record now (its true end), and hang the
        # supervisor up once eavesdrop has returned them to park.
        iv.end_call(tones.ended)
        effects += finish(iv, reason, now)
    return effects


def close_all(active: dict[str, Intervention], end_reason: str, now: float) -> list[Effect]:
    """Close every open intervention (FreeSWITCH shut down or restarted under them)."""
    effects: list[Effect] = []
    for iv in list(active.values()):
        if forget(active, iv) is not State.CALL_ENDED:
            effects += finish(iv, end_reason, now)
    return effects
