import copy
import json
import os

# Two test workers share two cores, and their notebooks and command lines run in processes of
# their own: an OpenMP thread that spins while it waits for a core another process holds
# slowed a notebook tenfold once. Waiting threads sleep instead (read when torch loads; every
# process the tests start inherits it). It changes no result.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # tiny models: one thread is fastest, and CI may run other work beside us

TINY = {
    "name": "tiny",
    "seed": 3,
    "duration": 20.0,
    "data": {
        "dataset": {
            "kind": "synthetic",
            "classes": 4,
            "dim": 8,
            "train_size": 600,
            "test_size": 200,
        },
        "public_fraction": 0.3,
        "partition": {"kind": "label_skew", "skew": 0.9, "classes_per_agent": 1},
    },
    "agents": {
        "count": 4,
        "model": {"kind": "mlp", "hidden": [16]},
        "speed": 2.0e6,
        "groups": [{"name": "slow", "agents": [0], "speed": 5.0e5}],
    },
    "network": {"topology": {"kind": "ring"}, "latency": 0.01, "bandwidth": 2.0e5, "loss": 0.1},
    "algorithm": {"name": "mhd", "heads": 3, "share_every": 2, "share_size": 32},
    "training": {"batch_size": 8, "public_batch_size": 16, "lr": 0.1},
    "eval": {"every": 5.0},
}


@pytest.fixture
def tiny() -> dict:
    """A scenario small enough to run in about a second, exercising every layer."""
    return copy.deepcopy(TINY)


@pytest.fixture(scope="module")
def tiny_for_module() -> dict:
    """The tiny scenario, for module-scoped fixtures that build one run many tests read."""
    return copy.deepcopy(TINY)


def algorithm(sc: dict, name: str, **settings) -> dict:
    """The ``algorithm`` section of ``sc`` switched to ``name``, as ``--set algorithm.name=``
    switches it: the settings the new algorithm has too are kept, the others dropped."""
    from mhd_sim.scenario import apply_overrides

    sets = [f"algorithm.name={name}"] + [
        f"algorithm.{k}={json.dumps(v)}" for k, v in settings.items()
    ]
    return apply_overrides(sc, sets)["algorithm"]


def simulation(path, scenario, timing_only: bool = False, spy=None):
    """A whole run recorded into ``path``, for tests that look inside it: the ``Simulation``
    (its learners, network and coordinator) and its summary. ``scenario``: raw data or a
    validated Scenario; ``spy(sim)`` is called before it runs (``auto`` then runs per agent:
    a spy wraps the learners' own methods)."""
    from mhd_sim.api import build_simulation
    from mhd_sim.record.run_directory import RunDirectory
    from mhd_sim.scenario import Scenario, validate

    sc = scenario if isinstance(scenario, Scenario) else validate(scenario)
    if spy is not None and sc.engine == "auto":  # a spy looks inside the learners themselves
        sc = sc.model_copy(update={"engine": "per_agent"})
    record = RunDirectory(path)
    sim = build_simulation(sc, record, timing_only=timing_only)
    if spy is not None:
        spy(sim)
    summary = sim.run()
    record.close()
    return sim, summary


def cli_run(tmp_path, scenario: dict, name: str = "run", *args: str):
    """``mhd-sim run`` on ``scenario`` (written as YAML), as a user runs it: the result and the
    run directory."""
    import yaml
    from typer.testing import CliRunner

    from mhd_sim.cli import app

    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(scenario))
    out = tmp_path / name
    return CliRunner().invoke(app, ["run", str(f), "--out", str(out), "--quiet", *args]), out


@pytest.fixture
def simulate():
    """Runs through the public API, ``ms.simulate``, without progress bars: what most tests
    that need a finished run read (``.metrics``, ``.events``, ``.summary``, ``.plot``)."""
    import mhd_sim as ms
    from mhd_sim.scenario import validate

    def run(scenario: dict, out=None, **options):
        options.setdefault("progress", False)
        return ms.simulate(validate(scenario), out, **options)

    return run


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test starts, and ends, with torch on one thread: what a test runs in-process is
    per-agent arithmetic, whatever the tests before it set."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)
