"""Where the daemon keeps its local files: known to the daemon and to `fsbarge status` on its host.

Pure and standard library only: the read commands use it without the configuration module.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePath

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_JOURNAL_PATH",
    "ENV_CONFIG",
    "default_journal_path",
    "resolve_config_path",
    "status_file_path",
]

DEFAULT_CONFIG_PATH = "/etc/fsbarge/fsbarge.toml"
ENV_CONFIG = "FSBARGE_CONFIG"
DEFAULT_DATABASE_URL = "sqlite:////var/lib/fsbarge/fsbarge.db"
DEFAULT_JOURNAL_PATH = "/var/lib/fsbarge/journal"


def default_journal_path(database_url: str) -> str:
    """Beside a SQLite database file (``fsbarge.db`` -> ``fsbarge.journal``), else the state directory."""
    prefix = "sqlite:///"
    if database_url.startswith(prefix):
        db_file = database_url[len(prefix) :].split("?", 1)[0]
        if db_file and db_file != ":memory:" and not db_file.startswith("file:"):
            return str(PurePath(db_file).with_suffix(".journal"))
    return DEFAULT_JOURNAL_PATH


def status_file_path(journal_path: str | Path) -> Path:
    """Beside the journal (local disk, the daemon's state directory): ``journal`` -> ``journal.status``."""
    return Path(str(journal_path) + ".status")


def resolve_config_path(cli_path: str | None, env: Mapping[str, str], default: str = DEFAULT_CONFIG_PATH) -> str:
    """``--config``, else ``$FSBARGE_CONFIG``, else ``default`` (empty counts as unset); what
    fsbarge.config.resolve_config_path says, for the read commands that do not import it."""
    if cli_path:
        return cli_path
    return env.get(ENV_CONFIG) or default
