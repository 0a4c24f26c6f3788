"""fsbarge.read.quickconfig reads `[database] url` for the read commands without the configuration
module: for every file it either says exactly what fsbarge.config says, or leaves the file to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsbarge.read import quickconfig
from fsbarge.config import ConfigError, load_database_url

FILES = {
    "plain": '[database]\nurl = "sqlite:////var/lib/x/fsbarge.db"\n',
    "padded": '[database]\nurl = "  postgresql://u:p@h/db  "\nsingle_instance = true\n',
    "no database table": '[[teams]]\nname = "a"\n',
    "empty": "",
    "other tables are not its business": '[[freeswitch]]\nport = "x"\n[database]\nurl = "sqlite:///rel.db"\n',
    "typo": '[database]\nulr = "sqlite:///x.db"\n',
    "not a string": "[database]\nurl = 5\n",
    "no scheme": '[database]\nurl = "/var/lib/x.db"\n',
    "control character": '[database]\nurl = "sqlite:///x\\u0007.db"\n',
    "single_instance not a flag": '[database]\nurl = "sqlite:///x.db"\nsingle_instance = "yes"\n',
    "database not a table": 'database = "sqlite:///x.db"\n',
    "not toml": "[database\nurl = 1\n",
    "a BOM": '\ufeff[database]\nurl = "sqlite:///bom.db"\n',
}


@pytest.mark.parametrize("name", FILES)
def test_it_agrees_with_the_configuration_module_or_leaves_the_file_to_it(name: str, tmp_path: Path) -> None:
    path = tmp_path / "fsbarge.toml"
    path.write_text(FILES[name], encoding="utf-8")
    quick = quickconfig.database_url(str(path), {})
    try:
        full: str | None = load_database_url(str(path), {})
    except ConfigError:
        full = None
    if quick is not None:
        assert quick == full
    if name in ("plain", "padded", "no database table", "empty", "other tables are not its business"):
        assert quick is not None, "a plainly valid file is read without fsbarge.config"


def test_a_missing_file_and_the_environment_are_left_to_the_configuration_module(tmp_path: Path) -> None:
    assert quickconfig.database_url(str(tmp_path / "nope.toml"), {}) is None
    assert quickconfig.database_url(str(tmp_path), {}) is None
    path = tmp_path / "fsbarge.toml"
    path.write_text(FILES["plain"])
    assert quickconfig.database_url(str(path), {"FSBARGE_DATABASE_URL": "  "}) is None


JOURNALS = {
    "as written": lambda text: text,
    "beside the SQLite file by default": lambda text: text.replace("[journal]\npath", "[journal]\n# path"),
    "a server's by default": lambda text: text.replace('url = "sqlite', 'url = "postgresql://u@h/db" # ').replace("[journal]\npath", "#"),
    "padded": lambda text: text.replace('path = "', 'path = "  '),
    "empty": lambda text: text.replace("[journal]\npath = ", "[journal]\npath = \"\" #"),
    "a typo": lambda text: text.replace("[journal]\npath", "[journal]\npaht"),
}


@pytest.mark.parametrize("name", JOURNALS)
def test_the_journal_path_is_the_daemons_or_left_to_the_configuration_module(name: str, tmp_path: Path) -> None:
    """`fsbarge status` looks for the daemon's status file beside the journal the daemon uses."""
    from fsbarge.config import load_config
    from tests.e2e import write_config

    path = write_config(tmp_path, 8021)
    path.write_text(JOURNALS[name](path.read_text()))
    quick = quickconfig.journal_path(str(path), {})
    try:
        full: str | None = load_config(str(path), {}).journal.path
    except ConfigError:
        full = None
    assert quick == full
    assert (quick is None) == (name in ("empty", "a typo"))
