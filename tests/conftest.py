"""Fixtures shared by several test modules."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from fsbarge import db


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per module, copied for each test (migrating is slow)."""
    path = tmp_path_factory.mktemp("template") / "fsbarge.db"
    eng = db.make_engine(f"sqlite:///{path}")
    db.upgrade(eng)
    eng.dispose()  # last connection closed: WAL checkpointed into the file
    return path


@pytest.fixture
def db_path(tmp_path: Path, migrated_template: Path) -> Path:
    path = tmp_path / "fsbarge.db"
    shutil.copy(migrated_template, path)
    return path


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    eng = db.make_engine(f"sqlite:///{db_path}")
    yield eng
    eng.dispose()
