"""The sections about the contact centre's people: ``[[teams]]`` (who may listen to whom, in which
modes, who hears a tone), ``[policy]`` (who may never be barged), ``[tones]`` and ``[help]``.
A team or policy that is valid but likely a slip is a warning, not an error."""

from __future__ import annotations

import re
from typing import Any

from fsbarge.core.terms import MODES, Mode
from fsbarge.config.checks import Reader
from fsbarge.config.errors import show
from fsbarge.config.model import HelpConfig, PolicyConfig, TeamConfig, TonesConfig

__all__ = ["help_", "policy", "teams", "tones", "warn_unprotected"]

_TEAM_KEYS = ("name", "agents", "supervisors", "modes", "notify_agent", "notify_customer")
_NOTIFY = ("notify_agent", "notify_customer")
_TONES = ("error", "ended", "notify", "help_answered", "help_unanswered")
_ENDING_TONES = ("error", "ended")  # played in full before the supervisor is hung up
_ENDLESS = re.compile(r"loops=-|^local_stream://", re.I)  # a tone_stream looping for ever; music on hold


def teams(r: Reader, doc: dict[str, Any]) -> tuple[TeamConfig, ...]:
    """At least one team, each with a distinct name; nobody both agent and supervisor of one team."""
    if "teams" not in doc:
        r.fail("teams", "missing: define at least one [[teams]] table, or nobody may eavesdrop")
    raw = r.tables(doc["teams"], "teams")
    if not raw:
        r.fail("teams", "no teams: define at least one [[teams]] table, or nobody may eavesdrop")
    found: list[TeamConfig] = []
    names: dict[str, int] = {}
    default = TeamConfig("", (), ())
    for i, item in enumerate(raw):
        key = f"teams[{i}]"
        t = r.table(item, key, _TEAM_KEYS, "[[teams]]")
        name = r.text(t, "name", f"{key}.name")
        if name in names:
            r.fail(f"{key}.name", f'duplicate team name "{name}" (also teams[{names[name]}])')
        names[name] = i
        agents = r.extensions(t, "agents", f"{key}.agents", required=True)
        supervisors = r.extensions(t, "supervisors", f"{key}.supervisors", required=True)
        for j, ext in enumerate(supervisors):
            if ext in agents:
                r.fail(f"{key}.supervisors[{j}]", f'"{ext}" is also an agent of team "{name}"; a person is one or the other in a team')
        if not supervisors:
            r.warn(f"{key}.supervisors", f'team "{name}" has no supervisors: nobody may listen to its agents, and their *9 rings nobody')
        if not agents:
            r.warn(f"{key}.agents", f'team "{name}" has no agents: its supervisors have nobody to listen to')
        modes = _modes(r, t, key, "modes", MODES, empty="leave modes out to allow all")
        notify = {n: _modes(r, t, key, n, getattr(default, n)) for n in _NOTIFY}
        for n in _NOTIFY:
            for j, mode in enumerate(notify[n] if n in t else ()):  # the defaults fit any team
                if mode not in modes:
                    r.warn(f"{key}.{n}[{j}]", f'"{mode}" is not one of this team\'s modes: its tone never plays')
        found.append(TeamConfig(name=name, agents=agents, supervisors=supervisors, modes=modes,
                                notify_agent=notify["notify_agent"], notify_customer=notify["notify_customer"]))
    return tuple(found)


def _modes(
    r: Reader, t: dict[str, Any], team_key: str, name: str, default: tuple[Mode, ...], *, empty: str | None = None
) -> tuple[Mode, ...]:
    """A team's list of modes; ``empty``, if given, is why an empty list is refused."""
    if name not in t:
        return default
    key, value = f"{team_key}.{name}", t[name]
    listed = ", ".join(f'"{m}"' for m in MODES)
    if not isinstance(value, list):
        r.fail(key, f"must be an array of modes from {listed}, got {show(value)}")
    if not value and empty is not None:
        r.fail(key, f"must list at least one of {listed} ({empty})")
    return r.choices(value, key, MODES, "mode")


def policy(r: Reader, doc: dict[str, Any]) -> PolicyConfig:
    t = r.section(doc, "policy", ("protect_supervisors", "protected", "allow_second_barge"))
    return PolicyConfig(
        protect_supervisors=r.boolean(t, "protect_supervisors", "policy.protect_supervisors", True),
        protected=r.extensions(t, "protected", "policy.protected", required=False),
        allow_second_barge=r.boolean(t, "allow_second_barge", "policy.allow_second_barge", False),
    )


def warn_unprotected(r: Reader, policy: PolicyConfig, teams: tuple[TeamConfig, ...]) -> None:
    """A protected extension nobody may barge anyway (no team has it as an agent): a typo?"""
    agents = {a for team in teams for a in team.agents}
    for i, ext in enumerate(policy.protected):
        if ext not in agents:
            r.warn(f"policy.protected[{i}]", f'"{ext}" is not an agent of any team: protecting it changes nothing')


def tones(r: Reader, doc: dict[str, Any]) -> TonesConfig:
    """``error`` and ``ended`` play in full before the supervisor is hung up, so they must end;
    the others are mixed in with uuid_displace, whose API splits its arguments on spaces."""
    t = r.section(doc, "tones", _TONES)
    default = TonesConfig()
    found: dict[str, str] = {}
    for name in _TONES:
        key = f"tones.{name}"
        value = found[name] = r.text(t, name, key, getattr(default, name))
        if name in _ENDING_TONES and _ENDLESS.search(value):
            r.fail(key, f"must end (it plays in full before the hang-up), got {show(value)}")
        if name not in _ENDING_TONES and any(ch.isspace() for ch in value):
            r.fail(key, f"must not contain spaces (FreeSWITCH's uuid_displace splits on them), got {show(value)}")
    return TonesConfig(**found)


def help_(r: Reader, doc: dict[str, Any]) -> HelpConfig:
    """``[help] ring_seconds``: 5 to 300."""
    t = r.section(doc, "help", ("ring_seconds",))
    if "ring_seconds" not in t:
        return HelpConfig()
    value = t["ring_seconds"]
    if not isinstance(value, int) or isinstance(value, bool) or not 5 <= value <= 300:
        r.fail("help.ring_seconds", f"must be a whole number of seconds from 5 to 300, got {show(value)}")
    return HelpConfig(ring_seconds=value)
