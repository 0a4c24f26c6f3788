"""What the machine holds after a (re)connect (fsbarge.core.barge delegates here): it adopts what
:func:`fsbarge.core.reattach.reattached` decided, and puts each re-attached eavesdrop back in the
mode on record. Pure: the machine's own tables are passed in and updated in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fsbarge.core.effects import AddMode, Effect, SendKey
from fsbarge.core.endings import forget
from fsbarge.core.intervention import MODE_KEYS, Intervention, State
from fsbarge.core.reattach import Reattached
from fsbarge.core.terms import REATTACH


def reassert(active: Mapping[str, Intervention], sup_uuids: Iterable[str], now: float) -> list[Effect]:
    """Put each re-attached eavesdrop back in the mode we hold for it (``sendevent``), logged as
    ``reattach``. Called after the events held during the resync were applied: a key pressed
    in that window is already in ``mode`` (FreeSWITCH applied it before our command)."""
    effects: list[Effect] = []
    for sup_uuid in sup_uuids:
        iv = active.get(sup_uuid)
        if iv is not None and iv.state is State.ACTIVE and iv.mode:
            iv.commanded = True
            effects += [AddMode(sup_uuid, iv.mode, now, REATTACH), SendKey(sup_uuid, MODE_KEYS.get(iv.mode, "0"))]
    return effects


def adopt(
    active: dict[str, Intervention], decided: dict[str, None], abandoned: set[str], out: Reattached,
) -> None:
    """Hold the interventions a resync decided on (fsbarge.core.resync.plan): those it dropped end
    here, the ones it re-attached replace ours; its decided and abandoned channels are added."""
    for sup_uuid, iv in list(active.items()):
        if sup_uuid not in out.active:
            forget(active, iv)
    active.clear()
    active.update(out.active)
    for sup_uuid in out.decided:
        decided[sup_uuid] = None
    abandoned |= out.abandoned
