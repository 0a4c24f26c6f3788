"""Checks of a valid configuration against this machine, before `run`, `check-config` and `db upgrade`.

The one check today: the directory of a SQLite database or of the audit journal must exist. A
typo in a path would otherwise create directories and an empty audit database (as root, when an
administrator runs `fsbarge db upgrade`) that nobody looks at. The exception is the documented
state directory, ``/var/lib/fsbarge``: systemd creates it (``StateDirectory=fsbarge``) before the
daemon starts, so it may be missing when `check-config` runs first (a note says so).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath

from fsbarge.config import ENV_DATABASE_URL, Config, ConfigError

__all__ = ["STATE_DIRECTORY", "database_problem", "check_paths", "directory_problem", "sqlite_path"]

STATE_DIRECTORY = "/var/lib/fsbarge"  # systemd/fsbarge.service: StateDirectory=fsbarge


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///`` URL (None for other databases and in-memory SQLite)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix):].split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file:") or "mode=memory" in url:
        return None
    return os.path.expanduser(path)


def directory_problem(path: str, what: str, *, isdir: Callable[[str], bool] = os.path.isdir) -> tuple[str, bool] | None:
    """(problem, fatal) when the directory of ``path`` (a ``what``: "database", "journal") is
    missing; not fatal for the state directory systemd creates. None when it exists."""
    directory = str(PurePosixPath(os.path.abspath(path)).parent)
    if isdir(directory):
        return None
    if directory == STATE_DIRECTORY:
        return f"{directory} does not exist yet: systemd creates it at the first start (StateDirectory=fsbarge)", False
    return (f"directory {directory} does not exist: create it (owned by the daemon's user), or fix the {what} path; "
            "fsbarge does not create it, so that a typo cannot start an empty audit"), True


def database_problem(url: str) -> tuple[str, bool] | None:
    """`directory_problem` of a SQLite database URL (None for other databases)."""
    path = sqlite_path(url)
    return directory_problem(path, "database") if path is not None else None


def check_paths(config: Config, env: Mapping[str, str] = os.environ) -> list[str]:
    """The database's and the journal's directories (see the module docstring): notes, or
    `ConfigError` for the first one missing."""
    notes: list[str] = []
    checks = [
        (ENV_DATABASE_URL if env.get(ENV_DATABASE_URL) else "database.url", database_problem(config.database.url)),
        ("journal.path", directory_problem(config.journal.path, "journal")),
    ]
    for key, found in checks:
        if found is None:
            continue
        problem, fatal = found
        if fatal:
            raise ConfigError(config.path, key, problem)
        if not any(n.endswith(problem) for n in notes):  # the journal beside the database: said once
            notes.append(f"{config.path}: {key}: {problem}")
    return notes
