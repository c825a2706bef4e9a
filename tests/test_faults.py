"""Nothing hangs, nothing half-written: what a hostile tester found, each through the command
line or the API as a user meets it, and a fault drill that kills runs with SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import mhd_sim as ms
from mhd_sim.cli import app

MHD_SIM = [sys.executable, "-m", "mhd_sim"]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The command line in a process of its own, as a user runs it."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*MHD_SIM, *args], capture_output=True, text=True, timeout=timeout,
                           env=env)  # fmt: skip


def one_line(result: subprocess.CompletedProcess, code: int, text: str) -> None:
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert result.returncode == code, result.stderr
    assert len(errors) == 1 and text in errors[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("engine", ["auto", "per_agent", "batched"])
def test_a_diverging_run_names_the_agent_end_to_end(tmp_path, engine):
    result = cli("run", "straggler", "--set", "training.lr=1e6", "--set", "duration=30",
                 "--set", f"engine={engine}", "--out", str(tmp_path / "run"), "-q")  # fmt: skip
    one_line(result, 1, "loss became non-finite in its step started at t=")
    assert "agent " in result.stderr and "training.lr" in result.stderr
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed" and "non-finite" in status["error"]


@pytest.mark.parametrize(
    "overrides, text",
    [
        (["algorithm.name=fedavg", "algorithm.deadline=1e-300", "duration=20"],
         "algorithm.deadline: 1e-300 s over 20 s"),
        (["algorithm.name=fedavg", "algorithm.deadline=1e-6", "duration=20"], "rounds; at most"),
        (["duration=1e9", "eval.every=1e-6"], "eval.every: 1e-06 s over 1e+09 s"),
        (["agents.speed=1e300"], "local steps"),
        (["agents.churn={up_mean: 1e-9, down_mean: 1e-9}"], "agents.churn"),
        (["agents.count=100000000"], "needs about"),
        (["agents.count=20000", "network.topology.kind=complete"], "needs about"),
        (["agents.model={kind: cnn1d, channels: [32, 1000000000000]}"], "needs about"),
        (["training.batch_size=1000000000000"], "training.batch_size: must be <="),
        (["network.transport={kind: reliable, min_rto: 5e-324}", "network.loss=0.999"],
         "min_rto"),
        (["algorithm.temperature=1e308", "engine=batched"], "algorithm.temperature"),
        (["duration=5e-324"], "duration: must be >="),
        (["network.bandwidth=5e-324"], "network.bandwidth: must be >="),
        (["engine=batched", "algorithm.name=gossip"], "engine: batched does not support"),
        (["engine=batched", "algorithm.name=centralized"], "engine: batched does not support"),
        (["engine=batched", "algorithm.name=fedavg"], "engine: batched does not support"),
    ],
)  # fmt: skip
def test_what_cannot_fit_or_progress_is_refused_at_once_in_one_line(tmp_path, overrides, text):
    sets = [a for o in overrides for a in ("--set", o)]
    start = time.perf_counter()
    one_line(cli("validate", "straggler", "--no-labels", *sets, timeout=60), 2, text)
    one_line(cli("run", "straggler", "--timing-only", "-q", "--out", str(tmp_path / "r"), *sets,
                 timeout=60), 2, text)  # fmt: skip
    assert time.perf_counter() - start < 40  # refused before any work
    assert not (tmp_path / "r").exists()


def test_a_refused_run_leaves_its_out_free_for_the_corrected_one(tmp_path, tiny):
    f, out = tmp_path / "s.yaml", tmp_path / "run"
    tiny["data"]["samples_per_agent"] = 0.2  # every agent one sample... then none: refused
    tiny["data"]["partition"] = {"kind": "shards", "shards_per_agent": 1}
    tiny["agents"]["count"] = 4
    tiny["data"]["dataset"]["train_size"] = 12  # 12 × 0.7 private samples for 4 agents' shards
    tiny["data"]["public_fraction"] = 0.9
    f.write_text(yaml.safe_dump(tiny))
    result = cli("run", str(f), "--out", str(out), "-q")
    one_line(result, 2, "get no private samples")
    assert not out.exists()
    out.mkdir()
    (out / "mine.txt").write_text("a user's file")
    assert cli("run", str(f), "--out", str(out), "-q").returncode == 2
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]  # nothing else left behind
    tiny["data"]["public_fraction"] = 0.3
    tiny["data"]["dataset"]["train_size"] = 600
    f.write_text(yaml.safe_dump(tiny))
    assert cli("run", str(f), "--out", str(out), "-q").returncode == 0


def test_api_misuse_is_one_clear_exception():
    for bad in (None, 42, 3.5):
        with pytest.raises(ms.MhdSimError, match="scenario: expected a file path"):
            ms.load(bad)
    assert ms.load("straggler", set="duration=5").duration == 5.0
    with pytest.raises(ms.MhdSimError, match="set: expected a mapping"):
        ms.load("straggler", set=5)
    with pytest.raises(ms.MhdSimError, match="seed: expected an integer"):
        ms.load("straggler", seed="one")


def test_the_reference_has_every_section_it_points_to():
    page = (Path(__file__).resolve().parent.parent / "docs" / "scenario-reference.md").read_text()
    for section in ("## network.queue", "## network.transport", "## algorithm", "### `fedavg`"):
        assert section in page


# --- the fault drill: SIGKILL at several moments -----------------------------------------------


def start(scenario: str, out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*MHD_SIM, "run", scenario, "--out", str(out), "-q", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def kill_when(proc: subprocess.Popen, ready, limit: float = 90) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds."""
    deadline = time.time() + limit
    while not ready():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline, "never got there"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def tools_answer_in_one_line(run: Path) -> None:
    """Every tool on a killed run: works on what it recorded and says so, or one line."""
    status = ms.open_run(run).status
    assert status.state == "killed" and status.partial
    for args, code, text in (
        (["plot", str(run), "-o", str(run.parent / "c.png")], 0, None),
        (["plot", str(run), "--kind", "agents", "-o", str(run.parent / "a.png")], 2, "killed"),
        (["report", str(run)], 2, "killed"),
        (["animate", str(run), "-o", str(run.parent / "r.gif")], 2, "killed"),
    ):
        result = cli(*args)
        if text is None:
            assert result.returncode == 0 and "note:" in result.stderr, result.stderr
            assert "as far as it got" in result.stderr
        else:
            one_line(result, code, text)
    with pytest.raises(ms.MhdSimError, match="killed"):
        _ = ms.open_run(run).summary


SLOW = ["--set", "duration=60", "--set", "eval.every=2"]


@pytest.mark.slow  # the kill drill: whole runs killed and rerun
def test_kill_during_set_up_mid_run_and_while_plotting(tmp_path):
    # during set-up: the status says running, and nothing was recorded yet
    run = tmp_path / "setup"
    proc = start("straggler", run, *SLOW)
    kill_when(proc, lambda: (run / "status.json").is_file())
    assert ms.open_run(run).status.state == "killed"
    one_line(cli("report", str(run)), 2, "killed")
    # mid-run: two evaluations in
    run = tmp_path / "mid"
    proc = start("straggler", run, *SLOW)
    kill_when(proc, lambda: _evaluations(run) >= 3)
    tools_answer_in_one_line(run)
    figure = ms.open_run(run).plot("curves")  # the API draws what it recorded, as curves
    assert sum(len(ax.lines) for ax in figure.axes) >= 2
    # rerun with --overwrite: a whole run, done
    assert cli("run", "straggler", "--out", str(run), "-q", "--overwrite",
               "--set", "duration=20").returncode == 0  # fmt: skip
    assert ms.open_run(run).status.state == "done" and ms.open_run(run).summary["sim_time"] == 20
    # while drawing its figures: not done, and a sweep runs such a point again
    run = tmp_path / "plots"
    proc = start("straggler", run, "--set", "duration=20")
    kill_when(proc, lambda: any((run / "plots").glob("*.png")) if (run / "plots").is_dir() else 0)
    assert ms.open_run(run).status.state == "killed"


def _evaluations(run: Path) -> int:
    try:
        return len({line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()})
    except OSError:
        return 0


@pytest.mark.slow  # the kill drill: whole runs killed and rerun
def test_a_sweep_point_killed_while_plotting_is_run_again_on_resume(tmp_path, tiny):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(tiny))
    out = tmp_path / "sweep"
    args = [
        "sweep",
        str(f),
        "--grid",
        "algorithm.heads=2,3",
        "--out",
        str(out),
        "-q",
        "--jobs",
        "1",
    ]
    assert cli(*args).returncode == 0
    point = next((out / "runs").iterdir())
    status = json.loads((point / "status.json").read_text())
    (point / "status.json").write_text(json.dumps({**status, "state": "running", "pid": 2**22 + 7}))
    assert ms.open_run(point).status.state == "killed"  # as if killed while drawing
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert ms.open_run(point).status.state == "done"
    assert "2 points: 1 run, 1 kept from before" in result.output


def test_status_keeps_the_runs_start_and_pid_as_it_goes(tmp_path, monkeypatch):
    from mhd_sim.record import status

    clock = iter(["t0", "t0", "t1", "t2"])
    monkeypatch.setattr(status, "_now", lambda: next(clock))
    (tmp_path / "status.json").write_text(json.dumps({"state": "done", "pid": 1, "started": "x"}))
    status.start(tmp_path, 60.0)  # a new run replaces an old run's status
    status.write(tmp_path, "running", sim_time=10.0)
    status.write(tmp_path, "done", sim_time=60.0)
    data = json.loads((tmp_path / "status.json").read_text())
    assert data["started"] == "t0" and data["updated"] == "t2" and data["pid"] == os.getpid()
    assert status.read(tmp_path).state == "done" and data["sim_time"] == 60.0
