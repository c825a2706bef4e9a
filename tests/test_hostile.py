"""Hostile input through the command line, as a user (or an attacker's mirror) brings it:
each answer is one line and exit 2, within 10 s and 1 GiB of address space, and nothing in
a file runs code."""

import os
import pickle
import resource
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import yaml
from test_variants import write_cifar

LIMIT_BYTES = 1 << 30
LIMIT_SECONDS = 10


def _bounded() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))


def mhd_sim(*args: str) -> subprocess.CompletedProcess:
    """The command line in its own process, under the issue's bounds of time and memory."""
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "mhd_sim", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=LIMIT_SECONDS,
                          preexec_fn=_bounded)  # fmt: skip


def refused(result: subprocess.CompletedProcess, *words: str) -> str:
    """The one error line, after checking the exit code, that nothing else was said and that
    no traceback or internal error leaked."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert len(lines[0]) < 400, lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


class Evil:
    """What a crafted pickle holds: loading it calls a function of the attacker's choice."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_cifar_pickle_that_runs_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "PWNED"
    root = write_cifar(tmp_path / "cifar")
    (root / "data_batch_1").write_bytes(
        pickle.dumps({b"data": Evil(marker), b"labels": [0]}, protocol=2)
    )
    for command in ("validate", "run"):
        result = mhd_sim(
            command, "straggler", "--set", "data.dataset.kind=cifar10",
            "--set", f"data.dataset.path={root}", "--set", "agents.model.kind=cnn2d",
            *(["--out", tmp_path / "run"] if command == "run" else []),
        )  # fmt: skip
        refused(result, "data_batch_1", "posix.system", "refused")
        assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_the_official_format_still_loads_in_every_pickle_protocol(tmp_path, protocol):
    root = write_cifar(tmp_path / "cifar", n=12)
    for f in root.iterdir():
        f.write_bytes(pickle.dumps(pickle.loads(f.read_bytes()), protocol=protocol))
    result = mhd_sim(
        "validate", "straggler", "--set", "data.dataset.kind=cifar10",
        "--set", f"data.dataset.path={root}", "--set", "agents.model.kind=cnn2d",
        "--set", "agents.count=2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "cifar10: 60 training samples" in result.stdout


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ({b"data": np.zeros((10, 3072), np.uint8), b"labels": 3}, ["field labels is int"]),
        ({b"data": np.zeros((10, 3072), np.uint8), b"labels": [0] * 9}, ["9 values", "10"]),
        ({b"data": np.zeros((10, 3072), np.uint8), b"labels": [-1] * 10}, [">= 0"]),
        ({b"data": np.zeros((10, 3072), np.uint8), b"labels": [99] * 10}, ["label 99"]),
        ({b"data": b"\x00" * 30720, b"labels": [0] * 10}, ["field data has shape bytes"]),
        ([1, 2, 3], ["official python format"]),
    ],
)
def test_a_malformed_cifar_batch_names_the_file_and_the_field(tmp_path, content, words):
    root = write_cifar(tmp_path / "cifar", n=10)
    (root / "data_batch_2").write_bytes(pickle.dumps(content))
    result = mhd_sim(
        "validate", "straggler", "--set", "data.dataset.kind=cifar10",
        "--set", f"data.dataset.path={root}", "--set", "agents.model.kind=cnn2d",
    )  # fmt: skip
    refused(result, "cifar10", *words)


def laughs(depth: int = 9) -> str:
    """The "billion laughs": each alias holds nine of the one before, 9**depth values."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, depth):
        lines.append(f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\nname: *a{depth - 1}\n"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (laughs(), ["expands to more than 200,000 values"]),
        ("name: " + "[" * 5000 + "]" * 5000 + "\n", ["nested more than 100 levels"]),
        ("name: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n", ["nested more than 100 levels"]),
        ("name: x\n" + "# padding\n" * 500_000, ["larger than 4,194,304 bytes"]),
        ("!!python/object/apply:os.system ['touch PWNED']\n", ["not valid YAML"]),
        ("- just\n- a list\n", ["expected a mapping of settings"]),
    ],
)
def test_a_scenario_that_eats_memory_or_stack_is_refused_with_its_figure(tmp_path, text, words):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    refused(mhd_sim("validate", f), str(f), *words)
    assert not (tmp_path / "PWNED").exists()


def test_an_override_that_multiplies_itself_is_refused(tmp_path):
    value = "[&a [1,1,1,1,1,1,1,1,1,1], " + ", ".join(
        f"&{b} [" + ", ".join([f"*{a}"] * 10) + "]" for a, b in zip("abcde", "bcdef")
    )
    result = mhd_sim("validate", "straggler", "--set", f"name={value}]")
    refused(result, "--set", "expands to more than 200,000 values")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("name: café\n".encode("latin-1"), ["not UTF-8 text", "0xe9"]),
        ("name: x\n".encode("utf-16"), ["binary, not text"]),
        (bytes(range(256)) * 8, ["binary, not text"]),
    ],
)
def test_a_scenario_in_another_encoding_is_one_line(tmp_path, data, words):
    f = tmp_path / "s.yaml"
    f.write_bytes(data)
    refused(mhd_sim("validate", f), str(f), *words)


def test_a_utf8_scenario_with_a_byte_order_mark_reads(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_bytes("name: café\nduration: 60\n".encode("utf-8-sig"))
    result = mhd_sim("validate", f, "--no-labels")
    assert result.returncode == 0 and "name: café" in result.stdout, result.stderr


def write_npz(path, **arrays):
    base = {
        "x_train": np.zeros((100, 4), np.float32),
        "y_train": np.arange(100) % 4,
        "x_test": np.zeros((20, 4), np.float32),
        "y_test": np.arange(20) % 4,
    }
    np.savez(path, **(base | arrays))
    return path


def npz_run(path, *more: str) -> subprocess.CompletedProcess:
    return mhd_sim(
        "validate", "straggler", "--set", "data.dataset.kind=npz",
        "--set", f"data.dataset.path={path}", "--set", "agents.model.kind=mlp", *more,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"y_train": np.r_[np.zeros(99, int), 2_000_000_000]}, ["needs about", "TB"]),
        ({"y_train": -np.ones(100, int)}, ["labels go down to -1"]),
        ({"y_train": np.zeros((100, 2), int)}, ["y_train has shape (100, 2)"]),
        ({"y_test": np.zeros(20, np.float32)}, ["y_test", "float32", "integer label"]),
        ({"x_train": np.zeros((99, 4), np.float32)}, ["x_train has shape (99, 4)"]),
        ({"x_test": np.zeros((20, 5), np.float32)}, ["must be alike"]),
        ({"x_train": np.array([None] * 100, dtype=object).reshape(100, 1)}, ["x_train"]),
    ],
)
def test_a_malformed_or_huge_npz_is_refused_before_it_is_loaded(tmp_path, arrays, words):
    refused(npz_run(write_npz(tmp_path / "d.npz", **arrays)), *words)


def test_an_npz_whose_header_claims_terabytes_is_refused_by_the_budget(tmp_path):
    path = tmp_path / "d.npz"
    with np.load(write_npz(tmp_path / "small.npz")) as small, zipfile.ZipFile(path, "w") as z:
        for name in ("y_train", "y_test"):
            with z.open(f"{name}.npy", "w") as f:
                np.lib.format.write_array(f, small[name])
        for name in ("x_train", "x_test"):  # headers alone: the data they claim is not there
            with z.open(f"{name}.npy", "w") as f:
                shape = (len(small["y" + name[1:]]), 10**10)
                header = {"descr": "<f4", "fortran_order": False, "shape": shape}
                np.lib.format.write_array_header_1_0(f, header)
    refused(npz_run(path), "needs about", "TB")


def test_a_binary_edge_list_is_one_line(tmp_path):
    edges = tmp_path / "g.edges"
    edges.write_bytes(bytes(range(256)) * 4)
    result = mhd_sim(
        "validate", "straggler", "--set", "network.topology.kind=edges",
        "--set", f"network.topology.path={edges}",
    )  # fmt: skip
    refused(result, "edge list is binary")


def test_a_refused_scenario_says_nothing_of_it_on_stdout(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"name": "x", "duration": [list(range(50))] * 3}))
    line = refused(mhd_sim("validate", f), "duration")
    assert line.endswith("…") and len(line) < 200


def test_a_run_directory_with_hostile_json_is_one_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text('{"state": "done"}')
    (run / "summary.json").write_text("[" * 100_000 + "]" * 100_000)
    for command in ("report", "animate"):
        refused(mhd_sim(command, run), "summary.json", "nests too deeply")


def test_a_sweep_grid_that_explodes_is_refused_with_its_count(tmp_path):
    values = ",".join(str(v) for v in range(1, 201))
    losses = ",".join(f"{v / 100:g}" for v in range(100))
    result = mhd_sim("sweep", "straggler", "--grid", f"duration={values}",
                     "--grid", f"network.loss={losses}", "--out", tmp_path / "sweep")  # fmt: skip
    refused(result, "20,000 points (200 × 100 × 1 seeds)", "at most 10,000")


def test_a_grid_of_broken_points_lists_a_few_and_counts_the_rest(tmp_path):
    values = ",".join(str(-v) for v in range(1, 60))  # every duration refused
    result = mhd_sim("sweep", "straggler", "--grid", f"duration={values}",
                     "--out", tmp_path / "sweep")  # fmt: skip
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert result.returncode == 2 and len(lines) == 21, result.stderr[-1000:]
    assert lines[-1] == "error: … and 39 more problems"
