"""The Python API: the same runs as the command line, run directories read back, one
exception type for bad input."""

import json

import matplotlib
import pandas as pd
import pytest
from typer.testing import CliRunner

import mhd_sim as ms
from mhd_sim.cli import app

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "run"
    return ms.simulate(ms.load("straggler", set={"duration": 20}), out, progress=False)


def test_simulate_writes_what_the_command_line_writes(short_run, tmp_path):
    result = CliRunner().invoke(
        app, ["run", "straggler", "--set", "duration=20", "--out", str(tmp_path / "cli"), "-q"]
    )
    assert result.exit_code == 0, result.output
    ours = (short_run.path / "metrics.csv").read_bytes()
    assert ours == (tmp_path / "cli" / "metrics.csv").read_bytes()
    assert len(ours.splitlines()) > 8


def test_a_run_reads_its_directory(short_run):
    assert ms.open_run(short_run.path).summary == json.loads(
        (short_run.path / "summary.json").read_text()
    )
    assert short_run.summary["name"] == "straggler" and short_run.scenario.duration == 20
    assert set(short_run.metrics["head"]) == {0, 1, 2}
    assert {"send", "deliver", "step"} <= set(short_run.events["event"])
    assert (short_run.reach["hops"] >= 0).any() and set(short_run.reach["head"]) == {0, 1, 2}
    assert isinstance(short_run.network, pd.DataFrame) and len(short_run.network) > 8
    for kind in ms.api.RUN_FIGURES:
        fig = short_run.plot(kind)
        assert fig.axes, kind
    assert short_run.plot("curves", x="bytes").axes[0].get_xlabel().startswith("total bytes")


def test_out_none_makes_a_temporary_run_directory():
    run = ms.simulate(
        ms.load("straggler", set={"duration": 5, "agents.count": 3, "agents.groups": []}),
        progress=False,
        plots=False,
    )
    assert run.path.is_dir() and (run.path / "summary.json").is_file()
    assert run.summary["sim_time"] == 5


def test_bad_input_raises_one_exception_with_the_command_lines_message(tmp_path):
    with pytest.raises(ms.MhdSimError) as e:
        ms.load("straggler", set={"network.bandwidth": -3})
    assert str(e.value) == "network.bandwidth: must be >= 1, got -3" and e.value.code == 2
    result = CliRunner().invoke(app, ["validate", "straggler", "--set", "network.bandwidth=-3"])
    assert result.exit_code == 2 and str(e.value) in result.output
    with pytest.raises(ms.MhdSimError, match="no such scenario file"):
        ms.load(tmp_path / "missing.yaml")
    with pytest.raises(ms.MhdSimError, match="not a run directory"):
        ms.open_run(tmp_path)


def test_load_takes_a_loaded_scenario_and_overrides_it():
    sc = ms.load("straggler")
    again = ms.load(sc, set=["network.topology.kind=ring"], seed=4)
    assert again.network.topology.kind == "ring" and again.seed == 4
    assert again.agents == sc.agents


def test_sweep_returns_its_table(tmp_path):
    table = ms.sweep(
        "straggler",
        {"network.topology.kind": ["ring", "complete"]},
        out=tmp_path / "sw",
        set={"duration": 5, "agents.count": 4, "agents.groups": []},
        jobs=2,
    )
    assert list(table["network.topology.kind"]) == ["ring", "complete"]
    assert (table["status"] == "done").all() and (table["bytes_sent"] > 0).all()
