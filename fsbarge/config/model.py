"""The configuration as the rest of fsbarge sees it: frozen dataclasses, their defaults, and the
names of the file and the environment variables.

Nothing here reads or checks anything (`fsbarge.config.loader` does), so the core can type
against these classes, and the tests and the bench can build them, without a TOML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fsbarge.paths import DEFAULT_CONFIG_PATH, DEFAULT_DATABASE_URL, DEFAULT_JOURNAL_PATH, ENV_CONFIG  # the read commands need them without this package
from fsbarge.core.terms import BARGE, CUSTOMER_WHISPER, MODES, WEBHOOK_EVENTS, WHISPER, Mode

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_DATABASE_URL",
    "ENV_CONFIG",
    "ENV_DATABASE_URL",
    "ENV_ESL_PASSWORD",
    "LOG_LEVELS",
    "MODES",
    "Config",
    "DatabaseConfig",
    "HelpConfig",
    "JournalConfig",
    "MetricsConfig",
    "Mode",
    "NodeConfig",
    "PolicyConfig",
    "TeamConfig",
    "TonesConfig",
    "WebhookConfig",
    "mask_url",
    "url_password",
]

LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")

ENV_ESL_PASSWORD = "FSBARGE_ESL_PASSWORD"
ENV_DATABASE_URL = "FSBARGE_DATABASE_URL"


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
    # and reconnect if that gets no reply within command_timeout (fsbarge.daemon.esl).
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
        return f"DatabaseConfig(url={mask_url(self.url)!r}, single_instance={self.single_instance})"

    @property
    def password(self) -> str | None:
        """The password inside the URL, if any."""
        return url_password(self.url)


@dataclass(frozen=True)
class JournalConfig:
    """Where every audit change is fsync'd before FreeSWITCH is told anything (fsbarge.daemon.journal)."""

    path: str = DEFAULT_JOURNAL_PATH


@dataclass(frozen=True)
class TeamConfig:
    """Supervisors may eavesdrop on the team's agents, starting in one of ``modes``.

    A team without customer_whisper in ``modes`` has DTMF key 1 undone by the daemon."""

    name: str
    agents: tuple[str, ...]
    supervisors: tuple[str, ...]
    modes: tuple[Mode, ...] = MODES
    # Soft entry: on entering these modes the agent / the customer hears [tones] notify first.
    notify_agent: tuple[Mode, ...] = (WHISPER, BARGE)
    notify_customer: tuple[Mode, ...] = (BARGE, CUSTOMER_WHISPER)


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
    """``[[webhooks]]``: a receiver (CRM, ticketing) POSTed every subscribed audit event (fsbarge.daemon.webhooks).

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


def url_password(url: str) -> str | None:
    """The password of a database URL, None when it has none or does not parse."""
    from urllib.parse import urlsplit  # imported when needed: not on a read command's start-up path

    try:
        return urlsplit(url).password
    except ValueError:
        return None


def mask_url(url: str) -> str:
    """``url`` with its password, if any, shown as ``***`` (for a ``repr`` or a log line)."""
    password = url_password(url)
    if not password:
        return url
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***{at}{hostpart}"
