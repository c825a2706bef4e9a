"""The first minutes of a new user: a command line that starts at once, typos answered with a
suggestion, timing-only output that says what it is, temporary runs that clean up after
themselves, notebooks that run headless, figures scaled to what happened."""

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest
from typer.testing import CliRunner

import mhd_sim as ms
from mhd_sim.cli import app
from mhd_sim.scenario import validate

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "matplotlib", "pandas")


def loaded_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter has loaded after running ``code``."""
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "COLUMNS": "100"})  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.split("\n")[-2].split()


def test_importing_the_command_line_loads_neither_torch_matplotlib_nor_pandas():
    assert loaded_after("import mhd_sim.cli") == []
    assert loaded_after("import mhd_sim") == []


@pytest.mark.parametrize(
    "args", [["--help"], ["run", "--help"], ["scenarios"], ["schema"], ["validate", "straggler"]]
)
def test_help_list_schema_and_validate_load_neither_torch_nor_matplotlib(args):
    code = (
        "import contextlib, io\nfrom mhd_sim.cli import main\nsys.argv = ['mhd-sim', "
        f"*{args!r}]\nwith contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main()\n    except SystemExit as e:\n        assert not e.code, e.code"
    )
    loaded = loaded_after(code)
    assert "torch" not in loaded and "matplotlib" not in loaded, loaded


def test_a_notebook_still_gets_the_whole_api_from_import_mhd_sim():
    assert {"load", "simulate", "open_run", "sweep", "Run", "Scenario"} <= set(dir(ms))
    assert ms.load("straggler").name == "straggler"


@pytest.mark.parametrize(
    "args, suggestion",
    [
        (["run", "stragler"], "did you mean straggler?"),
        (["validate", "straggler", "--set", "network.bandwith=1e6"], "did you mean bandwidth?"),
        (["validate", "straggler", "--set", "network.topology.kind=rign"], "did you mean ring?"),
        (["validate", "straggler", "--set", "algorithm.name=mdh"], "did you mean mhd?"),
        (["validate", "straggler", "--set", "data.partition.kind=label_skw"],
         "did you mean label_skew?"),
        (["validate", "straggler", "--set", "data.dataset.kind=mnist_1d"],
         "did you mean mnist1d?"),
        (["validate", "straggler", "--set", "agents.model.kind=cnn_1d"], "did you mean cnn1d?"),
        (["rnu", "straggler"], "Did you mean 'run'?"),
    ],
)  # fmt: skip
def test_typos_get_a_suggestion_in_one_line(args, suggestion):
    env = {**os.environ, "COLUMNS": "300"}
    out = subprocess.run([sys.executable, "-m", "mhd_sim", *args], capture_output=True,
                         text=True, timeout=120, env=env)  # fmt: skip
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 2 and len(errors) == 1 and suggestion in errors[0], out.stderr


def test_timing_only_output_says_what_it_is(tmp_path, tiny):
    import yaml

    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(tiny))
    result = CliRunner().invoke(app, ["run", str(f), "--timing-only", "--out",
                                      str(tmp_path / "t"), "-q"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "timing only (no training, no accuracy)" in result.output
    assert "private acc" not in result.output  # no empty accuracy table
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert summary["timing_only"] is True and "final" not in summary
    assert all("shared_acc" not in a for a in summary["agents"])


def test_temporary_run_directories_are_removed_unless_kept(tiny):
    sc = validate(tiny)
    with ms.simulate(sc, progress=False, plots=False) as run:
        path = run.path
        assert (path / "summary.json").is_file()
    assert not path.exists()
    kept = ms.simulate(sc, progress=False, plots=False, keep=True)
    kept.close()
    assert kept.path.exists()
    code = ("import mhd_sim as ms, yaml, sys\nfrom mhd_sim.scenario import validate\n"
            "sc = validate(yaml.safe_load(sys.stdin.read()))\n"
            "print(ms.simulate(sc, progress=False, plots=False).path)")  # fmt: skip
    import yaml

    out = subprocess.run([sys.executable, "-c", code], input=yaml.safe_dump(tiny),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert not Path(out.stdout.strip()).exists()  # removed when the process ended


@pytest.mark.slow  # a notebook through nbconvert
@pytest.mark.xdist_group("kernels")  # one Jupyter kernel at a time (tests/test_notebooks.py)
def test_a_notebook_runs_headless_through_nbconvert(tmp_path):
    notebook = ROOT / "docs" / "notebooks" / "01-quickstart.ipynb"
    jupyter = Path(sys.executable).parent / "jupyter"
    out = subprocess.run([str(jupyter), "nbconvert", "--to", "notebook", "--execute",
                          str(notebook), "--output-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    executed = json.loads((tmp_path / notebook.name).read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    gifs = [o for o in outputs if "image/gif" in o.get("data", {})]
    assert len(images) >= 2 and len(gifs) == 1  # plots inline, one animation


def test_figures_are_scaled_to_what_happened(tmp_path, tiny):
    """network.png's axes fit the utilization reached; topology.png marks the named group and
    spans the accuracies reached; the accuracy figure names its best head."""
    tiny["duration"] = 10.0
    run = ms.simulate(validate(tiny), tmp_path / "run", progress=False)
    net = run.plot("network")
    top = net.axes[0].get_ylim()[1]
    assert top < 1.0 and top >= run.network.utilization.max()
    topo = run.plot("topology")
    assert [t.get_text() for t in topo.axes[0].get_legend().get_texts()] == [
        "slow (1)",
        "default (3)",
    ]
    low, high = topo.axes[1].get_ylim()  # the colour bar spans the accuracies reached
    accs = [a["shared_acc"][run.summary["final"]["best_head"]] for a in run.summary["agents"]]
    assert max(0, min(accs) - 0.1) <= low <= min(accs) and max(accs) <= high <= max(accs) + 0.1
    curves = run.plot("curves")
    labels = [t.get_text() for t in curves.axes[0].get_legend().get_texts()]
    assert sum("best" in label for label in labels) == 1


def test_a_yaml_boolean_where_a_word_was_meant_is_explained():
    """`--set agents.churn=yes`: YAML reads the bare word as true; the one line says so."""
    args = [sys.executable, "-m", "mhd_sim", "validate", "straggler", "--set", "agents.churn=yes"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 2 and len(errors) == 1, out.stderr
    why = "got True (bare yes/no/on/off are YAML booleans: quote it)"
    assert why in errors[0]


def test_help_lines_break_at_words_and_the_list_is_whole_when_piped():
    """`mhd-sim --help` gives each command's first sentence, broken only where the terminal
    ends; `mhd-sim scenarios` piped prints every description whole (a terminal cuts them)."""
    env = {**os.environ, "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "mhd_sim", "--help"], capture_output=True,
                         text=True, timeout=60, env=env).stdout  # fmt: skip
    line = next(ln for ln in out.splitlines() if " validate " in ln)
    assert "label counts." in line  # one line at 200 columns: no break written into the text
    listed = subprocess.run([sys.executable, "-m", "mhd_sim", "scenarios"], capture_output=True,
                            text=True, timeout=60).stdout  # fmt: skip
    from mhd_sim.scenario import bundled

    for name in bundled.names():
        assert f"{name}  " in listed and bundled.about(name) in listed
