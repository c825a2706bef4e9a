"""The wheel is a library: it carries the bundled scenarios, installs ``mhd_sim`` alone, and
its command works from any directory."""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def build_wheel(src: Path, dist: Path, **env: str) -> Path:
    """A wheel built from a copy of what a wheel is built from, so that nothing else writing
    in the checkout (a stale build/, a concurrent run's caches) can reach the build."""
    built_here = ("__pycache__", "*.so", "_plan_kernel.c")
    shutil.copytree(ROOT / "mhd_sim", src / "mhd_sim", ignore=shutil.ignore_patterns(*built_here))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    build = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation"]
    built = subprocess.run([*build, "-v", "-w", str(dist)], capture_output=True, text=True,
                           env={**os.environ, **env})  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    return next(dist.glob("mhd_sim-*.whl"))


@pytest.mark.slow  # builds a wheel
def test_without_a_compiler_the_wheel_builds_with_the_python_path(tmp_path):
    wheel = build_wheel(tmp_path / "src", tmp_path / "dist", CC="/bin/false")
    names = zipfile.ZipFile(wheel).namelist()
    assert "mhd_sim/learning/distillation/plan_kernel.py" in names
    assert not [n for n in names if n.endswith(".so")]  # the Python path: same numbers


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from this checkout, installed into a fresh virtual environment whose
    dependencies (torch and the rest) come from the test environment's site-packages."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(tmp / "src", tmp / "dist")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(install, check=True, capture_output=True)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # a plain path entry: the dependencies, but not the checkout's editable finder
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return wheel, venv, tmp


@pytest.mark.slow  # builds a wheel into a fresh environment
def test_wheel_holds_mhd_sim_alone_with_its_scenarios(installed):
    wheel, _, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"mhd_sim"}
    assert "mhd_sim/scenarios/straggler.yaml" in names
    assert "mhd_sim/scenarios/teaching/hops.yaml" in names
    assert "mhd_sim/scenarios/scenario.schema.json" in names
    assert "mhd_sim/scenarios/traces/bandwidth.csv" in names  # the traces scenario's files
    assert "mhd_sim/record/live/page.html" in names  # the live page ships with the package
    if shutil.which("cc"):  # the compiled hot path, built with the wheel
        assert any(n.startswith("mhd_sim/learning/distillation/_plan_kernel.") and n.endswith(".so")
                   for n in names), names  # fmt: skip


@pytest.mark.slow  # builds a wheel into a fresh environment
def test_installed_command_finds_bundled_scenarios_from_elsewhere(installed):
    _, venv, tmp = installed
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    cli = str(venv / "bin" / "mhd-sim")
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import mhd_sim; print(mhd_sim.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )
    assert str(venv) in where.stdout, where.stdout + where.stderr
    listed = subprocess.run([cli, "scenarios"], cwd=elsewhere, capture_output=True, text=True)
    assert listed.returncode == 0
    assert "straggler" in listed.stdout and "teaching/hops" in listed.stdout
    run = [cli, "run", "straggler", "--timing-only", "--set", "duration=20", "--out", "r", "-q"]
    done = subprocess.run(run, cwd=elsewhere, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    hot = json.loads((elsewhere / "r" / "summary.json").read_text())["hot_path"]
    assert hot == ("compiled" if shutil.which("cc") else "python")
    assert (elsewhere / "r" / "events.csv").is_file()
    # the traces scenario reads its files beside it, inside the installed package
    run = [cli, "run", "traces", "--timing-only", "--set", "duration=20", "--out", "t", "-q"]
    done = subprocess.run(run, cwd=elsewhere, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (elsewhere / "t" / "uplinks.csv").is_file()
    # the installed package serves its live page (page.html comes from the wheel)
    watch = subprocess.Popen([cli, "watch", "r"], cwd=elsewhere, stdout=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r"http://127.0.0.1:(\d+)/", watch.stdout.readline()).group(1))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # no proxy
        conn.request("GET", "/")
        assert b"<title>mhd-sim watch</title>" in conn.getresponse().read()
    finally:
        watch.terminate()
        watch.wait(30)
