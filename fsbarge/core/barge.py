"""The intervention state machine: event in, effects out. Pure: no IO, no clock, no ids of its own.

The machine of one node lives here; the effects it returns are in :mod:`fsbarge.core.effects`, one
intervention and its named transitions in :mod:`fsbarge.core.intervention`, what a resync makes of
the open interventions in :mod:`fsbarge.core.reattach`, a request's record and start commands in
:mod:`fsbarge.core.request`, the cross-node hand-off's tickets and bridge in :mod:`fsbarge.core.handoff`.
The machine delegates by role: the keys and mode changes to :mod:`fsbarge.core.keys`, the endings
(eavesdrop done, hang-ups, close_all) to :mod:`fsbarge.core.endings`, and what it holds after a
resync (adopt, reassert) to :mod:`fsbarge.core.adoption`.

One machine per FreeSWITCH node. It reads the node's channel table (already
updated with the event) and returns effects that the service carries out in
order: audit writes first (committed), then commands to FreeSWITCH.

How an intervention runs, as observed on a real FreeSWITCH (captures 03/04/05):
the feature code parks the supervisor with ``fsbarge_mode``/``fsbarge_target``
set (CHANNEL_PARK); we ``set`` the start variables and ``eavesdrop <agent leg>``;
CHANNEL_EXECUTE on the supervisor, then MEDIA_BUG_START on the target, means
audio flows; DTMF events on the supervisor are the keys eavesdrop read (it has
already applied them); eavesdrop ends with MEDIA_BUG_STOP then
CHANNEL_EXECUTE_COMPLETE, after the hang-up of whichever leg ended it, and a
parked supervisor then goes back to park (so we hang it up). A target that is
gone gives EXECUTE and EXECUTE_COMPLETE at once with no media bug.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fsbarge.core import adoption, endings, keys
from fsbarge.core.channels import ChannelTable
from fsbarge.core.crossnode import Claim, CrossNode, Ticket, TicketError
from fsbarge.core.effects import (
    AddMode, CloseAudit, Effect, Execute, MixTone, OpenAudit, SendKey, StopTone, Tones, play_then_hang_up, refusal_tone,
)
from fsbarge.core.events import Event
from fsbarge.core.handoff import HandOff, arrival_record, bridge_effects, failed_record, hand_off_ended, ticket_for
from fsbarge.core.intervention import EAVESDROP_APPS, KEY_MODES, MODE_KEYS, TRANSITIONS, IllegalTransition, Intervention, State
from fsbarge.core.notify import NOTIFY_LIMIT, Notifier
from fsbarge.core.policy import Policy
from fsbarge.core.reattach import Reattached, reattached
from fsbarge.core.request import Parked, barged_by_other, customer_of, eavesdrop_effects, parked_request, request_record
from fsbarge.core.terms import ACTIVE, BARGE, DENIED, FAILED, FEATURE_CODE, FREESWITCH_SHUTDOWN, HELP_REQUEST, NO_ACTIVE_CALL

# The effects, the intervention, the resync's re-attach, the request and the hand-off live in
# modules of their own; their names stay importable from here, where the machine that uses them is.
__all__ = [
    "NOTIFY_LIMIT", "Tones", "AddMode", "CloseAudit", "Effect", "Execute", "HandOff", "IllegalTransition", "Intervention",
    "Reattached", "reattached", "BargeMachine", "MixTone", "StopTone", "OpenAudit", "Parked", "parked_request",
    "play_then_hang_up", "refusal_tone", "SendKey", "State", "TRANSITIONS", "KEY_MODES", "MODE_KEYS",
]


@dataclass
class BargeMachine:
    """Interventions of one node."""

    node: str
    policy: Policy
    channels: ChannelTable
    tones: Tones
    new_id: Callable[[], str]
    active: dict[str, Intervention] = field(default_factory=dict)
    # A parked supervisor's channel keeps the fsbarge variables; remember whose
    # request we already decided so that a second CHANNEL_PARK cannot start another.
    decided: dict[str, None] = field(default_factory=dict)
    remember: int = 10000
    # Interventions given up before eavesdrop started (the connection went while we
    # were starting them). FreeSWITCH may still run the eavesdrop it had already
    # read: if it does, it is stopped at once, since nothing audits it any more.
    abandoned: set[str] = field(default_factory=set)
    # The other node (of those this process serves) where an agent has a call, if any: the
    # supervisor is sent there (cross), or refused as target_on_other_node when it has no address.
    elsewhere: Callable[[str], str | None] = lambda _agent: None
    cross: CrossNode | None = None  # shared by the machines of one daemon
    handoffs: dict[str, HandOff] = field(default_factory=dict)  # supervisor uuid -> sent to another node
    notifier: Notifier = field(default_factory=Notifier)  # soft entry (fsbarge.core.notify)

    # -- entry point -------------------------------------------------------

    def handle(self, ev: Event, now: float) -> list[Effect]:
        name = ev.name
        if name == "CHANNEL_PARK":
            if not ev.uuid:
                return []
            # Only the digest-authenticated directory user identifies a supervisor;
            # caller-ID is whatever the phone says.
            return self.serve_parked(
                ev.uuid, ticket=ev.fsbarge_ticket, target=ev.fsbarge_target, mode=ev.fsbarge_mode,
                supervisor=ev.user_name if ev.has_variables else None, caller_number=ev.caller_number, now=now,
            )
        if name == "SHUTDOWN":
            return self.close_all(FREESWITCH_SHUTDOWN, now)
        if name == "CHANNEL_EXECUTE" and ev.uuid in self.abandoned and ev.application in EAVESDROP_APPS:
            return [SendKey(ev.uuid, "*")]
        if name == "CHANNEL_HANGUP" and ev.uuid in self.abandoned:
            self.abandoned.discard(ev.uuid)
        if self.handoffs and ev.uuid in self.handoffs:
            if hand_off_ended(self.handoffs[ev.uuid], ev):
                return self._handoff_done(ev.uuid, hung_up=name == "CHANNEL_HANGUP", now=now)
        if not self.active:
            return []
        uuid = ev.uuid
        iv = self.active.get(uuid) if uuid else None
        if iv is not None:
            if name == "DTMF":
                return keys.key_pressed(iv, ev.dtmf_digit or "", now, policy=self.policy, active=self.active,
                                        notify=self._notify)
            if name == "CHANNEL_EXECUTE" and iv.ours(ev):
                if iv.state is State.REQUESTED:
                    iv.executed()
                return []
            if name == "CHANNEL_EXECUTE_COMPLETE" and iv.ours(ev):
                return endings.eavesdrop_done(self.active, self.channels, self.tones, iv, now)
            if name == "CHANNEL_HANGUP":
                return endings.supervisor_hangup(self.active, iv, ev, now)
            return []
        if name == "MEDIA_BUG_START" and ev.media_bug_function == "eavesdrop":
            return keys.audio_started(self.active, ev.uuid, now)
        if name == "CHANNEL_HANGUP":
            return endings.target_hangup(self.active, self.tones, ev, now)
        return []

    # -- a request from the dialplan --------------------------------------

    def serve_parked(
        self, uuid: str, *, ticket: str | None, target: str | None, mode: str | None, supervisor: str | None,
        caller_number: str | None, now: float,
    ) -> list[Effect]:
        """A channel parked with the fsbarge variables: from its CHANNEL_PARK, or read back after a
        resync from a channel still parked (the same decision either way)."""
        kind = parked_request(ticket, target)
        if kind is Parked.TICKET:
            assert ticket is not None
            return self.arrive(uuid, ticket, now)
        if kind is Parked.DIALLED:
            return self.request(uuid, mode, target, supervisor, caller_number, now)
        return []

    def request(
        self, sup_uuid: str, mode: str | None, agent: str | None, supervisor: str | None, caller_number: str | None, now: float,
        *, origin: str = FEATURE_CODE, help_uid: str | None = None, ticket: Ticket | None = None,
    ) -> list[Effect]:
        """A feature-code request: from CHANNEL_PARK, or read back from a channel still parked
        after a resync. ``supervisor`` is the authenticated ``user_name`` (None if unknown). A
        channel already decided starts nothing (a parked channel keeps its variables)."""
        if sup_uuid in self.decided:
            return []
        self.decided[sup_uuid] = None
        if len(self.decided) > self.remember:
            del self.decided[next(iter(self.decided))]
        mode = (mode or "").strip()
        agent = (agent or "").strip()
        record = request_record(self.node, self.policy, sup_uuid, mode, agent, supervisor, caller_number, now,
                                origin=origin, help_uid=help_uid, ticket=ticket)
        reason = self.policy.refusal(supervisor, agent, mode)
        if reason is not None:
            return self._refuse(sup_uuid, record, DENIED, reason, now)
        leg = self.channels.agent_leg(agent)
        if leg is None:
            # A request sent here from another node is never sent on (no ping-pong between nodes).
            other = self.elsewhere(agent) if ticket is None else None
            if other is not None:
                # SPEC: the record's node is the agent's node and it names the supervisor's node
                record.update(node=other, supervisor_node=self.node)
                if self.cross is None or self.cross.address(other) is None:
                    return self._refuse(sup_uuid, record, DENIED, "target_on_other_node", now)
                return self._hand_off(sup_uuid, record, other, now)
            return self._refuse(sup_uuid, record, NO_ACTIVE_CALL, None, now)
        record["target_uuid"] = leg.uuid
        record["customer"] = customer_of(self.channels, leg)
        if mode == BARGE and not self.policy.allow_second_barge and barged_by_other(self.active, leg.uuid, sup_uuid):
            return self._refuse(sup_uuid, record, DENIED, "already_barged", now)
        app_uuid = self.new_id()
        record["application_uuid"] = app_uuid
        record["outcome"] = ACTIVE
        self.active[sup_uuid] = Intervention(
            sup_uuid=sup_uuid,
            supervisor=supervisor or "",
            agent=agent,
            target_uuid=leg.uuid,
            requested_mode=mode,
            started_at=now,
            app_uuid=app_uuid,
            start_source=HELP_REQUEST if origin == HELP_REQUEST else FEATURE_CODE,
        )
        iv = self.active[sup_uuid]
        tones, iv.start_notified = self._notify(iv, mode, now)
        return [
            OpenAudit(sup_uuid, record),
            *tones,  # before the eavesdrop: the tone comes first, then the supervisor's voice
            *eavesdrop_effects(sup_uuid, mode, leg.uuid, app_uuid),
        ]

    # -- across nodes (fsbarge.core.crossnode) --------------------------------------

    def _hand_off(self, sup_uuid: str, record: dict[str, Any], other: str, now: float) -> list[Effect]:
        """Send the supervisor's call to the agent's node with a fresh ticket. FreeSWITCH hangs the
        supervisor up when that call ends (hangup_after_bridge), even with the daemon gone."""
        assert self.cross is not None
        ticket = ticket_for(self.new_id().replace("-", ""), sup_uuid, record, self.node, other, now)
        dial = self.cross.dial(ticket)
        assert dial is not None
        try:
            self.cross.issue(ticket, now)
        except TicketError:  # the agent's node is served by another instance, through a database that is down
            return self._refuse(sup_uuid, record, FAILED, "node_unreachable", now)
        app_uuid = self.new_id()
        self.handoffs[sup_uuid] = HandOff(ticket.token, app_uuid, record)
        return bridge_effects(sup_uuid, other, dial, app_uuid)

    def _handoff_done(self, sup_uuid: str, *, hung_up: bool, now: float) -> list[Effect]:
        """The call to the other node ended (or the supervisor hung up): if that node never took
        the ticket, the attempt is recorded here, as failed."""
        h = self.handoffs.pop(sup_uuid)
        assert self.cross is not None
        if not self.cross.revoke(h.token):
            return []  # the agent's node has it: recorded and ended there
        effects: list[Effect] = [OpenAudit(sup_uuid, failed_record(h, hung_up=hung_up, now=now))]
        if not hung_up:
            effects += self.refusal_tone(sup_uuid)
        return effects

    def arrive(self, uuid: str, token: str, now: float) -> list[Effect]:
        """A supervisor's call sent here by another node (parked by the fsbarge_node drop-in)."""
        if uuid in self.decided:
            return []
        claim = self.cross.claim(token, self.node, now) if self.cross is not None else Claim.UNKNOWN
        if isinstance(claim, Ticket):
            return self.request(uuid, claim.mode, claim.agent, claim.supervisor, None, now, ticket=claim)
        self.decided[uuid] = None
        if claim is Claim.SPENT:
            # A replay, or the supervisor's node gave up on it and recorded the attempt: no second record.
            return [Execute(uuid, "hangup", "CALL_REJECTED")]
        return self._refuse(uuid, arrival_record(self.node, uuid, now), DENIED, "unauthenticated", now)

    def _refuse(self, sup_uuid: str, record: dict[str, Any], outcome: str, reason: str | None, now: float) -> list[Effect]:
        record.update(outcome=outcome, reason=reason, ended_at=now)
        return [OpenAudit(sup_uuid, record), *self.refusal_tone(sup_uuid)]

    def refuse_unaudited(self, sup_uuid: str) -> list[Effect]:
        """A starting intervention whose opening the journal could not take: never a barge
        without an audit trail. Forgotten, and the supervisor hears the refusal."""
        iv = self.active.get(sup_uuid)
        if iv is not None:
            endings.forget(self.active, iv)
        return self.refusal_tone(sup_uuid)

    def revert_mode(self, sup_uuid: str, mode: str) -> list[Effect]:
        """Put a running eavesdrop back in ``mode`` (a mode change the journal could not take)."""
        self.active[sup_uuid].revert_mode(mode)
        return [SendKey(sup_uuid, MODE_KEYS[mode])]

    def refusal_tone(self, sup_uuid: str) -> list[Effect]:
        """What a refused supervisor gets: the error tone, then a hang-up."""
        return refusal_tone(sup_uuid, self.tones)

    def customer_of(self, leg_uuid: str) -> str | None:
        """The other party of the call on this leg (for a help request's record)."""
        leg = self.channels.get(leg_uuid)
        return customer_of(self.channels, leg) if leg is not None else None

    # -- while it runs (fsbarge.core.keys) -------------------------------

    def _notify(self, iv: Intervention, mode: str, now: float) -> tuple[list[Effect], tuple[str, ...]]:
        return self.notifier.entering(iv, mode, now, policy=self.policy, channels=self.channels, tone=self.tones.notify)

    # -- endings (fsbarge.core.endings) ------------------------------------

    def close_all(self, end_reason: str, now: float) -> list[Effect]:
        """Close every open intervention (FreeSWITCH shut down or restarted under them)."""
        return endings.close_all(self.active, end_reason, now)

    # -- after a (re)connect (fsbarge.core.adoption) ---------------------

    def reassert(self, sup_uuids: Iterable[str], now: float) -> list[Effect]:
        """Put each re-attached eavesdrop back in the mode we hold for it (:func:`adoption.reassert`)."""
        return adoption.reassert(self.active, sup_uuids, now)

    def reattach(
        self, records: Iterable[Mapping[str, Any]], now: float, *, restarted: bool, last_seen: float | None,
        endings: Mapping[str, tuple[str, float]] | None = None,
    ) -> list[Effect]:
        """Decide with :func:`reattached`, then hold what it decided."""
        out = reattached(
            records, self.active, self.channels, self.tones, now, restarted=restarted, last_seen=last_seen, endings=endings
        )
        self.adopt(out)
        return out.effects

    def adopt(self, decided: Reattached) -> None:
        """Hold the interventions a resync decided on (:func:`reattached`, fsbarge.core.resync.plan):
        those it dropped end here, the ones it re-attached replace ours."""
        adoption.adopt(self.active, self.decided, self.abandoned, decided)
