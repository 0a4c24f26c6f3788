"""One intervention and its named transitions: the states it may be in and how it may move.
Pure; the machine (fsbarge.core.barge) decides which transition an event means."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from fsbarge.core.events import Event
from fsbarge.core.terms import BARGE, CUSTOMER_WHISPER, FEATURE_CODE, LISTEN, MODES, WHISPER, Mode

__all__ = ["EAVESDROP_APPS", "IllegalTransition", "Intervention", "KEY_MODES", "LIVE", "MODE_KEYS", "STARTING", "State", "TRANSITIONS"]

KEY_MODES: dict[str, Mode] = {"0": LISTEN, "1": CUSTOMER_WHISPER, "2": WHISPER, "3": BARGE}
assert set(KEY_MODES.values()) == set(MODES)
MODE_KEYS = {mode: key for key, mode in KEY_MODES.items()}
EAVESDROP_APPS = ("eavesdrop", "three_way")


# -- state -----------------------------------------------------------------


class State(enum.Enum):
    """Where one intervention stands; :data:`TRANSITIONS` says how it may move::

        executed     REQUESTED  --CHANNEL_EXECUTE (our Application-UUID)-->  EXECUTING
        start_audio  REQUESTED/EXECUTING --MEDIA_BUG_START on the target, or a DTMF-->  ACTIVE (first mode)
        change_mode  ACTIVE     --a mode key, accepted-->  ACTIVE
        leave        ACTIVE     --DTMF '*'-->  LEAVING
        end_call     EXECUTING/ACTIVE/LEAVING --target hangs up-->  CALL_ENDED  (record closed at the call's end)
        reattach     any but ENDED --a resync finds its eavesdrop running-->  ACTIVE
        end          any but ENDED --EXECUTE_COMPLETE (ours), the supervisor hangs up, a resync-->  ENDED

    A target that hangs up while REQUESTED needs nothing: eavesdrop returns at once and the
    EXECUTE_COMPLETE in REQUESTED/EXECUTING closes the record as ``target_gone``.
    """

    REQUESTED = "requested"
    EXECUTING = "executing"
    ACTIVE = "active"
    LEAVING = "leaving"
    CALL_ENDED = "call_ended"
    ENDED = "ended"  # forgotten by the machine: nothing moves it again


STARTING = (State.REQUESTED, State.EXECUTING)
LIVE = frozenset(State) - {State.ENDED}

# transition -> (the states it may leave, the state it enters). The machine decides which
# transition an event means; the intervention refuses one its state has no arrow for.
TRANSITIONS: dict[str, tuple[frozenset[State], State]] = {
    "executed": (frozenset({State.REQUESTED}), State.EXECUTING),
    "start_audio": (frozenset(STARTING), State.ACTIVE),
    "change_mode": (frozenset({State.ACTIVE}), State.ACTIVE),
    "leave": (frozenset({State.ACTIVE}), State.LEAVING),
    "end_call": (frozenset({State.EXECUTING, State.ACTIVE, State.LEAVING}), State.CALL_ENDED),
    # a resync believes FreeSWITCH: the snapshot shows this eavesdrop running, whatever we thought
    "reattach": (LIVE, State.ACTIVE),
    "end": (LIVE, State.ENDED),
}


class IllegalTransition(Exception):
    """An intervention was asked to move where its state has no arrow: a bug in the machine."""


@dataclass
class Intervention:
    """One supervisor's running (or starting) intervention, keyed by the supervisor's uuid.

    ``state`` is read-only: it changes only through the transition methods below, each named in
    :data:`TRANSITIONS`, so an impossible move raises instead of leaving a state nobody planned.
    """

    sup_uuid: str
    supervisor: str
    agent: str
    target_uuid: str
    requested_mode: str
    started_at: float
    app_uuid: str | None = None  # Event-UUID of our eavesdrop sendmsg; FreeSWITCH echoes it as Application-UUID
    _state: State = field(default=State.REQUESTED, init=False)
    mode: str | None = None  # the mode FreeSWITCH applies now (None before audio)
    end_tone: str | None = None  # CALL_ENDED: the tone the supervisor hears once eavesdrop returns
    commanded: bool = False  # we have sent this eavesdrop a mode key (a refusal undone, a re-assert)
    start_notified: tuple[str, ...] = ()  # who heard the tone when it started (recorded with the first mode)
    start_source: str = FEATURE_CODE  # the first mode's source: help_request when a help request led here

    @property
    def state(self) -> State:
        """Read-only: it moves through the transition methods."""
        return self._state

    def ours(self, ev: Event) -> bool:
        """Is this EXECUTE/EXECUTE_COMPLETE our eavesdrop (not another application on the channel)?

        Once we have sent an Event-UUID, only the application FreeSWITCH runs under it is ours. A
        record re-attached without one (written before we kept it) names the target instead."""
        if ev.application not in EAVESDROP_APPS:
            return False
        if self.app_uuid is not None:
            return ev.application_uuid == self.app_uuid
        return ev.application_data == self.target_uuid

    # -- transitions (see TRANSITIONS) -------------------------------------------------

    def _move(self, transition: str) -> State:
        """Enter the transition's state from the current one, or raise; returns the state left."""
        sources, target = TRANSITIONS[transition]
        if self._state not in sources:
            raise IllegalTransition(
                f"intervention {self.sup_uuid}: {transition!r} is not allowed from {self._state.value}"
                f" (only from {', '.join(sorted(s.value for s in sources))})"
            )
        left, self._state = self._state, target
        return left

    def executed(self) -> None:
        """FreeSWITCH runs our eavesdrop (CHANNEL_EXECUTE): no audio yet."""
        self._move("executed")

    def start_audio(self) -> str:
        """Audio flows (MEDIA_BUG_START, or a DTMF only a running eavesdrop fires): the requested
        mode is the first one. Returns it."""
        self._move("start_audio")
        self.mode = self.requested_mode
        return self.mode

    def change_mode(self, mode: str) -> None:
        """The mode FreeSWITCH now applies (a key the supervisor pressed, accepted)."""
        self._move("change_mode")
        self.mode = mode

    def leave(self) -> None:
        """The supervisor pressed ``*``: eavesdrop returns soon."""
        self._move("leave")

    def end_call(self, tone: str | None) -> None:
        """The agent's call ended under the eavesdrop: ``tone`` for the supervisor once it returns."""
        self._move("end_call")
        self.end_tone = tone

    def reattach(self, mode: str) -> None:
        """A resync found this eavesdrop running in FreeSWITCH: active again, in ``mode``."""
        self._move("reattach")
        self.mode = mode

    def revert_mode(self, mode: str) -> None:
        """Back to ``mode`` (the journal could not record the one FreeSWITCH just applied, so we
        put it back: fsbarge.core.unaudited). Not a transition: the state stays where it is."""
        self.mode = mode

    def end(self) -> State:
        """The machine forgets it (eavesdrop returned, the supervisor hung up, a resync closed it).
        Returns the state it ended from: how it ended decides the record's close."""
        return self._move("end")
