"""Datasets in their files' formats, partitions, models and the algorithm variants and baselines."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import algorithm, cli_run
from typer.testing import CliRunner

from mhd_sim.cli import app
from mhd_sim.learning.data.datasets import DATASETS
from mhd_sim.learning.data.partitions import PARTITIONS
from mhd_sim.learning.engines.population import build_learners
from mhd_sim.learning.models.backbones import BACKBONES
from mhd_sim.learning.models.headed import build
from mhd_sim.scenario import ScenarioError, validate


def write_cifar(root, kind="cifar10", n=40, corrupt=None):
    """Tiny CIFAR directories in the official python pickle format."""
    rng = np.random.default_rng(0)

    def batch(count, **labels):
        return {
            b"data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
            **{k.encode(): rng.integers(0, v, size=count).tolist() for k, v in labels.items()},
        }

    root.mkdir(parents=True, exist_ok=True)
    if kind == "cifar10":
        files = {f"data_batch_{i}": batch(n, labels=10) for i in range(1, 6)} | {
            "test_batch": batch(n, labels=10)
        }
    else:
        files = {name: batch(n, fine_labels=100, coarse_labels=20) for name in ("train", "test")}
    for name, content in files.items():
        (root / name).write_bytes(pickle.dumps(content))
    if corrupt:
        (root / corrupt).write_bytes(b"not a pickle")
    return root


def test_cifar10_and_cifar100_read_the_official_pickles(tmp_path):
    d = DATASETS.get("cifar10")(
        np.random.default_rng(0), path=write_cifar(tmp_path / "c10"), train_size=None
    )
    assert (
        d.x_train.shape == (200, 3, 32, 32)
        and d.x_test.shape == (40, 3, 32, 32)
        and d.classes == 10
    )
    assert abs(float(d.x_train.mean())) < 1e-3 and d.x_train.dtype == np.float32
    sub = DATASETS.get("cifar10")(np.random.default_rng(0), path=tmp_path / "c10", train_size=50)
    assert len(sub.y_train) == 50
    c100 = write_cifar(tmp_path / "c100", "cifar100")
    fine = DATASETS.get("cifar100")(
        np.random.default_rng(0), path=c100, labels="fine", train_size=None
    )
    coarse = DATASETS.get("cifar100")(
        np.random.default_rng(0), path=c100, labels="coarse", train_size=None
    )
    assert (fine.classes, coarse.classes) == (100, 20) and coarse.y_train.max() < 20


def test_cifar_errors_say_what_was_expected_where(tmp_path):
    load = DATASETS.get("cifar10")
    with pytest.raises(
        ValueError,
        match=r"no directory .*missing.*download https://www.cs.toronto.edu/~kriz/cifar-10",
    ):
        load(np.random.default_rng(0), path=tmp_path / "missing", train_size=None)
    write_cifar(tmp_path / "bad", corrupt="data_batch_3")
    with pytest.raises(ValueError, match=r"data_batch_3' is not a python pickle"):
        load(np.random.default_rng(0), path=tmp_path / "bad", train_size=None)
    (tmp_path / "bad" / "data_batch_3").write_bytes(
        pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]})
    )
    with pytest.raises(ValueError, match=r"shape \(2, 10\), expected an array \[N, 3072\]"):
        load(np.random.default_rng(0), path=tmp_path / "bad", train_size=None)
    (tmp_path / "bad" / "test_batch").unlink()
    (tmp_path / "bad" / "data_batch_3").write_bytes(
        pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    )
    with pytest.raises(ValueError, match=r"cifar10: no file .*test_batch"):
        load(np.random.default_rng(0), path=tmp_path / "bad", train_size=None)


def test_missing_cifar_is_one_clear_line_and_exit_2(tmp_path, tiny):
    tiny["data"]["dataset"] = {"kind": "cifar10", "path": str(tmp_path / "nowhere")}
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(tiny))
    result = CliRunner().invoke(app, ["run", str(f), "--out", str(tmp_path / "r"), "--quiet"])
    assert result.exit_code == 2
    assert "cifar10: no directory" in result.output and "Traceback" not in result.output


def test_shards_give_each_agent_few_classes_and_stay_disjoint():
    labels = np.repeat(np.arange(10), 100)
    parts = PARTITIONS.get("shards")(labels, 5, 10, np.random.default_rng(0), shards_per_agent=2)
    assert [len(p) for p in parts] == [200] * 5
    assert all(len(np.unique(labels[p])) <= 2 for p in parts)
    allidx = np.concatenate(parts)
    assert len(np.unique(allidx)) == len(allidx) == 1000


def test_private_set_sizes_drawn_per_agent(tiny):
    tiny["data"]["samples_per_agent"] = {"dist": "uniform", "low": 10, "high": 60}
    sc = validate(tiny)
    sizes = sc.data.sizes(4, sc.seed)
    _, _, split = build_learners(
        sc.data, [a.model for a in sc.agents.per_agent(sc.seed)], sc.algorithm, sc.training, sc.seed
    )
    assert (
        [len(p) for p in split.private] == sizes
        and len(set(sizes)) == 4
        and all(10 <= s <= 60 for s in sizes)
    )
    sets = [set(split.public.tolist())] + [set(p.tolist()) for p in split.private]
    assert sum(len(s) for s in sets) == len(set().union(*sets))


def test_validate_prints_the_label_histogram_per_agent(tmp_path, tiny):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(tiny))
    result = CliRunner().invoke(app, ["validate", str(f)])
    assert result.exit_code == 0, result.output
    sc = validate(tiny)
    _, dataset, split = build_learners(
        sc.data, [a.model for a in sc.agents.per_agent(sc.seed)], sc.algorithm, sc.training, sc.seed
    )
    for i, p in enumerate(split.private):
        counts = np.bincount(dataset.y_train[p], minlength=dataset.classes)
        row = next(line for line in result.output.splitlines() if line.split()[:1] == [str(i)])
        assert [int(v) for v in row.split()[1:]] == [len(p), *counts.tolist()]


@pytest.mark.parametrize(
    "kind,shape", [("cnn2d", (1, 8, 8)), ("cnn2d", (3, 32, 32)), ("resnet", (3, 32, 32))]
)
def test_image_models(kind, shape):
    spec = BACKBONES.params_model(kind)(kind=kind)
    model = build(spec, shape, heads=2, classes=10, generator=torch.Generator().manual_seed(0))
    logits, emb = model(torch.randn(4, *shape))
    assert logits.shape == (2, 4, 10) and emb.shape == (1, 4, model.head.in_features)
    other = build(spec, shape, heads=2, classes=10, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters()))


def test_image_models_refuse_flat_inputs(tmp_path, tiny):
    tiny["agents"]["model"] = {"kind": "resnet"}
    with pytest.raises(ScenarioError, match=r"agents.model.kind: resnet: 2-D models need image"):
        validate(tiny)
    result, _ = run(tmp_path, tiny)  # as a user meets it: one line, exit 2
    assert result.exit_code == 2 and "2-D models need image inputs" in result.output
    assert "Traceback" not in result.output


def run(tmp_path, scenario, name="run"):
    return cli_run(tmp_path, scenario, name)


def test_mixed_architectures_run_with_mhd_and_gossip_refuses_them(tmp_path, tiny):
    tiny["agents"]["groups"] = [
        {"name": "cnn", "agents": [2, 3], "model": {"kind": "cnn1d", "channels": [4]}}
    ]
    result, out = run(tmp_path, tiny)
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out / "events.csv").query("event == 'distill'").agent.nunique() == 4
    tiny["algorithm"] = algorithm(tiny, "gossip")
    result, _ = run(tmp_path, tiny, "gossip")
    assert result.exit_code == 2
    assert "gossip averages weights, so every agent needs the same model" in result.output
    assert "cnn1d (channels [4], kernel 5, embedding 64) for agents 2, 3" in result.output
    assert "Traceback" not in result.output
    (tmp_path / "gossip.yaml").write_text(yaml.safe_dump(tiny))  # validate refuses it too
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "gossip.yaml")])
    assert result.exit_code == 2 and "averages weights" in result.output


def test_gossip_sends_the_weights_and_averages_with_metropolis_weights(tmp_path, tiny):
    tiny["algorithm"] = algorithm(tiny, "gossip")
    tiny["network"]["loss"] = 0.0
    result, out = run(tmp_path, tiny)
    assert result.exit_code == 0, result.output
    sc = validate(tiny)
    learners, _, _ = build_learners(
        sc.data, [a.model for a in sc.agents.per_agent(sc.seed)], sc.algorithm, sc.training, sc.seed
    )
    params = sum(p.numel() for p in learners[0].model.parameters())
    from mhd_sim.learning.distillation import messages

    sends = pd.read_csv(out / "events.csv").query("event == 'send'")
    assert len(sends) > 0 and (sends.bytes == messages.weights_size(params, "float16")).all()
    # Metropolis: on a ring (degree 2 everywhere) the receiver moves 1/3 of the way
    a, b = learners[0], learners[1]
    a.neighbour_count = b.neighbour_count = lambda: 2
    vec = lambda lr: torch.nn.utils.parameters_to_vector(lr.model.parameters()).detach().clone()  # noqa: E731
    va, vb = vec(a), vec(b)
    a.absorb(b.make_message(0.0), b.agent, 0.0)
    torch.testing.assert_close(vec(a), va + (vb.half().float() - va) / 3, atol=1e-6, rtol=0)


def test_centralized_trains_one_model_on_the_union(tmp_path, tiny):
    tiny["algorithm"] = algorithm(tiny, "centralized")
    sc = validate(tiny)
    learners, _, split = build_learners(
        sc.data, [a.model for a in sc.agents.per_agent(sc.seed)], sc.algorithm, sc.training, sc.seed
    )
    assert len({id(lr.model) for lr in learners}) == 1 and len({id(lr.opt) for lr in learners}) == 1
    assert all(len(lr.y) == sum(len(p) for p in split.private) for lr in learners)
    result, out = run(tmp_path, tiny)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["messages"]["sent"] == 0
        and len({tuple(a["shared_acc"]) for a in summary["agents"]}) == 1
    )


def test_embedding_distillation_sends_embeddings_and_learns_from_its_own_size(tmp_path, tiny):
    """With embedding_weight 1, messages carry the backbone's embedding; a step's target is the
    mean of its peers' on its public samples. With two embedding sizes in the population, an
    agent keeps only the embeddings of the peers of its own size, in every engine; off (the
    default), the messages are that much smaller."""
    tiny["algorithm"]["embedding_weight"] = 1.0
    result, out = run(tmp_path, tiny)
    assert result.exit_code == 0, result.output
    from mhd_sim.learning.distillation import messages

    sends = pd.read_csv(out / "events.csv").query("event == 'send'")
    assert (
        sends.bytes == messages.encoded_size(32, 2, 4, "float16", embedding=16, confidence=True)
    ).all()
    sc = validate(tiny)
    learners, _, _ = build_learners(
        sc.data, [a.model for a in sc.agents.per_agent(sc.seed)], sc.algorithm, sc.training, sc.seed
    )
    me, peer = learners[0], learners[1]
    me.absorb(peer.make_message(1.0), peer.agent, 1.0)
    step = me.begin_step(2.0)
    target, valid = step.embedding
    assert valid.any() and target.shape == (len(step.public), 16)

    tiny["agents"]["groups"] = [
        {"name": "wide", "agents": [1, 2], "model": {"kind": "mlp", "hidden": [32]}}
    ]
    sc = validate(tiny)
    learners, _, _ = build_learners(
        sc.data, [a.model for a in sc.agents.per_agent(sc.seed)], sc.algorithm, sc.training, sc.seed
    )
    assert [lr.plan.embedding_peers for lr in learners] == [{0, 3}, {1, 2}, {1, 2}, {0, 3}]
    me = learners[0]
    for peer in learners[1:]:  # a wide peer's embeddings are not kept; a narrow one's are
        me.absorb(peer.make_message(1.0), peer.agent, 1.0)
    kept = me.cache.emb.abs().sum((1, 2)) > 0  # per slot, in the order the peers came
    assert kept.tolist() == [False, False, True]
    for engine in ("per_agent", "auto", "batched"):
        result, _ = run(tmp_path, {**tiny, "engine": engine, "duration": 8.0}, f"mixed-{engine}")
        assert result.exit_code == 0, result.output
    mixed = [pd.read_csv(tmp_path / f"mixed-{e}" / "events.csv") for e in ("per_agent", "auto")]
    pd.testing.assert_frame_equal(*mixed)

    del tiny["algorithm"]["embedding_weight"]
    result, out = run(tmp_path, {**tiny, "duration": 8.0}, "off")
    sends = pd.read_csv(out / "events.csv").query("event == 'send'")
    small = messages.encoded_size(32, 2, 4, "float16", confidence=True)
    assert result.exit_code == 0 and (sends.bytes == small).all()


def test_topk_encoding_runs_end_to_end_with_exact_bytes(tmp_path, tiny):
    tiny["algorithm"].update(encoding="topk", topk=2)
    result, out = run(tmp_path, tiny)
    assert result.exit_code == 0, result.output
    from mhd_sim.learning.distillation import messages

    sends = pd.read_csv(out / "events.csv").query("event == 'send'")
    size = messages.encoded_size(32, 2, 4, "topk", k=2, confidence=True)
    assert (sends.bytes == size).all()
