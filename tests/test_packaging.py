"""The wheel is complete: installed on its own into a fresh virtualenv, `fsbarge db upgrade` migrates
a new database (the migrations ship inside the package) given only its URL, and the read commands
work on it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from fsbarge import db
from tests.e2e import ROOT


def _sources(dest: Path) -> Path:
    """A copy of the tracked files, so the build never sees (or leaves) anything in the checkout."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=60)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell which files are the sources")
    for name in listed.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = _sources(tmp / "src")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [built] = (tmp / "dist").glob("fsbarge-*.whl")
    return built


def test_the_wheel_holds_the_migrations_and_an_spdx_license(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    versions = sorted(p.name for p in (db.MIGRATIONS_DIR / "versions").glob("*.py"))
    assert versions, "no migrations found in the checkout"
    for name in ("env.py", "script.py.mako", *(f"versions/{v}" for v in versions)):
        assert f"fsbarge/migrations/{name}" in names, name
    [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: MIT" in text


def test_a_wheel_install_migrates_a_new_database_and_reads_it(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True, timeout=300, capture_output=True,
    )
    # the dependencies (not fsbarge) from the test's own environment, without a download
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "deps-from-test-env.pth").write_text(sysconfig.get_path("purelib") + "\n")
    work = tmp_path / "elsewhere"  # not the checkout: nothing to import by accident
    work.mkdir()
    # no configuration yet (FreeSWITCH nodes, teams): the database URL alone creates the database
    env = {"PATH": "/usr/bin:/bin", "FSBARGE_CONFIG": str(work / "not-written-yet.toml"),
           "FSBARGE_DATABASE_URL": f"sqlite:///{work / 'fsbarge.db'}"}
    where = subprocess.run([python, "-c", "import fsbarge.db as d; print(d.MIGRATIONS_DIR)"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=60)
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    proc = subprocess.run([venv / "bin" / "fsbarge", "db", "upgrade"], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"database at revision {db.head_revision()}"
    proc = subprocess.run([venv / "bin" / "fsbarge", "audit", "list", "--format", "json", "--database", f"sqlite:///{work / 'fsbarge.db'}"],
                          cwd=work, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "[]", "")
