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

from fsbarge.store.migrate import MIGRATIONS_DIR, head_revision
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
    versions = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py"))
    assert versions, "no migrations found in the checkout"
    for name in ("env.py", "script.py.mako", *(f"versions/{v}" for v in versions)):
        assert f"fsbarge/store/migrations/{name}" in names, name
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
    where = subprocess.run([python, "-c", "from fsbarge.store.migrate import MIGRATIONS_DIR; print(MIGRATIONS_DIR)"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=60)
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    proc = subprocess.run([venv / "bin" / "fsbarge", "db", "upgrade"], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"database at revision {head_revision()}"
    proc = subprocess.run([venv / "bin" / "fsbarge", "audit", "list", "--format", "json", "--database", f"sqlite:///{work / 'fsbarge.db'}"],
                          cwd=work, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "[]", "")


# --------------------------------------------------------------------------- make install, the unit


def _make_dry_run(target: str, venv: Path) -> str:
    """What `make TARGET` would run for a fresh virtualenv at ``venv`` (nothing is run)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    proc = subprocess.run(["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_make_install_installs_the_runtime_and_postgresql_but_no_test_tool(tmp_path: Path) -> None:
    """The administrator's `make install` is the production virtualenv: no pytest, hypothesis,
    ruff or greenswitch (the test extra); the developers' targets add them themselves."""
    installs = [line for line in _make_dry_run("install", tmp_path / "venv").splitlines() if "pip install" in line]
    assert len(installs) == 1 and installs[0].endswith("-e '.[postgresql]'"), installs
    for target in ("test", "lint", "bench", "test-realfs", "faults"):
        installs = [line for line in _make_dry_run(target, tmp_path / "venv").splitlines() if "pip install" in line]
        assert installs[-1].endswith("-e '.[postgresql,test]'"), (target, installs)
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"] + project["optional-dependencies"]["postgresql"]).lower()
    assert not any(tool in runtime for tool in ("pytest", "hypothesis", "ruff", "greenswitch"))


def _render(checkout: Path | str, venv: Path | str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ROOT / "scripts" / "render-unit.sh", str(checkout), str(venv), str(ROOT / "systemd" / "fsbarge.service"), str(out)],
                          capture_output=True, text=True, timeout=60)


def test_make_install_writes_the_unit_with_the_checkouts_paths(tmp_path: Path) -> None:
    """`make install` renders the unit for wherever the checkout is: every command runs that
    virtualenv's fsbarge, nothing else of the template changes, and systemd accepts it."""
    from tests.test_freeswitch_conf import exec_argv, parse_unit, single, values

    assert f'scripts/render-unit.sh "{ROOT}" "{tmp_path / "venv"}"' in _make_dry_run("install", tmp_path / "venv")
    checkout, out = tmp_path / "srv" / "fsbarge", tmp_path / "fsbarge.service"
    venv = checkout / ".venv"
    proc = _render(checkout, venv, out)
    assert proc.returncode == 0 and f"install -m 0644 {out} /etc/systemd/system/fsbarge.service" in proc.stdout, proc.stderr
    unit = parse_unit(out.read_text())
    assert exec_argv(single(unit, "Service", "ExecStart")) == [f"{venv}/bin/fsbarge", "run", "--config", "/etc/fsbarge/fsbarge.toml"]
    assert exec_argv(single(unit, "Service", "ExecStartPre"))[0] == f"{venv}/bin/fsbarge"
    assert single(unit, "Service", "ProtectHome") == "yes"
    assert f"file://{checkout}/README.md" in values(unit, "Unit", "Documentation")[0]
    template = (ROOT / "systemd" / "fsbarge.service").read_text().splitlines()
    changed = [(a, b) for a, b in zip(template, out.read_text().splitlines(), strict=True) if a != b]
    assert changed and all("/opt/fsbarge" in a and "/opt/fsbarge" not in b for a, b in changed), changed
    if shutil.which("systemd-analyze") is not None:
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "fsbarge").write_text("#!/bin/sh\n")
        (venv / "bin" / "fsbarge").chmod(0o755)
        verify = subprocess.run(["systemd-analyze", "verify", str(out)], capture_output=True, text=True, timeout=60)
        output = (verify.stdout + verify.stderr).strip()
        if verify.returncode == 0 or "fsbarge.service:" in output:  # else systemd cannot run here at all
            assert verify.returncode == 0 and "fsbarge.service:" not in output, output


def test_a_checkout_under_home_gets_protecthome_read_only_and_odd_paths_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "fsbarge.service"
    assert _render("/home/alice/fsbarge", "/home/alice/fsbarge/.venv", out).returncode == 0
    assert "\nProtectHome=read-only\n" in out.read_text()
    for odd in ("/opt/fs barge", "relative/fsbarge", "/opt/100%"):
        proc = _render(odd, f"{odd}/.venv", tmp_path / "odd.service")
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("fsbarge: "), proc.stderr
    assert not (tmp_path / "odd.service").exists()
