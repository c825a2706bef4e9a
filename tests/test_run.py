import json

import pandas as pd
import pytest
import yaml
from conftest import cli_run
from typer.testing import CliRunner

from mhd_sim.cli import app
from mhd_sim.learning.distillation import messages
from mhd_sim.record.run_directory import EVENT_COLUMNS, METRIC_COLUMNS


def run(tmp_path, scenario: dict, name: str = "run", *args: str):
    result, out = cli_run(tmp_path, scenario, name, *args)
    assert result.exit_code == 0, result.output
    return out


def test_tiny_run_writes_the_run_directory_contract(tmp_path, tiny):
    out = run(tmp_path, tiny)
    for name in (
        "scenario.yaml",
        "metrics.csv",
        "events.csv",
        "summary.json",
        "plots/accuracy_vs_time.png",
        "plots/accuracy_vs_bytes.png",
        "plots/agents.png",
        "plots/topology.png",
        "topology.edges",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    metrics, events = pd.read_csv(out / "metrics.csv"), pd.read_csv(out / "events.csv")
    assert tuple(metrics.columns) == METRIC_COLUMNS and tuple(events.columns) == EVENT_COLUMNS
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sim_time"] == tiny["duration"] and summary["seed"] == tiny["seed"]
    assert summary["events"] == len(events)
    # one evaluation at t = 0, every 5 s and at the end, for each agent and head
    assert sorted(metrics.time.unique()) == [0.0, 5.0, 10.0, 15.0, 20.0]
    assert len(metrics) == 5 * 4 * 3
    assert set(events.event) >= {"send", "deliver", "drop", "step", "distill"}
    resolved = yaml.safe_load((out / "scenario.yaml").read_text())
    assert resolved["algorithm"]["aggregation"] == "max_confidence"  # defaults are written out


def test_bytes_are_the_encoded_sizes_and_add_up(tmp_path, tiny):
    out = run(tmp_path, tiny)
    events = pd.read_csv(out / "events.csv")
    summary = json.loads((out / "summary.json").read_text())
    sends = events[events.event == "send"]
    classes, heads_sent = tiny["data"]["dataset"]["classes"], tiny["algorithm"]["heads"] - 1
    assert (
        sends.bytes == messages.encoded_size(32, heads_sent, classes, "float16", confidence=True)
    ).all()
    # every send event is a message handed to an uplink; all but those still on it have left
    assert summary["bytes_offered"] == sends.bytes.sum()
    queued = summary["bytes_by_fate"]["queued_at_end"]
    assert summary["bytes_sent"] == summary["bytes_offered"] - queued
    assert summary["messages"]["offered"] == len(sends)
    m = summary["messages"]
    in_flight = m["sent"] - m["delivered"] - m["dropped"]
    assert 0 <= in_flight <= 4 * 2  # at most a few messages still on the wire at the end
    assert m["dropped_by_reason"]["loss"] == (events.reason == "loss").sum() > 0
    last = pd.read_csv(out / "metrics.csv").query("time == time.max() and head == 0")
    assert last.bytes_sent.sum() == summary["bytes_sent"]
    assert last.bytes_received.sum() == events[events.event == "deliver"].bytes.sum()


def test_same_seed_same_files_other_seed_other_files(tmp_path, tiny):
    a, b = run(tmp_path, tiny, "a"), run(tmp_path, tiny, "b")
    c = run(tmp_path, tiny, "c", "--seed", "4")
    for name in ("metrics.csv", "events.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
        assert (a / name).read_bytes() != (c / name).read_bytes()


def test_straggler_steps_and_shares_less(tmp_path, tiny):
    summary = json.loads((run(tmp_path, tiny) / "summary.json").read_text())
    slow, fast = summary["agents"][0], summary["agents"][1:]
    assert slow["group"] == "slow"
    assert all(slow["steps"] * 2 < a["steps"] for a in fast)
    assert all(slow["messages_sent"] < a["messages_sent"] for a in fast)


def test_churn_takes_agents_offline_and_they_receive_nothing_meanwhile(tmp_path, tiny):
    tiny["agents"]["churn"] = {"up_mean": 4.0, "down_mean": 2.0}
    tiny["network"]["loss"] = 0.0
    out = run(tmp_path, tiny)
    events = pd.read_csv(out / "events.csv")
    assert (events.event == "offline").sum() > 0 and (events.event == "online").sum() > 0
    for agent, ev in events.groupby("agent"):
        online, rows = True, ev.itertuples()
        for r in rows:
            if r.event == "offline":
                online = False
            elif r.event == "online":
                online = True
            elif r.event in ("deliver", "step", "send"):
                assert online, f"agent {agent} had a {r.event} at t={r.time} while offline"
    assert (
        json.loads((out / "summary.json").read_text())["messages"]["dropped_by_reason"].get(
            "offline", 0
        )
        > 0
    )


def test_isolated_sends_nothing(tmp_path, tiny):
    out = run(tmp_path, tiny, "iso", "--set", "algorithm.name=isolated")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["messages"]["sent"] == 0 and len(summary["final"]["mean_shared_acc"]) == 1


def test_run_refuses_to_overwrite_a_run(tmp_path, tiny):
    run(tmp_path, tiny, "x")
    f = tmp_path / "x.yaml"
    result = CliRunner().invoke(app, ["run", str(f), "--out", str(tmp_path / "x"), "-q"])
    assert result.exit_code == 2 and "already holds a run" in result.output


def test_setup_errors_are_bad_input(tmp_path, tiny):
    tiny["network"]["topology"] = {
        "kind": "random_regular",
        "degree": 3,
    }  # 4·3 fine; 5 agents would not be
    tiny["agents"]["count"] = 5
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(tiny))
    result = CliRunner().invoke(app, ["run", str(f), "--out", str(tmp_path / "bad"), "-q"])
    assert result.exit_code == 2 and "regular" in result.output and "Traceback" not in result.output


def test_npz_dataset_runs_and_a_malformed_one_is_bad_input(tmp_path, tiny):
    import numpy as np

    rng = np.random.default_rng(0)
    good, bad = tmp_path / "mine.npz", tmp_path / "broken.npz"
    np.savez(
        good,
        x_train=rng.normal(size=(300, 6)),
        y_train=rng.integers(0, 3, 300),
        x_test=rng.normal(size=(60, 6)),
        y_test=rng.integers(0, 3, 60),
    )
    np.savez(bad, x=rng.normal(size=(10, 6)))
    tiny["duration"] = 5.0
    tiny["data"]["dataset"] = {"kind": "npz", "path": str(good)}
    summary = json.loads((run(tmp_path, tiny, "npz") / "summary.json").read_text())
    assert summary["steps"] > 0
    tiny["data"]["dataset"]["path"] = str(bad)
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(tiny))
    result = CliRunner().invoke(app, ["run", str(f), "--out", str(tmp_path / "bad"), "-q"])
    assert result.exit_code == 2 and "missing array(s) x_train, y_train" in result.output


def test_an_interrupted_run_keeps_what_it_recorded(tmp_path, tiny):
    from mhd_sim.api import build_simulation
    from mhd_sim.record.run_directory import RunDirectory
    from mhd_sim.scenario import validate

    record = RunDirectory(tmp_path / "cut")
    sim = build_simulation(validate(tiny), record)

    def stop_after_12s(now, events, messages):
        if now >= 12.0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sim.run(stop_after_12s)
    # nothing closed the files: what is on disk is what the run flushed at its evaluations
    metrics = pd.read_csv(tmp_path / "cut" / "metrics.csv")
    assert sorted(metrics.time.unique()) == [0.0, 5.0, 10.0]
    assert len(pd.read_csv(tmp_path / "cut" / "events.csv")) > 0
    assert (tmp_path / "cut" / "scenario.yaml").is_file()
    record.close()


def test_events_past_one_batch_go_through_the_writer_process_unchanged(tmp_path, tiny, monkeypatch):
    from mhd_sim.record import run_directory as record

    direct = run(tmp_path, tiny, "direct")
    started = []
    start = record.RunDirectory._start_writer
    monkeypatch.setattr(
        record.RunDirectory, "_start_writer", lambda self: started.append(1) or start(self)
    )
    monkeypatch.setattr(record, "BATCH", 50)
    via = run(tmp_path, tiny, "via")
    assert started and (via / "events.csv").read_bytes() == (direct / "events.csv").read_bytes()


def test_flush_waits_until_the_writer_has_every_event_in_the_file(tmp_path, monkeypatch):
    from mhd_sim.record import run_directory as record

    monkeypatch.setattr(record, "BATCH", 10)
    rd = record.RunDirectory(tmp_path / "r")
    for k in range(35):
        rd.event(k / 2, "step", k % 3)
    assert rd._writer is not None
    rd.flush()
    events = pd.read_csv(tmp_path / "r" / "events.csv")
    assert events.time.tolist() == [k / 2 for k in range(35)]
    rd.event(99.0, "online", 1)
    writer = rd._writer
    rd.close()
    assert writer.returncode == 0 and len(pd.read_csv(tmp_path / "r" / "events.csv")) == 36


def test_timing_only_from_the_command_line(tmp_path, tiny):
    out = run(tmp_path, tiny, "timing", "--timing-only")
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["timing_only"]
        and summary["messages"]["sent"] > 0
        and summary["staleness"]["p50"] > 0
    )
    assert (out / "plots" / "topology.png").is_file() and not (
        out / "plots" / "accuracy_vs_time.png"
    ).exists()


def test_a_collapsed_run_says_so_and_a_healthy_one_does_not(tmp_path, tiny):
    """The setting the issue found (paper_claims at skew 0.95 with distill_weight 2 on every
    auxiliary head): the loss stays finite, but the large steps kill the embedding's ReLU units
    and every head ends predicting one class. `mhd-sim run` says so in one warning line, and
    summary.json keeps it; the tiny run's healthy models give no such line."""
    sets = ["data.partition={kind: label_skew, skew: 0.95, classes_per_agent: 2}",
            "algorithm.distill_weight=2", "duration=40", "eval.every=10"]  # fmt: skip
    out = tmp_path / "collapsed"
    args = ["run", "paper_claims", "--out", str(out), *(a for s in sets for a in ("--set", s))]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if "agents collapsed" in ln]
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "agents" in lines[0]
    assert "lower training.lr or algorithm.distill_weight" in " ".join(result.output.split())
    summary = json.loads((out / "summary.json").read_text())
    assert any("collapsed" in w for w in summary["warnings"])
    last = pd.read_csv(out / "metrics.csv").query("time == time.max()")
    assert (last.groupby("agent").shared_acc.max() < 0.15).sum() >= 4  # chance: ten classes
    healthy = json.loads((run(tmp_path, tiny) / "summary.json").read_text())
    assert not any("collapsed" in w for w in healthy["warnings"])
