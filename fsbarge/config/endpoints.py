"""The sections naming what fsbarge connects to, listens on or writes: ``[[freeswitch]]`` nodes,
``[database]``, ``[journal]``, ``[metrics]`` and ``[[webhooks]]``, with their secrets (which no
message shows, whatever is wrong with them)."""

from __future__ import annotations

import re
from typing import Any

from fsbarge.paths import default_journal_path
from fsbarge.core.terms import WEBHOOK_EVENTS
from fsbarge.config.checks import CONTROL, Reader
from fsbarge.config.errors import show
from fsbarge.config.model import (
    DEFAULT_DATABASE_URL,
    ENV_DATABASE_URL,
    ENV_ESL_PASSWORD,
    DatabaseConfig,
    JournalConfig,
    MetricsConfig,
    NodeConfig,
    WebhookConfig,
)

__all__ = ["database", "journal", "metrics", "nodes", "webhooks"]

_NODE_KEYS = (
    "name", "host", "port", "password", "connect_timeout", "command_timeout", "idle_timeout", "sip_address", "sip_profile",
)
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# host[:port]: a name or IPv4 address, or [IPv6]; what goes after the @ of a sofia dial string
_SIP_ADDRESS = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")
_SIP_PROFILE = re.compile(r"[A-Za-z0-9_.-]+")
_WEBHOOK_KEYS = ("url", "secret", "secret_env", "events", "timeout")


def nodes(r: Reader, doc: dict[str, Any]) -> tuple[NodeConfig, ...]:
    """At least one node, each with a distinct name and a distinct host:port."""
    if "freeswitch" not in doc:
        r.fail("freeswitch", "missing: define at least one [[freeswitch]] node")
    raw = r.tables(doc["freeswitch"], "freeswitch")
    if not raw:
        r.fail("freeswitch", "no nodes: define at least one [[freeswitch]] node")
    env_password = r.env.get(ENV_ESL_PASSWORD) or None
    found: list[NodeConfig] = []
    names: dict[str, int] = {}
    addresses: dict[tuple[str, int], int] = {}
    for i, item in enumerate(raw):
        key = f"freeswitch[{i}]"
        t = r.table(item, key, _NODE_KEYS, "[[freeswitch]]")
        name = r.text(t, "name", f"{key}.name")
        if not _NODE_NAME.fullmatch(name):
            r.fail(f"{key}.name", f"must be letters, digits, '.', '_' or '-', got {show(name)}")
        if name in names:
            r.fail(f"{key}.name", f'duplicate node name "{name}" (also freeswitch[{names[name]}])')
        names[name] = i
        host = r.text(t, "host", f"{key}.host")
        if any(c.isspace() for c in host):
            r.fail(f"{key}.host", f"must be a host name or IP address, got {show(host)}")
        port = t.get("port", 8021)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            r.fail(f"{key}.port", f"must be an integer 1-65535, got {show(port)}")
        if (host, port) in addresses:
            r.fail(f"{key}.host", f"{host}:{port} is already node freeswitch[{addresses[host, port]}]")
        addresses[host, port] = i
        password = _password(r, t, f"{key}.password", env_password)
        sip_address = None
        if "sip_address" in t:
            sip_address = r.text(t, "sip_address", f"{key}.sip_address")
            m = _SIP_ADDRESS.fullmatch(sip_address)
            if m is None or (m["port"] is not None and not 1 <= int(m["port"]) <= 65535):
                r.fail(f"{key}.sip_address", f'must be "host" or "host:port" (e.g. "10.0.0.12:5080"), got {show(sip_address)}')
        sip_profile = r.text(t, "sip_profile", f"{key}.sip_profile", "external")
        if not _SIP_PROFILE.fullmatch(sip_profile):
            r.fail(f"{key}.sip_profile", f"must be a sofia profile name, got {show(sip_profile)}")
        found.append(NodeConfig(
            name=name, host=host, port=port, password=password,
            connect_timeout=r.seconds(t, "connect_timeout", f"{key}.connect_timeout", 5.0),
            command_timeout=r.seconds(t, "command_timeout", f"{key}.command_timeout", 5.0),
            idle_timeout=r.seconds(t, "idle_timeout", f"{key}.idle_timeout", 30.0),
            sip_address=sip_address, sip_profile=sip_profile,
        ))
    return tuple(found)


def _password(r: Reader, t: dict[str, Any], key: str, env_password: str | None) -> str:
    """The node's, or ``$FSBARGE_ESL_PASSWORD`` which overrides every node's."""
    in_file = None
    if "password" in t:
        in_file = r.string(t["password"], key, secret=True)
    if env_password is not None:
        if CONTROL.search(env_password):
            r.fail(ENV_ESL_PASSWORD, "must not contain line breaks or control characters")
        return env_password
    if in_file is None:
        r.fail(key, f"missing: set password or {ENV_ESL_PASSWORD}")
    if not in_file:
        r.fail(key, f"must not be empty: set password or {ENV_ESL_PASSWORD}")
    if CONTROL.search(in_file):
        r.fail(key, "must not contain line breaks or control characters")
    return in_file


def database(r: Reader, doc: dict[str, Any]) -> DatabaseConfig:
    """``[database]``; ``$FSBARGE_DATABASE_URL`` overrides its URL (the key named in a mistake is then the variable)."""
    t = r.section(doc, "database", ("url", "single_instance"))
    key = "database.url"
    url = r.string(t.get("url", DEFAULT_DATABASE_URL), key, secret=True).strip()
    if r.env.get(ENV_DATABASE_URL):
        key, url = ENV_DATABASE_URL, r.env[ENV_DATABASE_URL].strip()
    if "://" not in url or CONTROL.search(url):
        r.fail(key, f'must be an SQLAlchemy URL like "{DEFAULT_DATABASE_URL}"')
    single = r.boolean(t, "single_instance", "database.single_instance", False)
    return DatabaseConfig(url=url, single_instance=single)


def journal(r: Reader, doc: dict[str, Any], database: DatabaseConfig) -> JournalConfig:
    """``[journal]``; by default beside a SQLite database file."""
    t = r.section(doc, "journal", ("path",))
    return JournalConfig(path=r.text(t, "path", "journal.path", default_journal_path(database.url)))


def metrics(r: Reader, doc: dict[str, Any]) -> MetricsConfig:
    """``[metrics] listen = "HOST:PORT"``; a warning when anyone beyond this host may scrape it."""
    t = r.section(doc, "metrics", ("listen",))
    if "listen" not in t:
        return MetricsConfig()
    value = t["listen"]
    host, sep, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    host = host.strip("[]")  # [::1]:9464
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or CONTROL.search(host):
        r.fail("metrics.listen", f'must be "HOST:PORT" such as "127.0.0.1:9464", got {show(value)}')
    if not _loopback(host):
        r.warn("metrics.listen", f"{host} is not a loopback address: anyone who can reach port {port} reads the metrics "
               "(no authentication); keep it behind a firewall")
    return MetricsConfig(listen=(host, int(port)))


def _loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost (a name that resolves elsewhere is not counted as loopback)."""
    if host == "localhost":
        return True
    import ipaddress  # only a [metrics] section needs it

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def webhooks(r: Reader, doc: dict[str, Any]) -> tuple[WebhookConfig, ...]:
    """``[[webhooks]]``, none by default; each URL once."""
    if "webhooks" not in doc:
        return ()
    from urllib.parse import urlsplit  # only webhooks need it

    found: list[WebhookConfig] = []
    urls: dict[str, int] = {}
    for i, item in enumerate(r.tables(doc["webhooks"], "webhooks")):
        key = f"webhooks[{i}]"
        t = r.table(item, key, _WEBHOOK_KEYS, "[[webhooks]]")
        url = r.text(t, "url", f"{key}.url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
            r.fail(f"{key}.url", f'must be an http:// or https:// URL like "https://crm.example.com/hooks/fsbarge", got {show(url)}')
        if url in urls:
            r.fail(f"{key}.url", f"{show(url)} is already webhooks[{urls[url]}]")
        urls[url] = i
        events = WEBHOOK_EVENTS
        if "events" in t:
            events = _events(r, t["events"], f"{key}.events")
        found.append(WebhookConfig(url=url, secret=_secret(r, t, key), events=events,
                                   timeout=r.seconds(t, "timeout", f"{key}.timeout", 10.0)))
    return tuple(found)


def _events(r: Reader, value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        listed = ", ".join(f'"{e}"' for e in WEBHOOK_EVENTS)
        r.fail(key, f"must be a non-empty array of events from {listed} (leave events out for all), got {show(value)}")
    return r.choices(value, key, WEBHOOK_EVENTS, "event")


def _secret(r: Reader, t: dict[str, Any], key: str) -> str:
    """``secret``, or ``secret_env``: the name of an environment variable holding it."""
    if ("secret" in t) == ("secret_env" in t):
        r.fail(f"{key}.secret", "set exactly one of secret or secret_env (the name of an environment variable holding it)")
    if "secret" in t:
        secret = r.string(t["secret"], f"{key}.secret", secret=True)
        where = f"{key}.secret"
    else:
        name = r.text(t, "secret_env", f"{key}.secret_env")
        secret = r.env.get(name) or ""
        where = f"{key}.secret_env"
        if not secret:
            r.fail(where, f"environment variable {name} is not set or empty")
    if len(secret) < 16:
        r.fail(where, "the secret must be at least 16 characters long")
    if CONTROL.search(secret):
        r.fail(where, "the secret must not contain line breaks or control characters")
    return secret
