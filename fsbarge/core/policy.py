"""Who may barge whom, in which modes (SPEC.md "Who may barge whom"). Pure."""

from __future__ import annotations

from dataclasses import dataclass

from fsbarge.core import terms
from fsbarge.config import Config

__all__ = ["ALL_MODES", "DIAL_MODES", "Policy"]

# Modes a feature code can start in, and every mode a DTMF key can reach.
DIAL_MODES = terms.DIAL_MODES
ALL_MODES = terms.MODES


@dataclass(frozen=True)
class Policy:
    """Decisions over the configured teams; built once from the configuration."""

    config: Config

    def refusal(self, supervisor: str | None, agent: str, mode: str) -> str | None:
        """Why ``supervisor`` may not start ``mode`` on ``agent`` (a SPEC reason), or None."""
        if not supervisor:
            return "unauthenticated"
        if supervisor == agent:
            return "self_target"
        teams = self.config.teams_supervised_by(supervisor)
        if not teams:
            return "not_supervisor"
        if self.is_protected(agent):
            return "protected_target"
        mine = [t for t in teams if agent in t.agents]
        if not mine:
            return "not_in_team"
        if mode not in DIAL_MODES or not any(mode in t.modes for t in mine):
            return "mode_not_allowed"
        return None

    def team_of(self, supervisor: str | None, agent: str, mode: str) -> str | None:
        """The team an attempt is recorded under (the audit's ``team``), decided with the attempt
        so that nobody reading the audit later needs the configuration: the first team in which
        the supervisor supervises the agent and may use ``mode`` (the team whose policy let them
        act), else the first in which they supervise the agent (a mode refused), else the agent's
        first team (a refusal by anyone else), else None (not an agent of any team)."""
        shared = [t for t in self.config.teams_supervised_by(supervisor) if agent in t.agents] if supervisor else []
        for team in shared:
            if mode in team.modes:
                return team.name
        if shared:
            return shared[0].name
        return next((t.name for t in self.config.teams if agent in t.agents), None)

    def mode_allowed(self, supervisor: str, agent: str, mode: str) -> bool:
        """May this supervisor be in ``mode`` on this agent (used for DTMF switches)?"""
        return any(mode in t.modes for t in self.config.teams_supervised_by(supervisor) if agent in t.agents)

    def notify_parties(self, supervisor: str, agent: str, mode: str) -> tuple[str, ...]:
        """Who hears the notification tone when ``supervisor`` enters ``mode`` on ``agent``
        (``notify_agent`` / ``notify_customer`` of the teams they share), agent first."""
        mine = [t for t in self.config.teams_supervised_by(supervisor) if agent in t.agents]
        parties = []
        if any(mode in t.notify_agent for t in mine):
            parties.append("agent")
        if any(mode in t.notify_customer for t in mine):
            parties.append("customer")
        return tuple(parties)

    def is_agent(self, ext: str) -> bool:
        return any(ext in t.agents for t in self.config.teams)

    def help_supervisors(self, agent: str) -> list[str]:
        """Who a help request of ``agent`` rings: the supervisors of the agent's teams that allow
        ``whisper``, in file order, once each."""
        out: list[str] = []
        for team in self.config.teams:
            if agent in team.agents and terms.WHISPER in team.modes:
                out += [s for s in team.supervisors if s not in out and s != agent]
        return out

    def is_protected(self, ext: str) -> bool:
        pol = self.config.policy
        if ext in pol.protected:
            return True
        return pol.protect_supervisors and self.config.is_supervisor(ext)

    @property
    def allow_second_barge(self) -> bool:
        return self.config.policy.allow_second_barge
