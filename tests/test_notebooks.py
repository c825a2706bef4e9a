"""Every notebook in docs/notebooks runs from start to end, headless, and draws its figures;
the copies in git carry no outputs."""

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "docs" / "notebooks").glob("*.ipynb"))


def test_the_five_notebooks_are_there_without_outputs():
    assert [p.stem for p in NOTEBOOKS] == [
        "01-quickstart",
        "02-stragglers",
        "03-topology-and-hops",
        "04-bandwidth-and-congestion",
        "05-churn-and-partitions",
    ]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), path.name
        assert "What to look at" in nb.cells[-1].source, path.name


# the quickstart runs through nbconvert, as the docs say to run one headless
# (tests/test_first_minutes.py); each notebook runs once in the suite
IN_PROCESS = [p for p in NOTEBOOKS if p.stem != "01-quickstart"]


@pytest.mark.slow  # a notebook in a kernel: a minute or more
@pytest.mark.xdist_group("kernels")  # one Jupyter kernel at a time: no two race for ports
@pytest.mark.parametrize("path", IN_PROCESS, ids=[p.stem for p in IN_PROCESS])
def test_notebook_runs_and_draws(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on any failing cell
    took = time.perf_counter() - start
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    gifs = [o for o in outputs if "image/gif" in o.get("data", {})]
    assert len(images) >= 2 and len(gifs) == 1, path.name  # plots inline, one animation
    print(f"{path.name}: {took:.1f} s")
