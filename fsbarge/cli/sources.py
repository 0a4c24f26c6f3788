"""Where a command's inputs come from: the database URL (--database, the environment, the
configuration's [database] url read without the configuration module when it plainly can be),
a read-only connection on it, the daemon's status file, the configuration itself."""

from __future__ import annotations

import argparse
import os
from typing import Any

ENV_DATABASE_URL = "FSBARGE_DATABASE_URL"
MAX_ID = 2**31 - 1  # the largest id an INTEGER column holds on every backend


def audit_filter(args: argparse.Namespace) -> Any:
    from fsbarge.read.queries import AuditFilter

    return AuditFilter(
        supervisor=args.supervisor,
        agent=args.agent,
        since=args.since,
        until=args.until,
        mode=args.mode,
        outcome=args.outcome,
        node=args.node,
    )


def configuration(args: argparse.Namespace) -> Any:
    from fsbarge.config import load_config, resolve_config_path

    return load_config(resolve_config_path(args.config, os.environ))


def url_of(args: argparse.Namespace) -> str:
    """--database, else $FSBARGE_DATABASE_URL, else the configuration's [database] url."""
    return source_of(args)[0]


def source_of(args: argparse.Namespace) -> tuple[str, str | None, str]:
    """(url, the configuration file it came from or None, the key that set it).

    From a configuration file only ``[database] url`` is read: the rest (nodes, teams, the ESL
    password) is for `run` and `check-config` to validate."""
    url = getattr(args, "database", None)
    if url:
        return url, None, "--database"
    url = os.environ.get(ENV_DATABASE_URL, "").strip()
    if url:
        return url, None, ENV_DATABASE_URL
    from fsbarge.paths import resolve_config_path
    from fsbarge.read.quickconfig import database_url

    path = resolve_config_path(args.config, os.environ)
    url = database_url(path, os.environ)  # a plainly valid file, read without the configuration module
    if url is not None:
        return url, path, "database.url"
    from fsbarge.config import ConfigError, load_database_url

    try:
        return load_database_url(path), path, "database.url"
    except ConfigError as exc:
        raise ConfigError(
            exc.path, exc.key, f"{exc.problem} (this command needs only --database URL or ${ENV_DATABASE_URL})"
        ) from None


def status_file_of(args: argparse.Namespace) -> Any:
    """The daemon's status file on this host (beside its journal), or None when it cannot be told
    where that is (a database URL alone names a SQLite file's journal; a server's is the default)."""
    from fsbarge.paths import default_journal_path, status_file_path

    url = getattr(args, "database", None) or os.environ.get(ENV_DATABASE_URL, "").strip()
    if not url:
        from fsbarge.paths import resolve_config_path
        from fsbarge.read.quickconfig import journal_path

        journal = journal_path(resolve_config_path(args.config, os.environ), os.environ)
        if journal is not None:  # a plainly valid [database] and [journal], read without the configuration module
            return status_file_path(journal)
        from fsbarge.config import ConfigError

        try:
            return status_file_path(configuration(args).journal.path)
        except ConfigError:
            return None
    return status_file_path(default_journal_path(url))


def reader_engine(args: argparse.Namespace) -> Any:
    """A read-only SQLAlchemy engine on what the daemon wrote (for the chain's checks, which read
    through the store); refuses a database that was never created."""
    from fsbarge.store.readers import open_reader

    return open_reader(url_of(args))


def reading(args: argparse.Namespace) -> Any:
    """A read-only connection (fsbarge.read.sqlread: plain SQL, no SQLAlchemy) on what the daemon
    wrote, for one command's queries; refuses a database that was never created."""
    from fsbarge.read.sqlread import open_read

    return open_read(url_of(args))
