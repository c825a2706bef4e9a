"""MNIST-1D with many classes, and where the classes go: the template generator (seeded, the
package's own data at ten classes) and class placements with their errors."""

import numpy as np
import pytest
from typer.testing import CliRunner

from mhd_sim.cli import app
from mhd_sim.learning.data.datasets import DATASETS
from mhd_sim.learning.data.mnist1d_classes import generate, templates
from mhd_sim.learning.data.partitions import label_skew, placed_classes
from mhd_sim.scenario import ScenarioError, validate


def test_ten_classes_are_the_packages_own_data():
    from mnist1d.data import get_dataset_args, get_templates, make_dataset

    assert np.array_equal(templates(10)["x"], get_templates()["x"])
    args = get_dataset_args()
    args.num_samples, args.seed, args.train_split = 600, 7, 1.0
    made = make_dataset(args)
    x, y = generate(10, 600, 7)
    assert np.array_equal(x, made["x"].astype(np.float32)) and np.array_equal(y, made["y"])


def test_new_classes_are_seeded_and_whitened_as_the_digits():
    a, b, c = templates(30, 0)["x"], templates(30, 0)["x"], templates(30, 1)["x"]
    assert np.array_equal(a, b) and not np.array_equal(a[10:], c[10:])
    assert np.array_equal(a[:10], c[:10])  # the ten digits whatever the seed
    assert np.allclose(a[:, 0], 0) and np.allclose(a.std(1), 1 / 6)
    assert len({tuple(np.round(t, 6)) for t in a}) == 30  # thirty different classes


def test_a_dataset_of_many_classes(tmp_path, monkeypatch):
    monkeypatch.setenv("MHD_SIM_CACHE", str(tmp_path))
    rng = lambda: np.random.default_rng(3)  # noqa: E731
    d = DATASETS.get("mnist1d")(rng(), classes=40, samples=2000, template_seed=5)
    assert d.classes == 40 and d.x_train.shape[1:] == (40,)
    assert set(np.unique(d.y_train)) == set(range(40))
    again = DATASETS.get("mnist1d")(rng(), classes=40, samples=2000, template_seed=5)
    assert np.array_equal(d.x_test, again.x_test)  # from the cache, the same
    assert len(list(tmp_path.glob("mnist1d-40c-t5-2000-*.npz"))) == 1


def test_placements_consecutive_random_and_explicit():
    rng = np.random.default_rng(0)
    assert [c.tolist() for c in placed_classes("consecutive", 3, 10, 2, rng)] == [
        [0, 1], [2, 3], [4, 5]]  # fmt: skip
    four = placed_classes("random", 4, 100, 25, np.random.default_rng(1))
    five = placed_classes("random", 5, 100, 25, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(four, five))  # each agent its own stream
    assert all(len(set(c.tolist())) == 25 for c in four) and len({tuple(c) for c in four}) == 4
    labels = np.random.default_rng(2).integers(0, 6, size=6000)
    shards = label_skew(labels, 3, 6, np.random.default_rng(3), skew=1.0,
                        placement=[[0, 5], [1], [2, 3, 4]])  # fmt: skip
    held = [sorted(set(labels[s].tolist())) for s in shards]
    assert held == [[0, 5], [1], [2, 3, 4]]


@pytest.mark.parametrize(
    "placement, message",
    [
        ([[0, 1], [2]], "placement lists the classes of 2 agents; there are 4"),
        ([[0], [1], [2], [3, 10]], "agent 3 has class 10, but the dataset's classes are 0..3"),
        ([[0], [1, 1], [2], [3]], "agent 1 lists class 1 twice"),
        ([[0], [], [2], [3]], "agent 1 has no classes"),
        ([[0], [1], [-2], [3]], "agent 2: -2 is not a class"),
        ([[0], 1, [2], [3]], "agent 1: expected a list of classes, got 1"),
        ("everywhere", "must be consecutive, random or one list of classes per agent"),
    ],
)
def test_a_wrong_placement_is_one_line_naming_the_agent_and_the_class(tiny, placement, message):
    tiny["data"]["partition"] = {"kind": "label_skew", "placement": placement}
    with pytest.raises(ScenarioError) as e:
        validate(tiny)
    assert len(e.value.problems) == 1 and message in e.value.problems[0]
    assert e.value.problems[0].startswith("data.partition.placement")


def test_validate_shows_the_paper_regime():
    result = CliRunner().invoke(app, ["validate", "paper_regime",
                                      "--set", "data.dataset.samples=3000"])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "100 classes" in text and "270 public (10%)" in text
    table = [line.split() for line in result.output.splitlines() if line[:5].strip().isdigit()]
    assert len(table) == 8 and {row[2] for row in table} == {"25"}  # 25 main classes each
