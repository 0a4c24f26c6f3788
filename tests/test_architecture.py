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
    "changes": {"terms"},
    "paths": set(),
    "config": {"terms", "paths"},
    "policy": {"config", "terms"},
    "barge": {"events", "policy", "channels", "terms", "crossnode"},
    "crossnode": set(),
    "help": {"barge", "channels", "events", "policy", "terms"},
    "commands": {"barge", "help"},
    "resync": {"barge", "events", "terms"},
    "chain": set(),
    "humantime": set(),
    "counts": set(),
}
ONLY_IN = {"greenswitch": set(), "sqlalchemy": {"db", "models", "store", "queries", "tickets"}, "alembic": {"db"}}


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


# The journal change is a type (fsbarge.changes); only that module spells a change as a dict.
# chain.body_of builds a hash-chain entry, which names the kind of the change it records.
CHANGE_DICT_ALLOWED = {"changes", "chain"}


def _str_key(node: ast.AST, key: str) -> bool:
    return isinstance(node, ast.Constant) and node.value == key


def change_dict_uses(path: Path) -> list[str]:
    """Where a file builds a dict with a "kind" key, or reads "kind" from one (c["kind"], c.get("kind"))."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Dict) and any(k is not None and _str_key(k, "kind") for k in node.keys):
            found.append(f"{path.name}:{node.lineno} builds a dict with a 'kind' key")
        elif isinstance(node, ast.Subscript) and _str_key(node.slice, "kind"):
            found.append(f"{path.name}:{node.lineno} reads ['kind']")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and node.args and _str_key(node.args[0], "kind")):
            found.append(f"{path.name}:{node.lineno} reads .get('kind')")
    return found


def test_only_the_change_module_spells_a_change_as_a_dict() -> None:
    """Everything else builds and reads typed changes: a dict with a kind key read by several
    if-chains is how their meanings drift apart (ISSUE 18)."""
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        if (PKG / "migrations") in path.parents or (PKG / "sim") in path.parents or path.stem in CHANGE_DICT_ALLOWED:
            continue
        offenders += change_dict_uses(path)
    assert not offenders, offenders


def test_the_change_dict_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('x = {"kind": "open", "id": "a"}\nif x["kind"] == "open" or x.get("kind"):\n    pass\n')
    assert len(change_dict_uses(bad)) == 3


# The same spelling in another vocabulary (not an audit term): module -> {literal: what it is there}.
OTHER_VOCABULARIES = {
    "channels": {"answered": "a channel's answer_state"},
    "tickets": {"answered": "a channel's answer_state"},
    "cli": {"answered": "a channel's answer_state", "failed": "a webhook delivery's state"},
    "config": {"external": "a SIP profile's name", "listen": "the [metrics] table's listen key"},
    "crossnode": {"external": "a SIP profile's name"},
    "metrics": {"failed": "a webhook delivery's state"},
    "status": {"failed": "a webhook delivery's state"},
    "webhooks": {"failed": "a webhook delivery's state"},
}


def bare_terms(path: Path, terms: set[str]) -> list[str]:
    """String literals equal to an audit term, outside docstrings and Enum classes (another
    vocabulary's members, e.g. barge.State.ACTIVE)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(getattr(b, "id", getattr(b, "attr", "")).endswith("Enum") for b in node.bases):
            skip.update(id(n) for n in ast.walk(node))
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
    allowed = OTHER_VOCABULARIES.get(path.stem, {})
    return [
        f"{path.name}:{n.lineno} {n.value!r}" for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in terms and id(n) not in skip
        and n.value not in allowed
    ]


def test_terms_are_named_not_spelled() -> None:
    """Modes, outcomes, end reasons, sources and origins are spelled once, in fsbarge.terms; elsewhere a
    misspelt bare string would be a record nobody finds. Migrations keep their own spelling: a
    migration states the schema as it was the day it was written."""
    from fsbarge import terms

    checked = {t for group in terms.CHECKED for t in group}
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        if (PKG / "migrations") in path.parents or (PKG / "sim") in path.parents or path.stem == "terms":
            continue
        offenders += bare_terms(path, checked)
    assert not offenders, offenders


def test_the_bare_term_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('"""freeswitch_shutdown"""\nimport enum\nclass S(enum.StrEnum):\n    ACTIVE = "active"\nx = "freeswitch_shutdown"\n')
    assert bare_terms(bad, {"freeswitch_shutdown", "active"}) == ["bad.py:5 'freeswitch_shutdown'"]
