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
    "channel": {"wire"},
    "channels": {"channel", "events"},
    "terms": set(),
    "changes": {"terms"},
    "journalstate": {"changes", "terms"},  # what the daemon resumes from, folded from the journal
    "paths": set(),
    # the configuration package: the names every importer uses, and one module per role
    "config": {"config.errors", "config.loader", "config.model", "paths"},
    "config.model": {"terms", "paths"},
    "config.errors": {"config.model"},
    "config.checks": {"config.errors"},
    "config.endpoints": {"config.checks", "config.errors", "config.model", "terms", "paths"},
    "config.teams": {"config.checks", "config.errors", "config.model", "terms"},
    "config.loader": {"config.checks", "config.endpoints", "config.errors", "config.model", "config.teams"},
    "policy": {"config", "terms"},
    "effects": {"terms"},
    "intervention": {"events", "terms"},
    "reattach": {"channels", "effects", "intervention", "terms"},
    "notify": {"channels", "effects", "intervention", "policy"},
    "barge": {"events", "policy", "channels", "terms", "crossnode", "effects", "intervention", "notify", "reattach",
              "request", "handoff"},
    "request": {"channels", "crossnode", "effects", "intervention", "policy", "terms"},
    "handoff": {"crossnode", "effects", "events", "terms"},
    "crossnode": set(),
    "help": {"barge", "channels", "events", "policy", "terms"},
    "commands": {"barge", "help"},
    "resync": {"channels", "effects", "events", "intervention", "reattach", "terms"},
    "unaudited": {"barge", "help", "terms"},
    "chain": set(),
    "humantime": set(),
    "counts": set(),
}
# modules by dotted name under fsbarge/ ("db.engine"); fsbarge.db.errors and fsbarge.db.schema stay
# free of SQLAlchemy, and the read side (queries, sqlread) is plain SQL: SQLAlchemy and Alembic belong
# to the daemon and `db upgrade`
ONLY_IN = {
    "greenswitch": set(),
    "sqlalchemy": {"db.engine", "db.migrations", "db.readers", "db.locks", "db.prepare", "models", "tickets",
                   # the store, one module per role
                   "store.rows", "store.hooks", "store.channel_mirror", "store.audit_apply", "store.audit_read",
                   "store.audit_chain", "store.webhook_deliveries"},
    "alembic": {"db.migrations"},
    "psycopg": {"db.engine", "sqlread"},
}
# The read queries return stored rows; the views (auditview, helpview) make records of them at the
# edge (fsbarge.records), so a query never depends on how a record looks.
ROWS_ONLY = {
    "queries": {"sqlread", "terms"},
    "sqlread": {"db.errors", "db.schema", "db.engine", "db.readers"},
    "db.errors": set(),
    "db.schema": set(),
}


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


def module_path(module: str) -> Path:
    """The file of a module named as in CORE ("config.model"); a package's is its __init__.py."""
    path = PKG.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def fsbarge_imports(path: Path) -> set[str]:
    """The fsbarge modules a file imports, by dotted name under fsbarge/ ("config.model"), relative
    imports resolved against the file's own package."""
    package = path.relative_to(PKG).parent.parts
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            names = [node.module] if node.module else [a.name for a in node.names]
            found.update(".".join((*base, name)) for name in names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fsbarge."):
            found.add(node.module.removeprefix("fsbarge."))
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("fsbarge.") for a in node.names if a.name.startswith("fsbarge."))
    return found


@pytest.mark.parametrize("module", sorted(CORE))
def test_core_modules_are_pure(module: str) -> None:
    _, external = imports_of(module_path(module))
    local = fsbarge_imports(module_path(module))
    assert local <= CORE[module], f"{module} imports {local - CORE[module]}"
    third_party = {e for e in external if e not in sys.stdlib_module_names}
    assert not third_party, f"{module} imports {third_party}"


@pytest.mark.parametrize("package", sorted(ONLY_IN))
def test_libraries_stay_in_their_adapter(package: str) -> None:
    offenders = []
    for path in PKG.rglob("*.py"):
        if (PKG / "migrations") in path.parents:  # Alembic's own scripts
            continue
        _, external = imports_of(path)
        name = ".".join(path.relative_to(PKG).with_suffix("").parts)
        if package in external and name not in ONLY_IN[package]:
            offenders.append(str(path.relative_to(PKG)))
    assert not offenders, f"{package} imported outside {ONLY_IN[package]}: {offenders}"


# No module of fsbarge/ (but the simulator and Alembic's scripts) over MAX_LINES: one past it has
# usually taken a second role (issue 18). Those not split yet, with what is left in them:
MAX_LINES = 320
TOO_LONG_YET = {
    "daemon.py": "the composition root: wiring, start/stop, the journal's recovery, the takeover's IO",
    "barge.py": "the machine still runs and ends interventions itself (keys, eavesdrop done, hang-ups)",
    "changes.py": "the typed changes and their one journal-line serialisation, kept together on purpose",
    "queries.py": "the read queries (close to the limit; not split)",
    "sqlread.py": "the read connections on both backends (close to the limit; not split)",
    "shipper.py": "journal -> database shipping (close to the limit; not split)",
}


def module_sizes() -> dict[str, int]:
    """Lines of every module under fsbarge/ but sim/ and migrations/, by path relative to fsbarge/."""
    return {
        str(path.relative_to(PKG)): len(path.read_text().splitlines()) for path in PKG.rglob("*.py")
        if (PKG / "sim") not in path.parents and (PKG / "migrations") not in path.parents
    }


def test_no_module_is_over_the_limit() -> None:
    sizes = module_sizes()
    over = {name: lines for name, lines in sizes.items() if lines > MAX_LINES and name not in TOO_LONG_YET}
    assert not over, f"over {MAX_LINES} lines (split by role, or name them in TOO_LONG_YET): {over}"


def test_the_too_long_list_names_only_modules_still_too_long() -> None:
    """A module split below the limit leaves the list, so it cannot grow back unnoticed."""
    sizes = module_sizes()
    assert {name for name in TOO_LONG_YET if sizes.get(name, 0) <= MAX_LINES} == set()


def test_the_store_is_split_by_role_into_small_modules() -> None:
    """One repository per role (issue 18): a module that grows past ~300 lines has taken a second role."""
    store = PKG / "store"
    sizes = {p.name: len(p.read_text().splitlines()) for p in store.glob("*.py")}
    assert not (PKG / "store.py").exists()
    assert {name for name, lines in sizes.items() if lines > 300} == set(), sizes


@pytest.mark.parametrize("module", sorted(ROWS_ONLY))
def test_read_queries_return_rows_and_know_no_view(module: str) -> None:
    _, external = imports_of(module_path(module))
    local = fsbarge_imports(module_path(module))
    assert local <= ROWS_ONLY[module], f"{module} imports {local - ROWS_ONLY[module]}"
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


# -- the simulator: no import circle, mixins that use their host only through a named interface ----

SIM = PKG / "sim"


def sim_import_graph() -> dict[str, set[str]]:
    """sim module -> the sim modules it imports (type-checking imports too: a circle in the types
    is still one a reader has to walk)."""
    modules = {p.stem for p in SIM.glob("*.py")}
    return {p.stem: imports_of(p)[0] & modules - {p.stem} for p in SIM.glob("*.py")}


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path (first module repeated at the end), or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        for imported in sorted(graph.get(module, ())):
            circle = visit(imported, path + [module])
            if circle:
                return circle
        done.add(module)
        return None

    for module in sorted(graph):
        circle = visit(module, [])
        if circle:
            return circle
    return None


def test_find_circle_finds_one() -> None:
    """The check below can fail: a circle of three is found, a chain is not."""
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_sim_has_no_import_circle() -> None:
    circle = find_circle(sim_import_graph())
    assert circle is None, "import circle in fsbarge/sim: " + " -> ".join(circle or [])


def _protocols() -> dict[str, set[str]]:
    """Each Protocol of sim/host.py -> every member it names, its base Protocols' included."""
    tree = ast.parse((SIM / "host.py").read_text())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}

    def members(name: str) -> set[str]:
        node = classes[name]
        own = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        own |= {n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
        for base in node.bases:
            if isinstance(base, ast.Name) and base.id in classes:
                own |= members(base.id)
        return own

    return {name: members(name) for name in classes}


def _mixins() -> list[tuple[str, str, set[str], set[str]]]:
    """(module, mixin class, the host Protocol it declares, what it uses of ``self``/``pbx`` beyond
    its own members) for every ``*Mixin`` class in sim/."""
    found = []
    for path in sorted(SIM.glob("*.py")):
        tree = ast.parse(path.read_text())
        host = None
        for node in tree.body:  # if TYPE_CHECKING: _Host = SomeHost
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                for stmt in node.body:
                    if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Name):
                        host = stmt.value.id
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("Mixin")):
            own = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
            own |= {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
            own |= {t.id for n in cls.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
            # the class's methods, and the module's functions handed the Pbx as ``pbx`` (the applications)
            scopes = [cls, *(n for n in tree.body if isinstance(n, ast.FunctionDef))]
            used = {
                n.attr for scope in scopes for n in ast.walk(scope)
                if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in ("self", "pbx")
            }
            found.append((path.stem, cls.name, host or "", used - own))
    return found


def test_the_host_interfaces_name_public_members_only() -> None:
    protocols = _protocols()
    assert {"PbxCore", "AppsHost", "HangupHost", "NetworkHost", "OriginateHost", "EslHost"} <= set(protocols)
    private = {name: sorted(m for m in members if m.startswith("_")) for name, members in protocols.items()}
    assert not any(private.values()), private


@pytest.mark.parametrize(("module", "mixin", "host", "used"), _mixins(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_pbx_mixin_uses_only_its_host_interface(module: str, mixin: str, host: str, used: set[str]) -> None:
    protocols = _protocols()
    assert host in protocols, f"{module}.{mixin}: declare its host Protocol (if TYPE_CHECKING: _Host = ...Host)"
    beyond = used - protocols[host]
    assert not beyond, f"{module}.{mixin} uses {sorted(beyond)} of the Pbx, not named in host.{host}"


def test_the_mixins_are_found() -> None:
    assert {m[1] for m in _mixins()} == {"AppsMixin", "HangupMixin", "NetworkMixin", "OriginateMixin"}


def test_the_pbx_and_the_simulator_provide_what_the_interfaces_name() -> None:
    from fsbarge.sim import FreeSwitchSim

    sim = FreeSwitchSim()  # not started: no socket
    protocols = _protocols()
    providers = {"EslHost": sim, "SessionCommands": sim.pbx, "ApiCommands": sim.api}
    for name, members in protocols.items():
        provider = providers.get(name, sim.pbx)
        missing = sorted(m for m in members if not hasattr(provider, m))
        assert not missing, f"{type(provider).__name__} lacks {missing} of host.{name}"


def test_the_benchmark_touches_no_private_attribute_of_greenswitch() -> None:
    """A pinned 0.0.x library's privates are a trap for whoever upgrades it (ARCHITECTURE.md)."""
    offenders = []
    for path in (PKG.parent / "bench").glob("*.py"):
        tree = ast.parse(path.read_text())
        # names bound to a greenswitch object: x = greenswitch.Something(...)
        objects = {
            t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
            and isinstance(n.value.func, ast.Attribute) and isinstance(n.value.func.value, ast.Name)
            and n.value.func.value.id == "greenswitch" for t in n.targets if isinstance(t, ast.Name)
        } | {"greenswitch"}
        offenders += [
            f"{path.name}:{n.lineno} {n.value.id}.{n.attr}" for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in objects
            and n.attr.startswith("_")
        ]
    assert not offenders, offenders


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
    "channel": {"answered": "a channel's answer_state"},
    "channels": {"answered": "a channel's answer_state"},
    "tickets": {"answered": "a channel's answer_state"},
    "admin": {"answered": "a channel's answer_state"},  # fsbarge.cli.admin: help request
    "parser": {"failed": "a webhook delivery's state"},  # fsbarge.cli.parser: webhooks list --state
    "intervention": {"reattach": "the name of an intervention's transition (TRANSITIONS)"},
    "endpoints": {"external": "a SIP profile's name", "listen": "the [metrics] table's listen key"},
    "model": {"external": "a SIP profile's name"},
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
