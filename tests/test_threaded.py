"""``engine: auto`` (the default) runs per-agent execution on every core: the files of
``engine: per_agent``, bit for bit, and says which it used."""

import json

import pytest
from conftest import algorithm, cli_run

FILES = ("metrics.csv", "events.csv", "teachers.csv", "reach.csv")


def summary(run) -> dict:
    return json.loads((run / "summary.json").read_text())


@pytest.mark.parametrize(
    "name, settings, threads",
    [
        ("mhd", {}, "2"),
        ("mhd", {"gate": "in_distribution", "calibrate": True}, "3"),  # the rules' passes
        ("distill", {}, "2"),
        ("isolated", {}, "2"),
    ],
)
def test_auto_writes_the_per_agent_files_bit_for_bit(tmp_path, tiny, name, settings, threads):
    """With churn (steps abandoned when an agent goes offline) and lossy links, through
    ``mhd-sim run``: every file equal, on two and three threads."""
    tiny["algorithm"] = algorithm(tiny, name, **settings)
    tiny["agents"]["churn"] = {"up_mean": 6.0, "down_mean": 2.0}
    done, alone = cli_run(tmp_path, {**tiny, "engine": "per_agent"}, "alone")
    assert done.exit_code == 0, done.output
    done, side_by_side = cli_run(tmp_path, tiny, "auto", "--threads", threads)
    assert done.exit_code == 0, done.output
    for f in FILES:
        assert (alone / f).read_bytes() == (side_by_side / f).read_bytes(), f
    assert summary(alone)["engine"] == "per_agent"
    assert summary(side_by_side)["engine"] == f"per-agent on {threads} threads"
    assert f"wall (per-agent on {threads} threads)" in " ".join(done.output.split())
    events = (alone / "events.csv").read_text()
    assert "offline" in events and ",step," in events  # churn did interrupt agents


def test_auto_runs_what_its_threads_cannot_per_agent_and_says_so(tmp_path, tiny):
    """FedAvg's rounds (weights, a server) are not queued: auto runs it per agent, one core."""
    tiny["algorithm"] = algorithm(tiny, "fedavg")
    done, run = cli_run(tmp_path, tiny, "fedavg")
    assert done.exit_code == 0, done.output
    assert summary(run)["engine"] == "per_agent"
    assert "wall (per_agent)" in " ".join(done.output.split())
