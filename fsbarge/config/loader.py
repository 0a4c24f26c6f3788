"""From a file to a `Config`: read it, decode the TOML, check the sections in a fixed order (the
first problem is the one reported), and scrub secrets out of that error. `parse_config` is pure;
the ``load_*`` functions only read the file."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fsbarge.config import endpoints, teams as people
from fsbarge.config.checks import Reader
from fsbarge.config.errors import ConfigError, scrub, secrets_in, show
from fsbarge.config.model import LOG_LEVELS, Config, TeamConfig

__all__ = ["load_config", "load_database_url", "load_teams", "parse_config"]

_T = TypeVar("_T")
_TOP_KEYS = ("freeswitch", "database", "journal", "teams", "policy", "tones", "log", "metrics", "help", "webhooks")
_LOG_ALIASES = {"warn": "warning", "fatal": "critical"}
_TOML_POS = re.compile(r"^(?P<msg>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)$", re.S)


def load_config(path: str, env: Mapping[str, str] = os.environ) -> Config:
    """Read and validate the file at ``path``; raise `ConfigError` on any problem."""
    return parse_config(_read(path), path, env)


def load_database_url(path: str, env: Mapping[str, str] = os.environ) -> str:
    """Only ``[database] url`` (or ``$FSBARGE_DATABASE_URL``) of the file at ``path``.

    Read commands and `db upgrade` need nothing else: a QA analyst's environment has no ESL
    password, and a node or team mistake is for `run` and `check-config` to report."""
    doc = _toml(_read(path), path)
    return _partial(doc, path, env, lambda r: endpoints.database(r, doc)).url


def load_teams(path: str, env: Mapping[str, str] = os.environ) -> tuple[TeamConfig, ...]:
    """Only the ``[[teams]]`` of the file at ``path`` (`audit stats --by team`, `report`)."""
    doc = _toml(_read(path), path)
    return _partial(doc, path, env, lambda r: people.teams(r, doc))


def parse_config(text: str, path: str, env: Mapping[str, str]) -> Config:
    """Validate TOML ``text`` (read from ``path``, which is only used in messages) into a `Config`."""
    doc = _toml(text, path)
    return _partial(doc, path, env, lambda r: _config(r, doc))


def _config(r: Reader, doc: dict[str, Any]) -> Config:
    """Every section, in this order: the first problem found is the one reported."""
    r.table(doc, "", _TOP_KEYS, "the document")
    nodes = endpoints.nodes(r, doc)
    database = endpoints.database(r, doc)
    journal = endpoints.journal(r, doc, database)
    teams = people.teams(r, doc)
    policy = people.policy(r, doc)
    tones = people.tones(r, doc)
    help_config = people.help_(r, doc)
    log_level = _log_level(r, doc)
    metrics = endpoints.metrics(r, doc)
    webhooks = endpoints.webhooks(r, doc)
    people.warn_unprotected(r, policy, teams)
    return Config(
        path=r.path, nodes=nodes, database=database, journal=journal, teams=teams, policy=policy, tones=tones,
        help=help_config, log_level=log_level, metrics=metrics, webhooks=webhooks, warnings=tuple(r.warnings),
    )


def _log_level(r: Reader, doc: dict[str, Any]) -> str:
    """``[log] level``, any case, with "warn" and "fatal" as the logging module's aliases."""
    t = r.section(doc, "log", ("level",))
    value = t.get("level", "info")
    level = value.strip().lower() if isinstance(value, str) else value
    level = _LOG_ALIASES.get(level, level) if isinstance(level, str) else level
    if level not in LOG_LEVELS:
        r.fail("log.level", f"must be one of {', '.join(LOG_LEVELS)}, got {show(value)}")
    return level


def _partial(doc: dict[str, Any], path: str, env: Mapping[str, str], part: Callable[[Reader], _T]) -> _T:
    """``part(reader)``; even a password typed into the wrong key is never echoed in its error."""
    try:
        return part(Reader(path, env))
    except ConfigError as e:
        scrubbed = scrub(e.problem, secrets_in(doc, env))
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
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(path, f"line {line}", "not valid UTF-8") from None


def _toml(text: str, path: str) -> dict[str, Any]:
    """The document; a TOML mistake names its line and column as the key."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOML_POS.match(msg)
        if m:
            raise ConfigError(path, f"line {m['line']}, column {m['col']}", f"invalid TOML: {m['msg']}") from None
        raise ConfigError(path, None, f"invalid TOML: {msg}") from None
