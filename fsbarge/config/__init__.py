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

The package, by role: `model` (the frozen dataclasses), `loader` (file -> `Config`), the sections'
checks (`endpoints`, `teams`, built from `checks`), and `errors` (the one-line error, the wording
helpers, the scrubbing of secrets). Importers use the names below, from ``fsbarge.config``.
"""

from __future__ import annotations

from collections.abc import Mapping

from fsbarge.config.errors import ConfigError
from fsbarge.config.loader import load_config, load_database_url, load_teams, parse_config
from fsbarge.config.model import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_DATABASE_URL,
    ENV_CONFIG,
    ENV_DATABASE_URL,
    ENV_ESL_PASSWORD,
    LOG_LEVELS,
    MODES,
    Config,
    DatabaseConfig,
    HelpConfig,
    JournalConfig,
    MetricsConfig,
    Mode,
    NodeConfig,
    PolicyConfig,
    TeamConfig,
    TonesConfig,
    WebhookConfig,
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
    "HelpConfig",
    "JournalConfig",
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


def resolve_config_path(cli_path: str | None, env: Mapping[str, str]) -> str:
    """``--config``, else ``$FSBARGE_CONFIG``, else ``/etc/fsbarge/fsbarge.toml`` (empty counts as unset).

    Here rather than in `loader` so that the default is this package's ``DEFAULT_CONFIG_PATH``
    (tests point it elsewhere)."""
    from fsbarge.paths import resolve_config_path as resolve

    return resolve(cli_path, env, DEFAULT_CONFIG_PATH)
