"""Previews at any size: a timing-only run needs no private samples, says what it skipped, and
a full run still refuses agents without data in one short line."""

import os
import subprocess
import sys

import pytest
import yaml

SMALL = {  # 40 agents over 100 training samples: most get none
    "name": "crowd",
    "duration": 4.0,
    "data": {
        "dataset": {"kind": "synthetic", "classes": 4, "dim": 8, "train_size": 100,
                    "test_size": 40},
        "partition": {"kind": "label_skew", "skew": 0.9, "classes_per_agent": 1},
    },
    "agents": {"count": 40, "model": {"kind": "mlp", "hidden": [8]}, "speed": 2.0e6},
    "network": {"topology": {"kind": "random_regular", "degree": 4}},
    "algorithm": {"name": "mhd", "heads": 2, "share_every": 2, "share_size": 16},
    "training": {"batch_size": 4, "public_batch_size": 8},
}  # fmt: skip


def mhd_sim(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "mhd_sim", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_a_preview_runs_agents_without_data_and_says_so(tmp_path):
    f = tmp_path / "crowd.yaml"
    f.write_text(yaml.safe_dump(SMALL))
    preview = mhd_sim("run", f, "--timing-only", "-q", "--out", tmp_path / "preview")
    assert preview.returncode == 0, preview.stderr
    (warning,) = [ln for ln in preview.stderr.splitlines() if "no private samples" in ln]
    assert "of 40 agents have no private samples" in warning and "a full run refuses" in warning
    assert (tmp_path / "preview" / "events.csv").stat().st_size > 0
    full = mhd_sim("run", f, "-q", "--out", tmp_path / "full")
    errors = [ln for ln in full.stderr.splitlines() if ln.startswith("error:")]
    assert full.returncode == 2 and len(errors) == 1, full.stderr
    assert "of 40 agents get no private samples (agents " in errors[0]
    assert len(errors[0]) <= 200


@pytest.mark.slow
def test_the_10000_agent_preview_of_the_straggler_scenario_runs(tmp_path):
    result = mhd_sim(
        "run", "straggler", "--timing-only", "-q", "--out", tmp_path / "run",
        "--set", "agents.count=10000", "--set", "agents.groups=[]",
        "--set", "network.topology={kind: random_regular, degree: 10}", "--set", "duration=2",
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "10,000 agents have no private samples" in result.stderr
    assert "timing only" in result.stdout and "events" in result.stdout


def test_the_100000_agent_preview_fits_this_machines_24_gb():
    """The memory estimate of a 100,000-agent preview of the straggler scenario stays under
    20 GB: a cached prediction's time is an int32 index into the messages' times, where a
    float64 per entry made it 30 GB and the check refused it. Its run measured a 19.7 GB
    peak for one simulated second on 8 December (every agent hears all 10 neighbours within
    that second, so every plan's table has 12 columns: 13.8 GB, and the plans' walks through
    the public set 2.6 GB), against an estimate of 18.8 GB."""
    from mhd_sim.scenario import budget, load

    sc = load("straggler", [
        "agents.count=100000", "agents.groups=[]",
        "network.topology={kind: random_regular, degree: 10}", "duration=1",
    ])  # fmt: skip
    estimate = budget.estimate(sc, timing_only=True)
    assert 5e9 < estimate.total < 20e9
    assert estimate.memory["caches of peers' predictions"] < 15e9
    assert 2e9 < estimate.memory["plans' public walks"] < 3e9
