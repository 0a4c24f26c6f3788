"""The import arrows point inward: a pure core, IO at the edges (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "fsbarge"

# module -> the fsbarge modules it may import (stdlib always allowed unless listed in NO_THIRD_PARTY)
CORE = {
    "wire": set(),
    "events": {"wire"},
    "channels": {"events", "wire"},
    "terms": set(),
    "paths": set(),
    "config": {"terms", "paths"},
    "policy": {"config", "terms"},
    "barge": {"events", "policy", "channels", "terms", "crossnode"},
    "crossnode": set(),
    "help": {"barge", "channels", "events", "policy"},
    "commands": {"barge", "help"},
    "resync": {"barge", "events", "terms"},
    "chain": set(),
    "humantime": set(),
    "counts": set(),
}
# the read side (queries, sqlread) is plain SQL: SQLAlchemy and Alembic belong to the daemon and `db upgrade`
ONLY_IN = {
    "greenswitch": set(),
    "sqlalchemy": {"db", "models", "store", "tickets"},
    "alembic": {"db"},
    "psycopg": {"db", "sqlread"},
}
# The read queries return stored rows; the views (auditview, helpview) make records of them at the
# edge (fsbarge.records), so a query never depends on how a record looks.
ROWS_ONLY = {"queries": {"sqlread"}, "sqlread": {"dberrors", "db"}, "dberrors": set()}


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """(fsbarge modules, top-level third-party/stdlib packages) imported by a file."""
    tree = ast.parse(path.read_text())
    local, external = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y / from . import x
                if node.module:
                    local.add(node.module.split(".")[0])
                else:
                    local.update(a.name for a in node.names)
            elif node.module and node.module.split(".")[0] == "fsbarge":
                parts = node.module.split(".")
                local.add(parts[1] if len(parts) > 1 else node.names[0].name)
            elif node.module:
                external.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "fsbarge":
                    local.add(parts[1] if len(parts) > 1 else "__init__")
                else:
                    external.add(parts[0])
    return local, external


@pytest.mark.parametrize("module", sorted(CORE))
def test_core_modules_are_pure(module: str) -> None:
    local, external = imports_of(PKG / f"{module}.py")
    assert local <= CORE[module] | {"__future__"}, f"{module} imports {local - CORE[module]}"
    third_party = {e for e in external if e not in sys.stdlib_module_names}
    assert not third_party, f"{module} imports {third_party}"


@pytest.mark.parametrize("package", sorted(ONLY_IN))
def test_libraries_stay_in_their_adapter(package: str) -> None:
    offenders = []
    for path in PKG.rglob("*.py"):
        if (PKG / "migrations") in path.parents:  # Alembic's own scripts
            continue
        _, external = imports_of(path)
        name = path.stem
        if package in external and name not in ONLY_IN[package]:
            offenders.append(str(path.relative_to(PKG)))
    assert not offenders, f"{package} imported outside {ONLY_IN[package]}: {offenders}"


@pytest.mark.parametrize("module", sorted(ROWS_ONLY))
def test_read_queries_return_rows_and_know_no_view(module: str) -> None:
    local, external = imports_of(PKG / f"{module}.py")
    assert local <= ROWS_ONLY[module] | {"__future__"}, f"{module} imports {local - ROWS_ONLY[module]}"
    third_party = {e for e in external if e not in sys.stdlib_module_names} - {"psycopg"}
    assert not third_party, f"{module} imports {third_party}"


def test_simulator_is_independent_of_the_daemon() -> None:
    """The simulator must not reuse fsbarge's parser, or the tests against it would prove nothing."""
    for path in (PKG / "sim").rglob("*.py"):
        local, _ = imports_of(path)
        tree = ast.parse(path.read_text())
        absolute = {
            n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("fsbarge.") and not n.module.startswith("fsbarge.sim")
        }
        assert not absolute, f"{path.name} imports {absolute}"
        if path.parent == PKG / "sim":
            assert not ({"wire", "events", "channels", "esl", "service"} & local and any(
                isinstance(n, ast.ImportFrom) and n.level >= 2 for n in ast.walk(tree)
            )), path.name
