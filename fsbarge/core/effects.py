"""The effects the core returns: audit writes (committed first) and commands to FreeSWITCH.
Pure data; :mod:`fsbarge.core.commands` turns a command into its exact ESL text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fsbarge.core.terms import EndReason, ModeSource, Outcome

__all__ = [
    "AddMode", "CloseAudit", "Effect", "Execute", "MixTone", "OpenAudit", "SendKey", "StopTone", "Tones",
    "play_then_hang_up", "refusal_tone",
]


# -- effects ---------------------------------------------------------------


@dataclass(frozen=True)
class OpenAudit:
    """Create the audit record (committed before anything else happens)."""

    key: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class AddMode:
    key: str
    mode: str
    at: float
    source: ModeSource
    refused: bool = False
    notified: tuple[str, ...] = ()  # who heard the notification tone on entering this mode


@dataclass(frozen=True)
class CloseAudit:
    key: str
    outcome: Outcome
    ended_at: float
    end_reason: EndReason | None
    reason: str | None = None


@dataclass(frozen=True)
class Execute:
    """``sendmsg <uuid>`` executing an application on a channel.

    ``event_lock``: the channel parses no other sendmsg until this application has returned. A
    sendmsg queued behind a ``playback`` needs it: the playback loop parses the channel's queued
    messages as it plays (see :func:`play_then_hang_up`).
    """

    uuid: str
    app: str
    arg: str | None = None
    event_uuid: str | None = None
    event_lock: bool = False


@dataclass(frozen=True)
class SendKey:
    """``sendevent`` with ``eavesdrop-command``: switch a running eavesdrop's mode."""

    uuid: str
    key: str


@dataclass(frozen=True)
class MixTone:
    """``uuid_displace ... m``: a tone mixed into what this channel's phone hears; the call's
    audio and any eavesdrop go on under it."""

    uuid: str
    tone: str


@dataclass(frozen=True)
class StopTone:
    """Remove a tone still playing on this channel: FreeSWITCH allows one displace per file."""

    uuid: str
    tone: str


Effect = OpenAudit | AddMode | CloseAudit | Execute | SendKey | MixTone | StopTone


def play_then_hang_up(uuid: str, tone: str | None, cause: str) -> list[Effect]:
    """A tone the supervisor hears in full, then the hang-up (a refusal, the agent's call ended).

    Both go at once, so FreeSWITCH hangs up even if we are gone meanwhile, and a tone that fails
    to play (a bad file) only brings the hang-up sooner. The playback carries ``event-lock``:
    without it FreeSWITCH plays nothing. Each sendmsg is a private event queued to the channel,
    and switch_ivr_play_file() calls switch_ivr_parse_all_events() on every frame it plays
    (src/switch_ivr_play_say.c), so the hang-up queued right behind the playback is parsed and
    executed from inside it on its first frame: playback and hangup in the same microsecond, the
    BYE 20 ms later, 0.0 s of the tone heard. ``event-lock: true`` sets CF_EVENT_LOCK while the
    playback's message runs (switch_ivr_parse_event, src/switch_ivr.c), and
    switch_core_session_dequeue_private_event() hands out nothing while it is set
    (src/switch_core_session.c): the hang-up waits in the queue until the playback has returned,
    then the parked channel's loop parses it.
    """
    effects: list[Effect] = []
    if tone:
        effects.append(Execute(uuid, "playback", tone, event_lock=True))
    effects.append(Execute(uuid, "hangup", cause))
    return effects


@dataclass
class Tones:
    error: str
    ended: str
    notify: str | None = None  # soft entry (None: never)


def refusal_tone(sup_uuid: str, tones: Tones) -> list[Effect]:
    """What a refused supervisor gets: the error tone, then a hang-up."""
    return play_then_hang_up(sup_uuid, tones.error, "CALL_REJECTED")
