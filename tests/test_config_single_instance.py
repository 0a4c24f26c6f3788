"""`[database] single_instance`: an explicit, checked choice, off by default."""

from __future__ import annotations

import pytest

from fsbarge.config import ConfigError, parse_config

from .test_config import MINIMAL, PATH

PG = '[database]\nurl = "postgresql://fsbarge@db.example/fsbarge"\n'


def test_off_unless_said() -> None:
    assert parse_config(PG + MINIMAL, PATH, {}).database.single_instance is False
    config = parse_config(PG + "single_instance = true\n" + MINIMAL, PATH, {})
    assert config.database.single_instance is True
    assert "single_instance=True" in repr(config.database)


def test_a_wrong_type_is_one_line_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r'database\.single_instance: must be true or false, got "yes"'):
        parse_config(PG + 'single_instance = "yes"\n' + MINIMAL, PATH, {})
