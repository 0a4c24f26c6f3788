"""Soft entry: who hears a tone when a supervisor enters a mode. Pure: the tones are effects.

The team says which parties hear it (fsbarge.core.policy); the agent's party is the agent's own leg,
the customer's is the leg bridged to it, if any. FreeSWITCH allows one ``uuid_displace`` per file
on a channel, so a leg still playing the tone has it stopped before it is mixed in again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fsbarge.core.channels import ChannelTable
from fsbarge.core.effects import Effect, MixTone, StopTone
from fsbarge.core.intervention import Intervention
from fsbarge.core.policy import Policy

__all__ = ["NOTIFY_LIMIT", "Notifier"]

NOTIFY_LIMIT = 5  # seconds: a notification tone is removed after this long at the latest


@dataclass
class Notifier:
    """The notification tones of one node's interventions. The policy, the channels and the tone
    are the machine's at the time of the call (a configuration reload may replace them)."""

    # leg uuid -> when we last mixed a notification tone into it (a new one stops it first)
    toned: dict[str, float] = field(default_factory=dict)

    def entering(
        self, iv: Intervention, mode: str, now: float, *, policy: Policy, channels: ChannelTable, tone: str | None
    ) -> tuple[list[Effect], tuple[str, ...]]:
        """The tone for those the team says hear it when ``iv``'s supervisor enters ``mode``, and
        the parties who hear it (recorded with the mode)."""
        if not tone:
            return [], ()
        legs = {"agent": iv.target_uuid}
        target = channels.get(iv.target_uuid)
        if target is not None and target.peer_uuid and channels.get(target.peer_uuid) is not None:
            legs["customer"] = target.peer_uuid
        if len(self.toned) > 1000:  # forget legs whose tone is long over
            self.toned = {leg: at for leg, at in self.toned.items() if now - at < NOTIFY_LIMIT}
        effects: list[Effect] = []
        notified: list[str] = []
        for party in policy.notify_parties(iv.supervisor, iv.agent, mode):
            leg = legs.get(party)
            if leg is None:
                continue
            if now - self.toned.get(leg, float("-inf")) < NOTIFY_LIMIT:
                effects.append(StopTone(leg, tone))
            self.toned[leg] = now
            effects.append(MixTone(leg, tone))
            notified.append(party)
        return effects, tuple(notified)
