"""The import arrows point inward: a pure core, IO at the edges (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "fsbarge"

# The layout shows the architecture (README "How it is built"): fsbarge/core/ is the pure core,
# fsbarge/daemon/ the daemon's IO, fsbarge/store/ the database (SQLAlchemy, Alembic), fsbarge/read/
# the read side (plain SQL and views), fsbarge/cli/ the command, fsbarge/sim/ the simulator.

# core module -> the fsbarge modules it may import (stdlib always allowed; no third-party package).
# Every module of core/ is named here, so a new one is checked too.
CORE = {
    "core.wire": set(),
    "core.events": {"core.wire"},
    "core.channel": {"core.wire"},
    "core.channels": {"core.channel", "core.events"},
    "core.terms": set(),
    "core.changes": {"core.changeline", "core.terms"},  # the changes read by key go through their line
    "core.changeline": {"core.changes"},  # the one serialisation of a change to and from its journal line
    "core.journalline": {"core.changeline", "core.changes"},
    "core.journalstate": {"core.changes", "core.terms"},  # what the daemon resumes from, folded from the journal
    "core.policy": {"config", "core.terms"},
    "core.effects": {"core.terms"},
    "core.intervention": {"core.events", "core.terms"},
    "core.reattach": {"core.channels", "core.effects", "core.intervention", "core.terms"},
    "core.notify": {"core.channels", "core.effects", "core.intervention", "core.policy"},
    "core.barge": {"core.events", "core.policy", "core.channels", "core.terms", "core.crossnode", "core.effects",
                   "core.intervention", "core.notify", "core.reattach", "core.request", "core.handoff",
                   "core.keys", "core.endings", "core.adoption"},
    # the machine's roles, module-level functions it delegates to
    "core.keys": {"core.effects", "core.intervention", "core.policy", "core.request", "core.terms"},
    "core.endings": {"core.channels", "core.effects", "core.events", "core.intervention", "core.terms"},
    "core.adoption": {"core.effects", "core.endings", "core.intervention", "core.reattach", "core.terms"},
    "core.request": {"core.channels", "core.crossnode", "core.effects", "core.intervention", "core.policy", "core.terms"},
    "core.handoff": {"core.crossnode", "core.effects", "core.events", "core.terms"},
    "core.crossnode": set(),
    "core.help": {"core.barge", "core.channels", "core.effects", "core.events", "core.policy", "core.terms"},
    "core.commands": {"core.effects", "core.help", "core.notify"},
    "core.resync": {"core.channels", "core.effects", "core.events", "core.intervention", "core.reattach", "core.terms"},
    "core.unaudited": {"core.barge", "core.effects", "core.help", "core.terms"},
    "core.chain": set(),
}
# pure modules outside core/, checked the same way: the configuration (parsed, validated: no IO but
# reading its file), the read side's time and table helpers, the daemon's plain counters
PURE = {
    "paths": set(),
    "config": {"config.errors", "config.loader", "config.model", "paths"},
    "config.model": {"core.terms", "paths"},
    "config.errors": {"config.model"},
    "config.checks": {"config.errors"},
    "config.endpoints": {"config.checks", "config.errors", "config.model", "core.terms", "paths"},
    "config.teams": {"config.checks", "config.errors", "config.model", "core.terms"},
    "config.loader": {"config.checks", "config.endpoints", "config.errors", "config.model", "config.teams"},
    "read.humantime": set(),
    "daemon.counts": set(),
}
# layer -> the layers it may import (a layer is the first part of a dotted name under fsbarge/:
# "core", "daemon", "read", "store", "cli", "config", "sim", or a top-level module)
LAYERS = {
    "core": {"core", "config"},
    "config": {"config", "core", "paths"},
    # the read side reads the store's tables with plain SQL: it knows the store's errors, its schema
    # revision and the reader engines (for the SQLAlchemy-only checks), never the daemon
    "read": {"read", "core", "store", "paths"},
    # the store reads records back through the read side's queries (AuditReader, the reader engines)
    "store": {"store", "core", "read"},
    "daemon": {"daemon", "core", "store", "read", "config", "paths"},
    "cli": {"cli", "core", "daemon", "store", "read", "config", "paths", "logs"},
}
# modules by dotted name under fsbarge/ ("store.engine"); fsbarge.store.errors and fsbarge.store.schema
# stay free of SQLAlchemy, and the read side is plain SQL: SQLAlchemy and Alembic belong to the
# store, the daemon's database adapters and `db upgrade`
ONLY_IN = {
    "greenswitch": set(),
    "sqlalchemy": {"store.engine", "store.migrate", "store.readers", "store.locks", "store.models",
                   # the store's repositories, one module per role
                   "store.rows", "store.hooks", "store.channel_mirror", "store.audit_apply", "store.audit_read",
                   "store.audit_chain", "store.webhook_deliveries",
                   # the daemon's own tables: the schema at start, the cross-node tickets
                   "daemon.prepare", "daemon.tickets"},
    "alembic": {"store.migrate"},
    "psycopg": {"store.engine", "read.sqlread"},
}
# The read queries return stored rows; the views (auditview, helpview) make records of them at the
# edge (fsbarge.read.records), so a query never depends on how a record looks.
ROWS_ONLY = {
    "read.queries": {"read.sqlread", "read.columns", "core.terms"},
    "read.columns": {"read.sqlread", "core.terms"},
    "read.sqlread": {"store.errors", "store.schema", "store.engine", "store.readers", "store.sqlitefile"},
    "store.sqlitefile": {"store.errors"},
    "store.errors": set(),
    "store.schema": set(),
}
MIGRATIONS = PKG / "store" / "migrations"


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


def is_module(dotted: str) -> bool:
    """Whether a dotted name under fsbarge/ ("core.terms") is a module or package, not an attribute."""
    path = PKG.joinpath(*dotted.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def fsbarge_imports(path: Path) -> set[str]:
    """The fsbarge modules a file imports, by dotted name under fsbarge/ ("config.model"): relative
    imports resolved against the file's own package, ``from fsbarge.core import terms`` as "core.terms"."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            package = path.relative_to(PKG).parent.parts
            base = package[: len(package) - node.level + 1]
            names = [node.module] if node.module else [a.name for a in node.names]
            found.update(".".join((*base, name)) for name in names)
        elif isinstance(node, ast.ImportFrom) and node.module and (node.module + ".").startswith("fsbarge."):
            parent = node.module.removeprefix("fsbarge").removeprefix(".")
            for alias in node.names:
                child = f"{parent}.{alias.name}" if parent else alias.name
                found.add(child if is_module(child) else parent or "__init__")
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("fsbarge.") for a in node.names if a.name.startswith("fsbarge."))
    return found


@pytest.mark.parametrize("module", sorted(CORE | PURE))
def test_core_modules_are_pure(module: str) -> None:
    allowed = (CORE | PURE)[module]
    _, external = imports_of(module_path(module))
    local = fsbarge_imports(module_path(module))
    assert local <= allowed, f"{module} imports {local - allowed}"
    third_party = {e for e in external if e not in sys.stdlib_module_names}
    assert not third_party, f"{module} imports {third_party}"


@pytest.mark.parametrize("package", sorted(ONLY_IN))
def test_libraries_stay_in_their_adapter(package: str) -> None:
    offenders = []
    for path in PKG.rglob("*.py"):
        if MIGRATIONS in path.parents:  # Alembic's own scripts
            continue
        _, external = imports_of(path)
        name = ".".join(path.relative_to(PKG).with_suffix("").parts)
        if package in external and name not in ONLY_IN[package]:
            offenders.append(str(path.relative_to(PKG)))
    assert not offenders, f"{package} imported outside {ONLY_IN[package]}: {offenders}"


def layer_of(module: str) -> str:
    """The layer of a dotted name under fsbarge/: its subpackage, or the module itself at the top."""
    return module.split(".")[0]


def all_modules() -> dict[str, Path]:
    """Every module of fsbarge/ but the simulator and Alembic's scripts, by dotted name."""
    found = {}
    for path in PKG.rglob("*.py"):
        if (PKG / "sim") in path.parents or MIGRATIONS in path.parents:
            continue
        parts = path.relative_to(PKG).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def layer_offences(modules: dict[str, Path]) -> list[str]:
    """Imports that cross from one layer into a layer it may not use (LAYERS)."""
    offences = []
    for name, path in sorted(modules.items()):
        layer = layer_of(name)
        if layer not in LAYERS:
            continue
        allowed = LAYERS[layer] | {"__init__"}  # fsbarge.__version__
        offences += [f"{name} imports {m}" for m in sorted(fsbarge_imports(path)) if layer_of(m) not in allowed]
    return offences


def test_every_core_module_is_checked_for_purity() -> None:
    core = {name for name in all_modules() if layer_of(name) == "core" and name != "core"}
    assert core == set(CORE), f"name these in CORE: {sorted(core - set(CORE))}; gone: {sorted(set(CORE) - core)}"


def test_imports_follow_the_layers() -> None:
    """The core knows no IO, the read side knows no daemon, the store knows neither daemon nor CLI."""
    offences = layer_offences(all_modules())
    assert not offences, offences


def test_the_layer_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "status.py"
    bad.write_text("from fsbarge.daemon.journal import Journal\nfrom fsbarge.core import terms\n")
    assert layer_offences({"read.status": bad}) == ["read.status imports daemon.journal"]


def test_the_top_level_holds_only_the_layers_and_shared_modules() -> None:
    """A new module goes into the layer it belongs to; the top keeps what every layer shares."""
    top = {p.stem for p in PKG.glob("*.py")} | {p.name for p in PKG.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert top == {"__init__", "__main__", "paths", "logs", "demo", "core", "daemon", "store", "read", "cli", "config", "sim"}


# No module of fsbarge/ (but the simulator and Alembic's scripts) over MAX_LINES: one past it has
# usually taken a second role (issue 18). Those not split yet, with what is left in them:
MAX_LINES = 320
TOO_LONG_YET = {
}


def module_sizes() -> dict[str, int]:
    """Lines of every module under fsbarge/ but sim/ and migrations/, by path relative to fsbarge/."""
    return {
        str(path.relative_to(PKG)): len(path.read_text().splitlines()) for path in PKG.rglob("*.py")
        if (PKG / "sim") not in path.parents and MIGRATIONS not in path.parents
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
    """One repository per role (issue 18): a module that grows past ~300 lines has taken a second role
    (models.py, the tables themselves, is held to the package-wide limit)."""
    store = PKG / "store"
    sizes = {p.name: len(p.read_text().splitlines()) for p in store.glob("*.py") if p.name != "models.py"}
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


# The journal change is a type (fsbarge.core.changes); only its serialisation (core.changeline) spells it as a dict.
# chain.body_of builds a hash-chain entry, which names the kind of the change it records.
CHANGE_DICT_ALLOWED = {"changes", "changeline", "chain"}


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
        if MIGRATIONS in path.parents or (PKG / "sim") in path.parents or path.stem in CHANGE_DICT_ALLOWED:
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
    """Modes, outcomes, end reasons, sources and origins are spelled once, in fsbarge.core.terms; elsewhere a
    misspelt bare string would be a record nobody finds. Migrations keep their own spelling: a
    migration states the schema as it was the day it was written."""
    from fsbarge.core import terms

    checked = {t for group in terms.CHECKED for t in group}
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        if MIGRATIONS in path.parents or (PKG / "sim") in path.parents or path.stem == "terms":
            continue
        offenders += bare_terms(path, checked)
    assert not offenders, offenders


def test_the_bare_term_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('"""freeswitch_shutdown"""\nimport enum\nclass S(enum.StrEnum):\n    ACTIVE = "active"\nx = "freeswitch_shutdown"\n')
    assert bare_terms(bad, {"freeswitch_shutdown", "active"}) == ["bad.py:5 'freeswitch_shutdown'"]


def readme_layout() -> dict[str, str]:
    """The README's "How it is built" table: folder cell ("core/", "(top)") -> the row's text."""
    text = (PKG.parent / "README.md").read_text()
    section = text[text.index("## How it is built"):]
    section = section[: section.index("\n## ", 1)]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 2 and cells[0] not in ("folder", "---"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_the_readme_names_every_module_in_its_folder() -> None:
    """The table a newcomer reads first matches the code: each folder's row names exactly its
    modules (and sub-folders), the top row the modules at the top."""
    rows = readme_layout()
    folders = {p.name + "/" for p in PKG.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert set(rows) == folders | {"(top)"}
    mentioned_files = lambda text: set(re.findall(r"`([\w/]+\.py)`", text))  # noqa: E731
    top = {p.name for p in PKG.glob("*.py")} - {"__init__.py", "__main__.py"}
    assert mentioned_files(rows["(top)"]) == top
    for folder in folders - {"sim/"}:  # the simulator's parts are its own business
        here = PKG / folder
        files = {p.name for p in here.glob("*.py")} - {"__init__.py", "__main__.py"}
        subfolders = {p.name + "/" for p in here.iterdir() if p.is_dir() and p.name != "__pycache__"}
        for sub in subfolders - {"migrations/"}:
            files |= {p.name for p in (here / sub).glob("*.py")} - {"__init__.py"}
        named = mentioned_files(rows[folder]) - {"tests/store_factories.py", "__init__.py"}
        assert named == files, f"{folder}: not in the README {sorted(files - named)}, gone {sorted(named - files)}"
        for sub in subfolders:
            assert f"`{sub}`" in rows[folder], f"{folder}{sub} not in the README"


def reexport_uses(path: Path) -> list[str]:
    """Names a file imports from fsbarge.core.barge that fsbarge.core.effects or .notify define."""
    defined = {}
    for home in ("effects", "notify"):
        tree = ast.parse((PKG / "core" / f"{home}.py").read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef):
                defined[node.name] = home
            elif isinstance(node, ast.Assign):
                defined.update({t.id: home for t in node.targets if isinstance(t, ast.Name)})
    return [
        f"{path.name}:{n.lineno} {a.name} (fsbarge.core.{defined[a.name]})" for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.ImportFrom) and n.module == "fsbarge.core.barge" for a in n.names if a.name in defined
    ]


def test_effects_are_imported_from_their_own_module() -> None:
    """An effect type comes from fsbarge.core.effects, not through the machine that happens to use
    it: the interpreter and the commands then depend on what they handle, not on the machine."""
    offenders = [o for path in sorted(PKG.rglob("*.py")) if path.name != "barge.py" for o in reexport_uses(path)]
    assert not offenders, offenders


def test_the_reexport_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from fsbarge.core.barge import BargeMachine, Execute, NOTIFY_LIMIT\n")
    assert reexport_uses(bad) == ["bad.py:1 Execute (fsbarge.core.effects)", "bad.py:1 NOTIFY_LIMIT (fsbarge.core.notify)"]
