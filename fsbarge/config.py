"""The daemon's configuration: one TOML file, validated into frozen dataclasses.

Where the file is: ``--config PATH``, else ``$FSBARGE_CONFIG``, else
``/etc/fsbarge/fsbarge.toml`` (`resolve_config_path`).

Secrets from the environment (so that a systemd ``EnvironmentFile`` can hold them):

- ``FSBARGE_ESL_PASSWORD`` overrides every ``[[freeswitch]]`` node's ``password``; the key may then be
  left out of the file.
- ``FSBARGE_DATABASE_URL`` overrides ``[database] url`` (for a PostgreSQL URL carrying a password).

An empty environment variable counts as unset.

Every problem is reported as a `ConfigError` whose ``str()`` is one line, ``<file>: <key>: <problem>``,
e.g. ``/etc/fsbarge/fsbarge.toml: freeswitch[1].port: must be an integer 1-65535, got "80x"``. Keys are
written as paths into the document (``teams[0].agents[2]``, indexes from 0). Only the first problem is
reported. A password is never shown: not in an error, not in a ``repr``.

This module only reads the file; `parse_config` is pure.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlsplit

from .paths import (  # noqa: F401 - DEFAULT_CONFIG_PATH, ENV_CONFIG, resolve_config_path: re-exported
    DEFAULT_CONFIG_PATH,
    DEFAULT_DATABASE_URL,
    DEFAULT_JOURNAL_PATH,
    ENV_CONFIG,
    default_journal_path,
    resolve_config_path,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_DATABASE_URL",
    "ENV_CONFIG",
    "ENV_DATABASE_URL",
    "ENV_ESL_PASSWORD",
    "LOG_LEVELS",
    "MODES",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "MetricsConfig",
    "Mode",
    "NodeConfig",
    "PolicyConfig",
    "TeamConfig",
    "TonesConfig",
    "WebhookConfig",
    "load_config",
    "load_database_url",
    "load_teams",
    "parse_config",
    "resolve_config_path",
]

# Every mode a supervisor can be in: the three a feature code starts, plus
# customer_whisper, reachable only with DTMF key 1. A team without it in `modes`
# has key 1 undone by the daemon. Default: all of them.
from .terms import MODES, WEBHOOK_EVENTS, Mode  # noqa: E402 - the vocabulary, spelled once
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")

ENV_ESL_PASSWORD = "FSBARGE_ESL_PASSWORD"
ENV_DATABASE_URL = "FSBARGE_DATABASE_URL"

# A secret shorter than this is not scrubbed out of error text (it would mangle "freeswitch[1]" etc.);
# the password field itself is never echoed whatever its length.
_MIN_SCRUB_LEN = 4


# --------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class NodeConfig:
    """One FreeSWITCH node reached over the inbound Event Socket."""

    name: str
    host: str
    port: int = 8021
    password: str = field(repr=False, kw_only=True)
    connect_timeout: float = 5.0
    command_timeout: float = 5.0
    # Nothing read for this long (FreeSWITCH sends HEARTBEAT every 20 s): probe with `api status`,
    # and reconnect if that gets no reply within command_timeout (fsbarge.esl).
    idle_timeout: float = 30.0
    # Cross-node barge: where the other nodes send a supervisor's call for an agent on this node
    # ("host" or "host:port" of a SIP profile whose context holds the fsbarge_node drop-in; None:
    # no barging across nodes onto this node), and this node's profile for such calls it sends.
    sip_address: str | None = None
    sip_profile: str = "external"


@dataclass(frozen=True)
class DatabaseConfig:
    """Any SQLAlchemy URL; SQLite by default."""

    url: str = DEFAULT_DATABASE_URL
    #: PostgreSQL: this is the only instance on the database, so it serves its nodes without
    #: waiting for node locks (also while the database is down at start); see README "Running several nodes"
    single_instance: bool = False

    def __repr__(self) -> str:  # the URL may carry a password (postgresql://user:pw@host/db)
        return f"DatabaseConfig(url={_mask_url(self.url)!r}, single_instance={self.single_instance})"

    @property
    def password(self) -> str | None:
        """The password inside the URL, if any."""
        return _url_password(self.url)




@dataclass(frozen=True)
class JournalConfig:
    """Where every audit change is fsync'd before FreeSWITCH is told anything (fsbarge.journal)."""

    path: str = DEFAULT_JOURNAL_PATH


@dataclass(frozen=True)
class TeamConfig:
    """Supervisors may eavesdrop on the team's agents, starting in one of ``modes``."""

    name: str
    agents: tuple[str, ...]
    supervisors: tuple[str, ...]
    modes: tuple[Mode, ...] = MODES
    # Soft entry: on entering these modes the agent / the customer hears [tones] notify first.
    notify_agent: tuple[Mode, ...] = ("whisper", "barge")
    notify_customer: tuple[Mode, ...] = ("barge", "customer_whisper")


@dataclass(frozen=True)
class PolicyConfig:
    protect_supervisors: bool = True  # nobody barges a supervisor...
    protected: tuple[str, ...] = ()  # ...nor these extensions
    allow_second_barge: bool = False  # may a supervisor barge an agent another supervisor is barging now?


@dataclass(frozen=True)
class TonesConfig:
    """What the supervisor hears (``playback``) on a refusal and when the agent's call ends."""

    error: str = "tone_stream://%(200,100,480,620);loops=3"
    ended: str = "tone_stream://%(300,100,440);loops=2"
    # Mixed into the agent's / customer's audio when a supervisor joins them (no spaces: the
    # uuid_displace API splits its arguments on them). About -13 dBFS, under the call's voices.
    notify: str = "tone_stream://v=-13;%(150,100,1400);loops=2"
    # What the agent hears when their help request (*9) is answered / when nobody answers.
    help_answered: str = "tone_stream://v=-13;%(100,50,1200,1600);loops=2"
    help_unanswered: str = "tone_stream://v=-13;%(400,0,600)"


@dataclass(frozen=True)
class HelpConfig:
    """``[help]``: how long a help request rings the supervisors."""

    ring_seconds: int = 30


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics] listen = "127.0.0.1:9464"``: where Prometheus scrapes fsbarge (off when None)."""

    listen: tuple[str, int] | None = None


@dataclass(frozen=True)
class WebhookConfig:
    """``[[webhooks]]``: a receiver (CRM, ticketing) POSTed every subscribed audit event (fsbarge.webhooks).

    The secret signs each body (HMAC-SHA256); it is never shown, logged nor stored in the database."""

    url: str
    secret: str = field(repr=False, kw_only=True)
    events: tuple[str, ...] = WEBHOOK_EVENTS
    timeout: float = 10.0


@dataclass(frozen=True)
class Config:
    path: str
    nodes: tuple[NodeConfig, ...]
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    teams: tuple[TeamConfig, ...] = ()
    journal: JournalConfig = field(default_factory=JournalConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    tones: TonesConfig = field(default_factory=TonesConfig)
    help: HelpConfig = field(default_factory=HelpConfig)
    log_level: str = "info"
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    webhooks: tuple[WebhookConfig, ...] = ()
    # Valid but probably not what was meant (a team nobody supervises, ...): one line each,
    # "<file>: <key>: <problem>"; `check-config` prints them and `run` logs them at start.
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def teams_supervised_by(self, ext: str) -> tuple[TeamConfig, ...]:
        """The teams in which ``ext`` is a supervisor, in file order."""
        return tuple(team for team in self.teams if ext in team.supervisors)

    def is_supervisor(self, ext: str) -> bool:
        """Whether ``ext`` supervises any team."""
        return any(ext in team.supervisors for team in self.teams)

    def all_passwords(self) -> set[str]:
        """Every secret in the configuration (ESL passwords, database password), for log redaction."""
        secrets = {node.password for node in self.nodes if node.password}
        db_password = self.database.password
        if db_password:
            secrets.add(db_password)
        secrets.update(w.secret for w in self.webhooks)
        return secrets


class ConfigError(Exception):
    """An unusable configuration. ``str()`` is one line: ``<file>: <key>: <problem>``."""

    def __init__(self, path: str, key: str | None, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        super().__init__(f"{path}: {key}: {problem}" if key else f"{path}: {problem}")


# ------------------------------------------------------------------------------------------ loading


def load_config(path: str, env: Mapping[str, str] = os.environ) -> Config:
    """Read and validate the file at ``path``; raise `ConfigError` on any problem."""
    return parse_config(_read(path), path, env)


def load_database_url(path: str, env: Mapping[str, str] = os.environ) -> str:
    """Only ``[database] url`` (or ``$FSBARGE_DATABASE_URL``) of the file at ``path``.

    Read commands and `db upgrade` need nothing else: a QA analyst's environment has no ESL
    password, and a node or team mistake is for `run` and `check-config` to report."""
    doc = _toml(_read(path), path)
    return _partial(doc, path, env, lambda parser: parser.database(doc)).url


def load_teams(path: str, env: Mapping[str, str] = os.environ) -> tuple[TeamConfig, ...]:
    """Only the ``[[teams]]`` of the file at ``path`` (`audit stats --by team`, `report`)."""
    doc = _toml(_read(path), path)
    return _partial(doc, path, env, lambda parser: parser.teams(doc))


def _partial(doc: dict[str, Any], path: str, env: Mapping[str, str], part: Any) -> Any:
    """``part(parser)``; even a password typed into the wrong key is never echoed in its error."""
    try:
        return part(_Parser(path, env))
    except ConfigError as e:
        scrubbed = _scrub(e.problem, _secrets_in(doc, env))
        if scrubbed != e.problem:
            raise ConfigError(e.path, e.key, scrubbed) from None
        raise


def _read(path: str) -> str:
    """The file's text; `ConfigError` when it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found") from None
    except IsADirectoryError:
        raise ConfigError(path, None, "is a directory, not a file") from None
    except PermissionError:
        raise ConfigError(path, None, "permission denied (cannot read the file)") from None
    except OSError as e:
        raise ConfigError(path, None, f"cannot read the file: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(path, f"line {line}", "not valid UTF-8") from None
    return text


_TOML_POS = re.compile(r"^(?P<msg>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)$", re.S)


def parse_config(text: str, path: str, env: Mapping[str, str]) -> Config:
    """Validate TOML ``text`` (read from ``path``, which is only used in messages) into a `Config`."""
    doc = _toml(text, path)
    return _partial(doc, path, env, lambda parser: parser.config(doc))


def _toml(text: str, path: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOML_POS.match(msg)
        if m:
            raise ConfigError(
                path, f"line {m['line']}, column {m['col']}", f"invalid TOML: {m['msg']}"
            ) from None
        raise ConfigError(path, None, f"invalid TOML: {msg}") from None


# ------------------------------------------------------------------------------------------ parsing

_EXTENSION = re.compile(r"[0-9]+")
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENDLESS = re.compile(r"loops=-|^local_stream://", re.I)  # a tone_stream looping for ever; music on hold

_TOP_KEYS = ("freeswitch", "database", "journal", "teams", "policy", "tones", "log", "metrics", "help", "webhooks")
_WEBHOOK_KEYS = ("url", "secret", "secret_env", "events", "timeout")
_METRICS_KEYS = ("listen",)
_JOURNAL_KEYS = ("path",)
_NODE_KEYS = (
    "name", "host", "port", "password", "connect_timeout", "command_timeout", "idle_timeout", "sip_address", "sip_profile",
)
# host[:port]: a name or IPv4 address, or [IPv6]; what goes after the @ of a sofia dial string
_SIP_ADDRESS = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")
_SIP_PROFILE = re.compile(r"[A-Za-z0-9_.-]+")
_DATABASE_KEYS = ("url", "single_instance")
_TEAM_KEYS = ("name", "agents", "supervisors", "modes", "notify_agent", "notify_customer")
_POLICY_KEYS = ("protect_supervisors", "protected", "allow_second_barge")
_TONES_KEYS = ("error", "ended", "notify", "help_answered", "help_unanswered")
_HELP_KEYS = ("ring_seconds",)
_LOG_KEYS = ("level",)
_LOG_ALIASES = {"warn": "warning", "fatal": "critical"}


class _Parser:
    def __init__(self, path: str, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.warnings: list[str] = []

    def fail(self, key: str, problem: str) -> NoReturn:
        raise ConfigError(self.path, key, problem)

    def warn(self, key: str, problem: str) -> None:
        self.warnings.append(str(ConfigError(self.path, key, problem)))

    # -- generic checks

    def table(self, value: Any, key: str, allowed: tuple[str, ...], header: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(key, f"must be a table ({header}), got {_show(value)}")
        for k in value:
            if k not in allowed:
                where = f"{key}.{k}" if key else k
                hint = difflib.get_close_matches(k, allowed, n=1, cutoff=0.6)
                self.fail(where, "unknown key" + (f' (did you mean "{hint[0]}"?)' if hint else ""))
        return value

    def tables(self, value: Any, key: str) -> list[Any]:
        if isinstance(value, dict):
            self.fail(key, f"must be an array of tables: write [[{key}]], not [{key}]")
        if not isinstance(value, list):
            self.fail(key, f"must be an array of tables ([[{key}]]), got {_show(value)}")
        return value

    def string(self, value: Any, key: str, *, secret: bool = False) -> str:
        if not isinstance(value, str):
            self.fail(key, "must be a string" if secret else f"must be a string, got {_show(value)}")
        return value

    def text(self, table: dict[str, Any], name: str, key: str, default: str | None = None) -> str:
        """A required (when ``default`` is None) non-empty one-line string."""
        if name not in table:
            if default is None:
                self.fail(key, "missing")
            return default
        value = self.string(table[name], key).strip()
        if not value:
            self.fail(key, "must not be empty")
        if _CONTROL.search(value):
            self.fail(key, "must not contain line breaks or control characters")
        return value

    def boolean(self, table: dict[str, Any], name: str, key: str, default: bool) -> bool:
        value = table.get(name, default)
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {_show(value)}")
        return value

    def seconds(self, table: dict[str, Any], name: str, key: str, default: float) -> float:
        value = table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
            self.fail(key, f"must be a number of seconds greater than 0 (at most 3600), got {_show(value)}")
        return float(value)

    def extensions(self, table: dict[str, Any], name: str, key: str, *, required: bool) -> tuple[str, ...]:
        if name not in table:
            if required:
                self.fail(key, 'missing (a list of extensions like ["1000", "1001"])')
            return ()
        value = table[name]
        if not isinstance(value, list):
            self.fail(key, f'must be an array of extensions like ["1000", "1001"], got {_show(value)}')
        seen: set[str] = set()
        for i, ext in enumerate(value):
            if not isinstance(ext, str) or not _EXTENSION.fullmatch(ext):
                self.fail(f"{key}[{i}]", f'must be a string of digits like "1000", got {_show(ext)}')
            if ext in seen:
                self.fail(f"{key}[{i}]", f'"{ext}" is listed twice')
            seen.add(ext)
        return tuple(value)

    # -- sections

    def config(self, doc: dict[str, Any]) -> Config:
        self.table(doc, "", _TOP_KEYS, "the document")
        nodes = self.nodes(doc)
        database = self.database(doc)
        journal = self.journal(doc, database)
        teams = self.teams(doc)
        policy = self.policy(doc)
        tones = self.tones(doc)
        help_config = self.help(doc)
        log_level = self.log_level(doc)
        metrics = self.metrics(doc)
        webhooks = self.webhooks(doc)
        self.warn_unprotected(policy, teams)
        return Config(
            path=self.path,
            nodes=nodes,
            database=database,
            journal=journal,
            teams=teams,
            policy=policy,
            tones=tones,
            help=help_config,
            log_level=log_level,
            metrics=metrics,
            webhooks=webhooks,
            warnings=tuple(self.warnings),
        )

    def nodes(self, doc: dict[str, Any]) -> tuple[NodeConfig, ...]:
        if "freeswitch" not in doc:
            self.fail("freeswitch", "missing: define at least one [[freeswitch]] node")
        raw = self.tables(doc["freeswitch"], "freeswitch")
        if not raw:
            self.fail("freeswitch", "no nodes: define at least one [[freeswitch]] node")
        env_password = self.env.get(ENV_ESL_PASSWORD) or None
        nodes: list[NodeConfig] = []
        names: dict[str, int] = {}
        addresses: dict[tuple[str, int], int] = {}
        for i, item in enumerate(raw):
            key = f"freeswitch[{i}]"
            t = self.table(item, key, _NODE_KEYS, "[[freeswitch]]")
            name = self.text(t, "name", f"{key}.name")
            if not _NODE_NAME.fullmatch(name):
                self.fail(f"{key}.name", f"must be letters, digits, '.', '_' or '-', got {_show(name)}")
            if name in names:
                self.fail(f"{key}.name", f'duplicate node name "{name}" (also freeswitch[{names[name]}])')
            names[name] = i
            host = self.text(t, "host", f"{key}.host")
            if any(c.isspace() for c in host):
                self.fail(f"{key}.host", f"must be a host name or IP address, got {_show(host)}")
            port = t.get("port", 8021)
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                self.fail(f"{key}.port", f"must be an integer 1-65535, got {_show(port)}")
            if (host, port) in addresses:
                self.fail(
                    f"{key}.host",
                    f"{host}:{port} is already node freeswitch[{addresses[host, port]}]",
                )
            addresses[host, port] = i
            password = self.password(t, f"{key}.password", env_password)
            sip_address = None
            if "sip_address" in t:
                sip_address = self.text(t, "sip_address", f"{key}.sip_address")
                m = _SIP_ADDRESS.fullmatch(sip_address)
                if m is None or (m["port"] is not None and not 1 <= int(m["port"]) <= 65535):
                    self.fail(f"{key}.sip_address", f'must be "host" or "host:port" (e.g. "10.0.0.12:5080"), got {_show(sip_address)}')
            sip_profile = self.text(t, "sip_profile", f"{key}.sip_profile", "external")
            if not _SIP_PROFILE.fullmatch(sip_profile):
                self.fail(f"{key}.sip_profile", f"must be a sofia profile name, got {_show(sip_profile)}")
            nodes.append(
                NodeConfig(
                    name=name,
                    host=host,
                    port=port,
                    password=password,
                    connect_timeout=self.seconds(t, "connect_timeout", f"{key}.connect_timeout", 5.0),
                    command_timeout=self.seconds(t, "command_timeout", f"{key}.command_timeout", 5.0),
                    idle_timeout=self.seconds(t, "idle_timeout", f"{key}.idle_timeout", 30.0),
                    sip_address=sip_address,
                    sip_profile=sip_profile,
                )
            )
        return tuple(nodes)

    def password(self, t: dict[str, Any], key: str, env_password: str | None) -> str:
        # Never show the value, whatever is wrong with it.
        in_file = None
        if "password" in t:
            in_file = self.string(t["password"], key, secret=True)
        if env_password is not None:
            if _CONTROL.search(env_password):
                self.fail(ENV_ESL_PASSWORD, "must not contain line breaks or control characters")
            return env_password
        if in_file is None:
            self.fail(key, f"missing: set password or {ENV_ESL_PASSWORD}")
        if not in_file:
            self.fail(key, f"must not be empty: set password or {ENV_ESL_PASSWORD}")
        if _CONTROL.search(in_file):
            self.fail(key, "must not contain line breaks or control characters")
        return in_file

    def database(self, doc: dict[str, Any]) -> DatabaseConfig:
        t = self.table(doc.get("database", {}), "database", _DATABASE_KEYS, "[database]")
        key = "database.url"
        url = self.string(t.get("url", DEFAULT_DATABASE_URL), key, secret=True).strip()
        if self.env.get(ENV_DATABASE_URL):
            key, url = ENV_DATABASE_URL, self.env[ENV_DATABASE_URL].strip()
        if "://" not in url or _CONTROL.search(url):
            self.fail(key, f'must be an SQLAlchemy URL like "{DEFAULT_DATABASE_URL}"')
        single = self.boolean(t, "single_instance", "database.single_instance", False)
        return DatabaseConfig(url=url, single_instance=single)

    def journal(self, doc: dict[str, Any], database: DatabaseConfig) -> JournalConfig:
        t = self.table(doc.get("journal", {}), "journal", _JOURNAL_KEYS, "[journal]")
        return JournalConfig(path=self.text(t, "path", "journal.path", default_journal_path(database.url)))

    def teams(self, doc: dict[str, Any]) -> tuple[TeamConfig, ...]:
        if "teams" not in doc:
            self.fail("teams", "missing: define at least one [[teams]] table, or nobody may eavesdrop")
        raw = self.tables(doc["teams"], "teams")
        if not raw:
            self.fail("teams", "no teams: define at least one [[teams]] table, or nobody may eavesdrop")
        teams: list[TeamConfig] = []
        names: dict[str, int] = {}
        for i, item in enumerate(raw):
            key = f"teams[{i}]"
            t = self.table(item, key, _TEAM_KEYS, "[[teams]]")
            name = self.text(t, "name", f"{key}.name")
            if name in names:
                self.fail(f"{key}.name", f'duplicate team name "{name}" (also teams[{names[name]}])')
            names[name] = i
            agents = self.extensions(t, "agents", f"{key}.agents", required=True)
            supervisors = self.extensions(t, "supervisors", f"{key}.supervisors", required=True)
            for j, ext in enumerate(supervisors):
                if ext in agents:
                    self.fail(
                        f"{key}.supervisors[{j}]",
                        f'"{ext}" is also an agent of team "{name}"; a person is one or the other in a team',
                    )
            if not supervisors:
                self.warn(f"{key}.supervisors", f'team "{name}" has no supervisors: nobody may listen to its agents, and their *9 rings nobody')
            if not agents:
                self.warn(f"{key}.agents", f'team "{name}" has no agents: its supervisors have nobody to listen to')
            default = TeamConfig(name, (), ())
            modes = self.modes(t, key)
            team = TeamConfig(
                name=name, agents=agents, supervisors=supervisors, modes=modes,
                notify_agent=self.notify_modes(t, key, "notify_agent", default.notify_agent),
                notify_customer=self.notify_modes(t, key, "notify_customer", default.notify_customer),
            )
            for notify in ("notify_agent", "notify_customer"):
                for j, mode in enumerate(getattr(team, notify) if notify in t else ()):  # the defaults fit any team
                    if mode not in modes:
                        self.warn(f"{key}.{notify}[{j}]", f'"{mode}" is not one of this team\'s modes: its tone never plays')
            teams.append(team)
        return tuple(teams)

    def warn_unprotected(self, policy: PolicyConfig, teams: tuple[TeamConfig, ...]) -> None:
        """A protected extension nobody may barge anyway (no team has it as an agent): a typo?"""
        agents = {a for team in teams for a in team.agents}
        for i, ext in enumerate(policy.protected):
            if ext not in agents:
                self.warn(f"policy.protected[{i}]", f'"{ext}" is not an agent of any team: protecting it changes nothing')

    def modes(self, t: dict[str, Any], team_key: str) -> tuple[Mode, ...]:
        return self.mode_list(t, team_key, "modes", MODES, empty="leave modes out to allow all")

    def notify_modes(self, t: dict[str, Any], team_key: str, name: str, default: tuple[Mode, ...]) -> tuple[Mode, ...]:
        return self.mode_list(t, team_key, name, default)

    def mode_list(
        self, t: dict[str, Any], team_key: str, name: str, default: tuple[Mode, ...], *, empty: str | None = None
    ) -> tuple[Mode, ...]:
        """A team's list of modes; ``empty``, if given, is why an empty list is refused."""
        key = f"{team_key}.{name}"
        if name not in t:
            return default
        value = t[name]
        allowed = ", ".join(f'"{m}"' for m in MODES)
        if not isinstance(value, list):
            self.fail(key, f"must be an array of modes from {allowed}, got {_show(value)}")
        if not value and empty is not None:
            self.fail(key, f"must list at least one of {allowed} ({empty})")
        modes: list[Mode] = []
        for i, mode in enumerate(value):
            if mode not in MODES:  # also rejects non-strings
                self.fail(f"{key}[{i}]", f"unknown mode {_show(mode)}; modes are {allowed}")
            if mode in modes:
                self.fail(f"{key}[{i}]", f'"{mode}" is listed twice')
            modes.append(mode)
        return tuple(modes)

    def policy(self, doc: dict[str, Any]) -> PolicyConfig:
        t = self.table(doc.get("policy", {}), "policy", _POLICY_KEYS, "[policy]")
        return PolicyConfig(
            protect_supervisors=self.boolean(t, "protect_supervisors", "policy.protect_supervisors", True),
            protected=self.extensions(t, "protected", "policy.protected", required=False),
            allow_second_barge=self.boolean(t, "allow_second_barge", "policy.allow_second_barge", False),
        )

    def tones(self, doc: dict[str, Any]) -> TonesConfig:
        t = self.table(doc.get("tones", {}), "tones", _TONES_KEYS, "[tones]")
        default = TonesConfig()
        return TonesConfig(
            error=self.ending_tone(t, "error", "tones.error", default.error),
            ended=self.ending_tone(t, "ended", "tones.ended", default.ended),
            notify=self.tone(t, "notify", "tones.notify", default.notify),
            help_answered=self.tone(t, "help_answered", "tones.help_answered", default.help_answered),
            help_unanswered=self.tone(t, "help_unanswered", "tones.help_unanswered", default.help_unanswered),
        )

    def help(self, doc: dict[str, Any]) -> HelpConfig:
        t = self.table(doc.get("help", {}), "help", _HELP_KEYS, "[help]")
        if "ring_seconds" not in t:
            return HelpConfig()
        value = t["ring_seconds"]
        if not isinstance(value, int) or isinstance(value, bool) or not 5 <= value <= 300:
            self.fail("help.ring_seconds", f"must be a whole number of seconds from 5 to 300, got {_show(value)}")
        return HelpConfig(ring_seconds=value)

    def ending_tone(self, t: dict[str, Any], name: str, key: str, default: str) -> str:
        """A tone played in full before the supervisor is hung up: one that never ends would keep
        the call up (tone_stream's ``loops=-1``, a ``local_stream://``)."""
        value = self.text(t, name, key, default)
        if _ENDLESS.search(value):
            self.fail(key, f"must end (it plays in full before the hang-up), got {_show(value)}")
        return value

    def tone(self, t: dict[str, Any], name: str, key: str, default: str) -> str:
        """A tone played with uuid_displace, whose API splits its arguments on spaces."""
        value = self.text(t, name, key, default)
        if any(ch.isspace() for ch in value):
            self.fail(key, f"must not contain spaces (FreeSWITCH's uuid_displace splits on them), got {_show(value)}")
        return value

    def metrics(self, doc: dict[str, Any]) -> MetricsConfig:
        t = self.table(doc.get("metrics", {}), "metrics", _METRICS_KEYS, "[metrics]")
        if "listen" not in t:
            return MetricsConfig()
        value = t["listen"]
        host, sep, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
        host = host.strip("[]")  # [::1]:9464
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or _CONTROL.search(host):
            self.fail("metrics.listen", f'must be "HOST:PORT" such as "127.0.0.1:9464", got {_show(value)}')
        if not _loopback(host):
            self.warn("metrics.listen", f"{host} is not a loopback address: anyone who can reach port {port} reads the metrics "
                      "(no authentication); keep it behind a firewall")
        return MetricsConfig(listen=(host, int(port)))

    def webhooks(self, doc: dict[str, Any]) -> tuple[WebhookConfig, ...]:
        if "webhooks" not in doc:
            return ()
        out: list[WebhookConfig] = []
        urls: dict[str, int] = {}
        for i, item in enumerate(self.tables(doc["webhooks"], "webhooks")):
            key = f"webhooks[{i}]"
            t = self.table(item, key, _WEBHOOK_KEYS, "[[webhooks]]")
            url = self.text(t, "url", f"{key}.url")
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
                self.fail(f"{key}.url", f'must be an http:// or https:// URL like "https://crm.example.com/hooks/fsbarge", got {_show(url)}')
            if url in urls:
                self.fail(f"{key}.url", f"{_show(url)} is already webhooks[{urls[url]}]")
            urls[url] = i
            events = WEBHOOK_EVENTS
            if "events" in t:
                events = self.webhook_events(t["events"], f"{key}.events")
            out.append(WebhookConfig(url=url, secret=self.webhook_secret(t, key), events=events,
                                     timeout=self.seconds(t, "timeout", f"{key}.timeout", 10.0)))
        return tuple(out)

    def webhook_events(self, value: Any, key: str) -> tuple[str, ...]:
        allowed = ", ".join(f'"{e}"' for e in WEBHOOK_EVENTS)
        if not isinstance(value, list) or not value:
            self.fail(key, f"must be a non-empty array of events from {allowed} (leave events out for all), got {_show(value)}")
        for j, event in enumerate(value):
            if event not in WEBHOOK_EVENTS:
                self.fail(f"{key}[{j}]", f"unknown event {_show(event)}; events are {allowed}")
            if event in value[:j]:
                self.fail(f"{key}[{j}]", f'"{event}" is listed twice')
        return tuple(value)

    def webhook_secret(self, t: dict[str, Any], key: str) -> str:
        # Never show the value, whatever is wrong with it.
        if ("secret" in t) == ("secret_env" in t):
            self.fail(f"{key}.secret", "set exactly one of secret or secret_env (the name of an environment variable holding it)")
        if "secret" in t:
            secret = self.string(t["secret"], f"{key}.secret", secret=True)
            where = f"{key}.secret"
        else:
            name = self.text(t, "secret_env", f"{key}.secret_env")
            secret = self.env.get(name) or ""
            where = f"{key}.secret_env"
            if not secret:
                self.fail(where, f"environment variable {name} is not set or empty")
        if len(secret) < 16:
            self.fail(where, "the secret must be at least 16 characters long")
        if _CONTROL.search(secret):
            self.fail(where, "the secret must not contain line breaks or control characters")
        return secret

    def log_level(self, doc: dict[str, Any]) -> str:
        t = self.table(doc.get("log", {}), "log", _LOG_KEYS, "[log]")
        value = t.get("level", "info")
        level = value.strip().lower() if isinstance(value, str) else value
        level = _LOG_ALIASES.get(level, level) if isinstance(level, str) else level
        if level not in LOG_LEVELS:
            self.fail("log.level", f"must be one of {', '.join(LOG_LEVELS)}, got {_show(value)}")
        return level


# ------------------------------------------------------------------------------------------ helpers


def _show(value: Any) -> str:
    """A value as the TOML author wrote it, short, for 'got ...' in messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 40 else value[:37] + "...", ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"  # dates and times


def _loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost (a name that resolves elsewhere is not counted as loopback)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _mask_url(url: str) -> str:
    password = _url_password(url)
    if not password:
        return url
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***{at}{hostpart}"


def _secrets_in(doc: dict[str, Any], env: Mapping[str, str]) -> set[str]:
    """Every password-looking string in the raw document and the environment, valid or not."""
    found: set[str] = set()
    if env.get(ENV_ESL_PASSWORD):
        found.add(env[ENV_ESL_PASSWORD])
    nodes = doc.get("freeswitch")
    for node in nodes if isinstance(nodes, list) else ():
        if isinstance(node, dict) and isinstance(node.get("password"), str):
            found.add(node["password"])
    database = doc.get("database")
    if isinstance(database, dict) and isinstance(database.get("url"), str):
        found.add(_url_password(database["url"]) or "")
    if env.get(ENV_DATABASE_URL):
        found.add(_url_password(env[ENV_DATABASE_URL]) or "")
    hooks = doc.get("webhooks")
    for hook in hooks if isinstance(hooks, list) else ():
        if isinstance(hook, dict) and isinstance(hook.get("secret"), str):
            found.add(hook["secret"])
        if isinstance(hook, dict) and isinstance(hook.get("secret_env"), str):
            found.add(env.get(hook["secret_env"]) or "")
    return {s for s in found if len(s) >= _MIN_SCRUB_LEN}


def _scrub(text: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
