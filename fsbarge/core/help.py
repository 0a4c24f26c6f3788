"""Help requests (SPEC.md "Help requests"), pure: an agent asks for a supervisor, fsbarge rings the
ones who may whisper to them, the first to answer is connected in ``whisper``.

A request comes from the agent's phone (``*9``: the meta key FreeSWITCH binds on the agent's leg,
which fires a CUSTOM ``fsbarge::help`` event carrying the leg) or from outside (``fsbarge help
request``: the same event sent with ``sendevent``, naming the agent's extension). Every request is
recorded (help_open when it starts, help_close when it ends); the intervention it leads to is an
ordinary one, from the barge machine, marked ``origin = help_request``.

The desk is event in, effects out, clocked from outside; the service does the IO.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fsbarge.core.barge import BargeMachine
from fsbarge.core.channels import Channel, ChannelTable
from fsbarge.core.effects import Effect, Execute, MixTone
from fsbarge.core.events import Event
from fsbarge.core.policy import Policy
from fsbarge.core.terms import (
    ANSWERED,
    CALL_ENDED,
    EXTERNAL,
    HELP_REQUEST,
    NO_SUPERVISOR,
    PHONE,
    UNANSWERED,
    WHISPER,
    HelpOutcome,
)

__all__ = ["BIND_HELP_KEY", "BIND_HELP_KEY_CALLER", "CloseHelp", "DueAt", "HelpDesk", "HelpTones", "Kill", "OpenHelp", "Originate"]

HELP_SUBCLASS = "fsbarge::help"
# bind_meta_app <key> <listen> <respond: s = the side that pressed, i = inline> <app>::<args>: the
# agent's *9 runs the event app on the agent's leg, a CUSTOM event with its headers (Unique-ID, user).
# Bound the way the stock dialplan binds its *1..*4 features (Local_Extension: "1 b s ..." on the
# caller's leg), so that both live in one channel's meta map and neither swallows the other's keys
# (src/switch_ivr_async.c meta_on_dtmf: a leg with a meta map drops '*' + any digit it has no app for):
# - a call the agent answered (the agent's leg is the callee): on the caller's leg, listening to
#   the digits the agent sends to it (b);
BIND_HELP_KEY_CALLER = f"9 b si event::Event-Name=CUSTOM,Event-Subclass={HELP_SUBCLASS}"
# - a call the agent placed: on the agent's own leg, listening to its phone (a).
BIND_HELP_KEY = f"9 a si event::Event-Name=CUSTOM,Event-Subclass={HELP_SUBCLASS}"


@dataclass(frozen=True)
class OpenHelp:
    """Journal help_open."""

    uid: str
    record: dict[str, Any]


@dataclass(frozen=True)
class CloseHelp:
    """Journal help_close; ``intervention_key`` is the supervisor leg whose record it led to."""

    uid: str
    outcome: HelpOutcome
    ended_at: float
    answered_by: str | None = None
    answered_at: float | None = None
    intervention_key: str | None = None


@dataclass(frozen=True)
class Originate:
    """Ring a supervisor's phone (``user/<ext>``), showing the agent; the answered leg parks."""

    uuid: str
    supervisor: str
    agent: str
    help_uid: str
    ring_seconds: int


@dataclass(frozen=True)
class Kill:
    """Stop a phone ringing (or a late answer)."""

    uuid: str


@dataclass(frozen=True)
class DueAt:
    """Call :meth:`HelpDesk.timeout` for ``uid`` after ``seconds``."""

    uid: str
    seconds: float


@dataclass
class HelpTones:
    answered: str
    unanswered: str


@dataclass
class _Request:
    uid: str
    agent: str
    agent_uuid: str
    ringing: dict[str, str] = field(default_factory=dict)  # supervisor leg -> extension
    answered: bool = False


@dataclass
class HelpDesk:
    node: str
    policy: Policy
    channels: ChannelTable
    machine: BargeMachine
    tones: HelpTones
    new_id: Callable[[], str]
    ring_seconds: int = 30
    open: dict[str, _Request] = field(default_factory=dict)  # agent leg -> its request
    bound: set[str] = field(default_factory=set)  # legs *9 is bound on (the agent's, or its caller's)

    def handle(self, ev: Event, now: float) -> list[Effect]:
        name, uuid = ev.name, ev.uuid
        if name == "CUSTOM" and ev.subclass == HELP_SUBCLASS:
            return self._custom(ev, now)
        if not uuid:
            return []
        if name in ("CHANNEL_ANSWER", "CHANNEL_BRIDGE"):
            return self._bind(uuid)
        if name == "CHANNEL_PARK":
            req = self._ringing_owner(uuid)
            if req is not None:
                return self._answered(req, uuid, now)
            return []
        if name == "CHANNEL_HANGUP":
            self.bound.discard(uuid)
            return self._hangup(uuid, now)
        return []

    # -- binding *9 ------------------------------------------------------------------

    def _bind(self, uuid: str) -> list[Effect]:
        """*9 for the agent's leg among this leg and its peer: on the caller's leg once a call the
        agent answered is bridged, on the agent's own leg for a call the agent placed. A binding on a
        caller's leg follows its peer (a transfer to another agent keeps working: 's' runs the app on
        whoever is bridged to it when *9 arrives)."""
        ch = self.channels.get(uuid)
        if ch is None:
            return []
        effects: list[Effect] = []
        for leg in (ch, self.channels.get(ch.peer_uuid) if ch.peer_uuid else None):
            if leg is None or not self._agents_own(leg):
                continue
            if leg.direction == "outbound":
                caller = self.channels.get(leg.peer_uuid) if leg.peer_uuid else None
                if caller is not None and caller.uuid not in self.bound:
                    self.bound.add(caller.uuid)
                    effects.append(Execute(caller.uuid, "bind_meta_app", BIND_HELP_KEY_CALLER))
            elif leg.uuid not in self.bound:
                self.bound.add(leg.uuid)
                effects.append(Execute(leg.uuid, "bind_meta_app", BIND_HELP_KEY))
        return effects

    def _agents_own(self, leg: Channel) -> bool:
        """An answered leg of an agent's own phone, in O(1) (this runs on every answer and bridge,
        and ChannelTable.agent_leg walks every leg of the extension)."""
        return bool(leg.user) and self.policy.is_agent(leg.user) and self.channels.may_be_own_leg(leg, leg.user)

    # -- a request ---------------------------------------------------------------------

    def _custom(self, ev: Event, now: float) -> list[Effect]:
        if ev.help_agent:  # from `fsbarge help request`: the extension, no leg
            leg = self.channels.agent_leg(ev.help_agent)
            if leg is None:
                return []
            return self.request(ev.help_agent, leg.uuid, EXTERNAL, ev.help_reason, now)
        ch = self.channels.get(ev.uuid) if ev.uuid else None
        if ch is None or not ch.user or not self.policy.is_agent(ch.user):
            return []  # (a caller's binding now bridged to someone who is no agent)
        return self.request(ch.user, ch.uuid, PHONE, None, now)

    def request(self, agent: str, agent_uuid: str, source: str, reason: str | None, now: float) -> list[Effect]:
        if agent_uuid in self.open:
            return []  # a second *9 while one rings or was answered
        req = _Request(self.new_id(), agent, agent_uuid)
        self.open[agent_uuid] = req
        record = {
            "node": self.node, "agent": agent, "agent_uuid": agent_uuid,
            "customer": self.machine.customer_of(agent_uuid), "requested_at": now, "source": source,
            "reason": reason,
        }
        effects: list[Effect] = [OpenHelp(req.uid, record)]
        busy = {iv.supervisor for iv in self.machine.active.values()} | {
            ext for r in self.open.values() for ext in r.ringing.values()
        }
        candidates = [s for s in self.policy.help_supervisors(agent) if s not in busy]
        if not candidates:
            del self.open[agent_uuid]
            return [*effects, CloseHelp(req.uid, NO_SUPERVISOR, now), MixTone(agent_uuid, self.tones.unanswered)]
        for sup in candidates:
            leg = self.new_id()
            req.ringing[leg] = sup
            effects.append(Originate(leg, sup, agent, req.uid, self.ring_seconds))
        effects.append(DueAt(req.uid, self.ring_seconds))
        return effects

    def withdraw(self, agent_uuid: str) -> None:
        """Forget the agent's request without ringing anyone (the journal could not record it)."""
        self.open.pop(agent_uuid, None)

    def timeout(self, uid: str, now: float) -> list[Effect]:
        req = next((r for r in self.open.values() if r.uid == uid), None)
        if req is None or req.answered:
            return []
        return self._unanswered(req, UNANSWERED, now)

    # -- its end ------------------------------------------------------------------------

    def _ringing_owner(self, leg: str) -> _Request | None:
        return next((r for r in self.open.values() if leg in r.ringing), None)

    def _answered(self, req: _Request, leg: str, now: float) -> list[Effect]:
        sup = req.ringing.pop(leg)
        if req.answered:
            return [Kill(leg)]
        req.answered = True
        others = [Kill(u) for u in req.ringing]
        req.ringing.clear()
        started = self.machine.request(
            leg, WHISPER, req.agent, sup, sup, now, origin=HELP_REQUEST, help_uid=req.uid
        )
        return [
            *others,
            *started,
            CloseHelp(req.uid, ANSWERED, now, answered_by=sup, answered_at=now, intervention_key=leg),
            MixTone(req.agent_uuid, self.tones.answered),
        ]

    def _hangup(self, uuid: str, now: float) -> list[Effect]:
        req = self.open.get(uuid)
        if req is not None:  # the agent's call ended
            del self.open[uuid]
            if req.answered:
                return []
            return [*(Kill(u) for u in req.ringing), CloseHelp(req.uid, CALL_ENDED, now)]
        req = self._ringing_owner(uuid)
        if req is None:
            return []
        del req.ringing[uuid]  # a supervisor declined, or their phone gave up
        if req.ringing or req.answered:
            return []
        return self._unanswered(req, UNANSWERED, now, kill=False)

    def _unanswered(self, req: _Request, outcome: str, now: float, kill: bool = True) -> list[Effect]:
        effects: list[Effect] = [Kill(u) for u in req.ringing] if kill else []
        req.ringing.clear()
        self.open.pop(req.agent_uuid, None)
        return [*effects, CloseHelp(req.uid, outcome, now), MixTone(req.agent_uuid, self.tones.unanswered)]
