"""A running intervention's audio start and key presses (fsbarge.core.barge delegates here). Pure.

The eavesdrop has already applied a key when its DTMF event reaches us: a mode the policy refuses
is recorded as refused and put back with the previous mode's key; ``*`` is the supervisor leaving.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fsbarge.core.effects import AddMode, Effect, SendKey
from fsbarge.core.intervention import KEY_MODES, MODE_KEYS, STARTING, Intervention, State
from fsbarge.core.policy import Policy
from fsbarge.core.request import barged_by_other
from fsbarge.core.terms import BARGE, DTMF, LISTEN

#: who hears a mode's notification tone: (iv, mode, now) -> (tone effects, who was notified)
Notify = Callable[[Intervention, str, float], tuple[list[Effect], tuple[str, ...]]]


def start(iv: Intervention, now: float) -> list[Effect]:
    """Audio flows: the intervention is active in its requested mode, recorded as such."""
    mode = iv.start_audio()
    return [AddMode(iv.sup_uuid, mode, now, iv.start_source, notified=iv.start_notified)]


def audio_started(active: Mapping[str, Intervention], target_uuid: str | None, now: float) -> list[Effect]:
    """MEDIA_BUG_START on a target: every eavesdrop executing on it has started."""
    effects: list[Effect] = []
    for iv in active.values():
        if iv.target_uuid == target_uuid and iv.state is State.EXECUTING:
            effects += start(iv, now)
    return effects


def key_pressed(
    iv: Intervention, digit: str, now: float, *, policy: Policy, active: Mapping[str, Intervention], notify: Notify,
) -> list[Effect]:
    """A DTMF key read by the supervisor's eavesdrop: a mode change, a refused one, or leaving."""
    if iv.state in (State.CALL_ENDED, State.LEAVING):
        return []
    effects: list[Effect] = []
    if iv.state in STARTING:
        # A DTMF event is fired by a running eavesdrop: it has started even if
        # its EXECUTE / MEDIA_BUG_START has not reached us yet.
        effects += start(iv, now)
    if digit == "*":
        iv.leave()
        return effects
    mode = KEY_MODES.get(digit)
    if mode is None or mode == iv.mode:
        return effects
    refused = not policy.mode_allowed(iv.supervisor, iv.agent, mode) or (
        mode == BARGE and not policy.allow_second_barge and barged_by_other(active, iv.target_uuid, iv.sup_uuid)
    )
    if refused:
        # FreeSWITCH has already applied the key; put the previous mode back.
        effects.append(AddMode(iv.sup_uuid, mode, now, DTMF, refused=True))
        effects.append(SendKey(iv.sup_uuid, MODE_KEYS[iv.mode or LISTEN]))
        iv.commanded = True
        return effects
    iv.change_mode(mode)
    tones, notified = notify(iv, mode, now)
    effects.append(AddMode(iv.sup_uuid, mode, now, DTMF, notified=notified))
    effects += tones
    if iv.commanded:
        # A key and one of our commands may have crossed on the wire, leaving FreeSWITCH in
        # the command's mode; say the mode we now record (a no-op if FreeSWITCH is there).
        effects.append(SendKey(iv.sup_uuid, MODE_KEYS[mode]))
    return effects
