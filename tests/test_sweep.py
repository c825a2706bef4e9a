"""mhd-sim sweep: one run per grid point and seed, resumable, failures reported, Ray = local."""

import json

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mhd_sim import sweeps as sw
from mhd_sim.cli import app
from mhd_sim.scenario import ScenarioError


def scenario_file(tmp_path, tiny):
    tiny["duration"] = 6.0
    tiny["eval"]["every"] = 3.0
    f = tmp_path / "tiny.yaml"
    f.write_text(yaml.safe_dump(tiny))
    return f


def invoke(*args):
    return CliRunner().invoke(app, ["sweep", *map(str, args), "--quiet"])


def test_grid_points_are_named_by_their_settings_and_validated_up_front(tmp_path, tiny):
    f = scenario_file(tmp_path, tiny)
    pts = sw.points(
        f, sw.parse_grid(["network.topology.kind=ring,complete", "algorithm.heads=2,3"]), 2
    )
    assert len(pts) == 8
    assert (
        pts[0].name == "kind=ring_heads=2_seed=0" and pts[-1].name == "kind=complete_heads=3_seed=1"
    )
    resolved = yaml.safe_load(pts[-1].scenario)
    assert (
        resolved["network"]["topology"]["kind"] == "complete"
        and resolved["algorithm"]["heads"] == 3
    )
    assert resolved["seed"] == 1
    with pytest.raises(ScenarioError) as e:
        sw.points(f, sw.parse_grid(["algorithm.heads=2,0"]), 1)
    assert any(p.startswith("heads=0_seed=0: algorithm.heads") for p in e.value.problems)
    result = invoke(f, "--grid", "algorithm.headz=2", "--out", tmp_path / "bad")
    assert result.exit_code == 2 and "headz" in result.output and not (tmp_path / "bad").exists()
    result = invoke("--resume", "--out", tmp_path / "none")
    assert result.exit_code == 2 and "holds no sweep" in result.output
    result = invoke(f, "--resume", "--out", tmp_path / "none")
    assert result.exit_code == 2 and "--resume reads the scenario" in result.output
    result = invoke(f, "--backend", "ray", "--address", "127.0.0.1:9", "--out", tmp_path / "n")
    assert result.exit_code == 2 and "no Ray cluster answers at 127.0.0.1:9" in result.output


@pytest.mark.slow  # a sweep killed and resumed (test_api's sweep keeps one in the fast lane)
def test_sweep_runs_every_point_reports_failures_and_resumes(tmp_path, tiny):
    f = scenario_file(tmp_path, tiny)
    out = tmp_path / "sw"
    args = [f, "--grid", "training.lr=0.05,1e6", "--seeds", "2", "--jobs", "2", "--out", out]
    result = invoke(*args)
    assert result.exit_code == 1, result.output  # lr 1e6 diverges: both seeds fail as they run
    assert "2 of 4 points failed" in result.output and "non-finite" in result.output
    index = pd.read_csv(out / "sweep.csv")
    assert list(index.point) == [
        "lr=0.05_seed=0",
        "lr=0.05_seed=1",
        "lr=1e6_seed=0",
        "lr=1e6_seed=1",
    ]
    assert list(index.status) == ["done", "done", "failed", "failed"]
    for _, row in index[
        index.status == "done"
    ].iterrows():  # the index carries each run's own figures
        summary = json.loads((out / "runs" / row.point / "summary.json").read_text())
        assert row.bytes_sent == summary["bytes_sent"] > 0
        assert row.best_head_shared_acc == pytest.approx(summary["final"]["best_head_shared_acc"])
    assert index.bytes_sent[0] != index.bytes_sent[1]  # the seeds differ

    # resume: an interrupted point reruns, finished points are kept, failed ones are tried again
    kept = out / "runs" / "lr=0.05_seed=0" / "summary.json"
    stamp = kept.stat().st_mtime_ns
    interrupted = out / "runs" / "lr=0.05_seed=1" / "status.json"  # as Ctrl-C leaves it
    interrupted.write_text(
        json.dumps({**json.loads(interrupted.read_text()), "state": "interrupted"})
    )
    result = invoke("--resume", "--out", out)  # its grid and seeds from sweep.json
    assert result.exit_code == 1
    assert "4 points: 1 run, 1 kept from before, 2 failed" in result.output, result.output
    assert kept.stat().st_mtime_ns == stamp
    assert json.loads(interrupted.read_text())["state"] == "done"


@pytest.mark.slow  # starts a local Ray instance
def test_ray_backend_gives_the_same_runs_as_local(tmp_path, tiny):
    pytest.importorskip("ray", reason="the Ray backend is an optional extra: pip install '.[ray]'")
    f = scenario_file(tmp_path, tiny)
    grid = ["--grid", "network.topology.kind=ring,complete", "--seeds", "2", "--jobs", "2"]
    assert invoke(f, *grid, "--out", tmp_path / "local").exit_code == 0
    result = invoke(f, *grid, "--out", tmp_path / "ray", "--backend", "ray")
    assert result.exit_code == 0, result.output
    local, ray = (
        pd.read_csv(tmp_path / d / "sweep.csv").drop(columns=["wall_time_s"])
        for d in ("local", "ray")
    )
    # the Ray instance the sweep started is pinned to loopback: Ray's own word for where each
    # point ran, not assumed
    assert set(ray.node) == {"127.0.0.1"} and set(local.node) == {"local"}
    pd.testing.assert_frame_equal(local.drop(columns="node"), ray.drop(columns="node"))
    for point in local.point:
        for name in ("metrics.csv", "events.csv"):
            assert (tmp_path / "local" / "runs" / point / name).read_bytes() == (
                tmp_path / "ray" / "runs" / point / name
            ).read_bytes()
