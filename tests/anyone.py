"""A Python that any user can run, with fsbarge and its dependencies installed: the tests that run
fsbarge as another, unprivileged user (a QA reader, the daemon's own user) need one, and the
checkout's virtualenv may be where that user cannot enter (a clone in /root, mode 0700)."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.e2e import ROOT

__all__ = ["python_for_anyone"]


def _enterable_by_anyone(path: Path) -> bool:
    """Whether a user with no relation to the owners may reach and run `path` (each directory on
    the way searchable by others, the file executable by them)."""
    path = path.resolve()
    try:
        return path.is_file() and all(p.stat().st_mode & 0o001 for p in (path, *path.parents))
    except OSError:
        return False


def _interpreter_for_anyone(home: Path) -> tuple[Path, dict[str, str]]:
    """A Python of this version that another user may run, and the environment it needs.

    The one this test runs under lives in the checkout's virtualenv and maybe under a private home
    (pyenv in /root, mode 0700): a system one of the same version (Debian's /usr/bin/python3.11)
    if there is one, otherwise a copy of this installation (interpreter, its shared library and
    the standard library) in `home`."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base = Path(getattr(sys, "_base_executable", sys.executable))
    for candidate in (base, *(Path(d) / version for d in os.get_exec_path()), Path("/usr/bin") / version):
        if _enterable_by_anyone(candidate):
            return candidate.resolve(), {}
    prefix = home / "python"
    (prefix / "bin").mkdir(parents=True)
    shutil.copy2(base.resolve(), prefix / "bin" / version)
    stdlib = Path(sysconfig.get_path("stdlib"))
    skip = shutil.ignore_patterns("site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip")
    shutil.copytree(stdlib, prefix / "lib" / stdlib.name, ignore=skip, symlinks=True)
    env = {}
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        library = Path(sysconfig.get_config_var("LIBDIR")) / sysconfig.get_config_var("INSTSONAME")
        if library.is_file():  # else the system's own is found (Debian: a multiarch path)
            shutil.copy2(library, prefix / "lib" / library.name)
            env["LD_LIBRARY_PATH"] = str(prefix / "lib")  # before the original's RUNPATH
    return prefix / "bin" / version, env


def _runtime_distributions() -> list[importlib.metadata.Distribution]:
    """fsbarge's installed dependencies, recursively (what `pip install fsbarge` would bring)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    wanted = list(importlib.metadata.requires("fsbarge") or [])
    while wanted:
        req = Requirement(wanted.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = req.name.lower().replace("_", "-").replace(".", "-")
        if name in found:
            continue
        found[name] = dist = importlib.metadata.distribution(req.name)
        wanted += dist.requires or []
    return list(found.values())


@contextmanager
def python_for_anyone() -> Iterator[tuple[Path, dict[str, str], Path]]:
    """A virtualenv in the system's temp directory, readable by everyone, holding copies of fsbarge
    and of its dependencies (nothing else): (its python, environment, directory). Removed after.
    Skips the test where another user cannot be switched to (not root, no setpriv)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("running fsbarge as another, unprivileged user needs root and setpriv")
    home = Path(tempfile.mkdtemp(prefix="fsbarge-anyone-"))
    try:
        python, env = _interpreter_for_anyone(home)
        venv = home / "venv"
        subprocess.run([str(python), "-m", "venv", "--without-pip", str(venv)], check=True, env={**os.environ, **env},
                       capture_output=True, timeout=300)
        [site] = venv.glob("lib/python*/site-packages")
        for dist in _runtime_distributions():
            for file in dist.files or []:
                source = Path(str(dist.locate_file(file)))
                if ".." not in file.parts and source.is_file():  # scripts in bin/ are not needed
                    (site / file).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, site / file)
        # fsbarge itself from the checkout, as the editable install sees it (migrations included)
        shutil.copytree(ROOT / "fsbarge", site / "fsbarge")
        for path in (home, *home.rglob("*")):  # whatever the umask: readable, directories enterable
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | (0o555 if path.is_dir() or path.stat().st_mode & 0o100 else 0o444))
        yield venv / "bin" / "python", env, home
    finally:
        shutil.rmtree(home, ignore_errors=True)


