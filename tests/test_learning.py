import copy

import numpy as np
import pytest
import torch
from conftest import algorithm

from mhd_sim.learning.data.datasets import DATASETS
from mhd_sim.learning.data.partitions import label_skew, primary_classes
from mhd_sim.learning.distillation import messages
from mhd_sim.learning.distillation.teachers import aggregate, sharpen
from mhd_sim.learning.engines.population import build_learners
from mhd_sim.scenario import validate


def test_max_confidence_picks_the_most_confident_available_candidate():
    cands = torch.tensor(
        [
            [[0.7, 0.3], [0.5, 0.5], [0.2, 0.8]],
            [[0.1, 0.9], [0.6, 0.4], [0.0, 1.0]],
        ]
    )
    mask = torch.tensor([[True, True, True], [True, True, False]])
    teacher, valid, best, confidence = aggregate(cands, mask, "max_confidence")
    assert valid.tolist() == [True, True, True]
    # sample 0 and 1: the second candidate is surer; sample 2: the second is absent
    torch.testing.assert_close(teacher, torch.tensor([[0.1, 0.9], [0.6, 0.4], [0.2, 0.8]]))
    assert best.tolist() == [1, 1, 0]  # which candidate, and its confidence (the diagnostics')
    torch.testing.assert_close(confidence, torch.tensor([0.9, 0.6, 0.8]))


def test_mean_and_confidence_weighted_use_only_available_candidates():
    cands = torch.tensor([[[0.8, 0.2], [1.0, 0.0]], [[0.4, 0.6], [0.0, 1.0]]])
    mask = torch.tensor([[True, True], [True, False]])
    mean, _, best, _ = aggregate(cands, mask, "mean")
    assert best is None  # no one candidate is chosen
    torch.testing.assert_close(mean, torch.tensor([[0.6, 0.4], [1.0, 0.0]]))
    weighted = aggregate(cands, mask, "confidence_weighted")[0]
    w0, w1 = 0.8, 0.6  # the candidates' top probabilities
    assert weighted[0].tolist() == pytest.approx(
        [(w0 * 0.8 + w1 * 0.4) / (w0 + w1), (w0 * 0.2 + w1 * 0.6) / (w0 + w1)]
    )
    assert weighted[1].tolist() == pytest.approx([1.0, 0.0])


def test_samples_without_candidates_are_invalid():
    _, valid, _, _ = aggregate(
        torch.rand(2, 3, 4), torch.tensor([[False, True, False], [False, False, False]]), "mean"
    )
    assert valid.tolist() == [False, True, False]


def test_temperature_sharpens_like_logits_over_tau():
    logits = torch.tensor([[2.0, 0.5, -1.0]])
    assert sharpen(torch.softmax(logits, -1), 2.0) == pytest.approx(
        torch.softmax(logits / 2.0, -1), abs=1e-6
    )


@pytest.mark.parametrize("encoding,atol", [("float32", 0), ("float16", 1e-3), ("bfloat16", 4e-3)])
@pytest.mark.parametrize("dim", [0, 6])
def test_encoded_size_is_exact_and_round_trips(encoding, atol, dim):
    probs = torch.softmax(torch.randn(37, 2, 10), -1).numpy()
    emb = np.random.default_rng(0).normal(size=(37, dim)).astype(np.float32) if dim else None
    payload = messages.encode(
        5, 12.5, np.array([0, 1]), np.arange(37) * 3, probs, encoding, embeddings=emb
    )
    assert len(payload) == messages.encoded_size(37, 2, 10, encoding, embedding=dim)
    msg = messages.decode(payload)
    assert msg.heads.tolist() == [0, 1]
    assert messages.HEADER.unpack_from(payload)[5::5] == (5, 12.5)  # sender and time on the wire
    assert msg.ids.tolist() == (np.arange(37) * 3).tolist()
    np.testing.assert_allclose(msg.probs, probs, atol=atol)
    if dim:
        np.testing.assert_allclose(msg.embeddings, emb, rtol=1e-2 if atol else 0, atol=atol * 10)
    else:
        assert msg.embeddings is None


@pytest.mark.parametrize("classes", [10, 300])
def test_topk_keeps_the_k_largest_and_spreads_the_rest(classes):
    probs = torch.softmax(3 * torch.randn(20, 2, classes), -1).numpy()
    payload = messages.encode(1, 0.0, np.array([0, 1]), np.arange(20), probs, "topk", k=3)
    assert len(payload) == messages.encoded_size(20, 2, classes, "topk", k=3)
    index_bytes = 1 if classes <= 256 else 2
    assert len(payload) == messages.HEADER.size + 2 + 4 * 20 + 20 * 2 * 3 * (index_bytes + 2)
    got = messages.decode(payload).probs.numpy()
    top = np.argsort(-probs, -1)[..., :3]
    np.testing.assert_allclose(
        np.take_along_axis(got, top, -1), np.take_along_axis(probs, top, -1), atol=1e-3
    )
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=2e-3)
    assert (np.argsort(-got, -1, kind="stable")[..., 0] == top[..., 0]).all()


def test_weight_messages_round_trip_with_exact_size():
    values = np.random.default_rng(1).normal(size=1234).astype(np.float32)
    for encoding, atol in (("float32", 0), ("float16", 2e-3), ("bfloat16", 2e-2)):
        payload = messages.encode_weights(3, 4, 9.5, values, encoding)
        assert len(payload) == messages.weights_size(1234, encoding)
        w = messages.decode_weights(payload)
        assert w.weight == 4
        assert messages.WEIGHTS_HEADER.unpack_from(payload)[3::3] == (3, 9.5)
        np.testing.assert_allclose(w.values, values, atol=atol, rtol=1e-2 if atol else 0)


def test_label_skew_follows_the_target_distribution():
    labels = np.random.default_rng(0).integers(0, 10, size=20000)
    parts = label_skew(labels, 5, 10, np.random.default_rng(1), skew=0.8, classes_per_agent=2)
    for i, p in enumerate(parts):
        freq = np.bincount(labels[p], minlength=10) / len(p)
        target = np.full(10, 0.2 / 10)
        target[primary_classes(i, 10, 2)] += 0.4
        np.testing.assert_allclose(freq, target, atol=0.01)
    allidx = np.concatenate(parts)
    assert len(np.unique(allidx)) == len(allidx)  # disjoint


def population(tiny, **settings):
    tiny["algorithm"] = algorithm(tiny, settings.pop("name", "mhd"), **settings)
    sc = validate(tiny)
    learners, dataset, split = build_learners(
        sc.data, [a.model for a in sc.agents.per_agent(sc.seed)], sc.algorithm, sc.training, sc.seed
    )
    return learners, dataset, split


def test_public_and_private_sets_are_disjoint(tiny):
    _, dataset, split = population(tiny)
    sets = [set(split.public.tolist())] + [set(p.tolist()) for p in split.private]
    assert sum(len(s) for s in sets) == len(set().union(*sets))


def test_head_m_learns_from_peers_head_m_minus_1(tiny):
    learners, dataset, _ = population(tiny, heads=3, include_self=False)
    me = learners[0]
    P, C = len(me.shared.public_x), dataset.classes
    assert me.wiring.heads_sent.tolist() == [0, 1]  # peers use our heads 0 and 1, never the last
    # a peer whose head 0 says class 2 and head 1 says class 3 on every public sample
    probs = np.zeros((P, 2, C), dtype=np.float32)
    probs[:, 0, 2] = probs[:, 1, 3] = 1.0
    me.absorb(messages.encode(1, 4.0, np.array([0, 1]), np.arange(P), probs, "float32"), 1, 4.0)
    step = me.begin_step(now=7.0)
    teachers = {c.head: (c.target, c.ok) for c in me.choose_teachers(step)}
    assert sorted(teachers) == [1, 2]  # head 0 learns from labels only (ν₀ = 0)
    assert teachers[1][0].argmax(-1).unique().tolist() == [2]  # head 1 ← peer's head 0
    assert teachers[2][0].argmax(-1).unique().tolist() == [3]  # head 2 ← peer's head 1
    assert step.staleness == (3.0, 3.0)
    # and a step moves head 1 towards the peer's head-0 answer
    before = torch.softmax(me.model(me.shared.public_x)[0][1], -1)[:, 2].mean()
    for _ in range(20):
        me.end_step(me.begin_step(now=7.0))
    after = torch.softmax(me.model(me.shared.public_x)[0][1], -1)[:, 2].mean()
    assert after > before + 0.2


def test_older_predictions_never_overwrite_newer(tiny):
    learners, dataset, _ = population(tiny)
    me, C = learners[0], dataset.classes
    ids = np.arange(4)

    def msg(t, cls):
        p = np.zeros((4, 2, C), dtype=np.float32)
        p[:, :, cls] = 1
        return messages.encode(2, t, np.array([0, 1]), ids, p, "float32")

    me.absorb(msg(10.0, 1), 2, 10.0)
    me.absorb(msg(8.0, 0), 2, 8.0)  # arrives later but was made earlier
    assert me.plan.times()[:4, 0].tolist() == [10.0] * 4
    assert me.cache.probs[0, :4, 0].argmax(-1).tolist() == [1] * 4


@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("encoding", ["float16", "float32"])
def test_max_confidence_fast_path_gives_the_reference_teachers(tiny, encoding, include_self):
    """The per-agent fast path (confidences kept beside the cache, the choice made in numpy)
    gives exactly the reference path's teachers, masks included: with stale entries, with
    a message that arrives after a newer one and overwrites only part of the cache, with
    ties, with and without the agent's own head among the candidates, at τ ≠ 1."""
    learners, dataset, _ = population(
        tiny, encoding=encoding, max_staleness=5.0, temperature=2.0, include_self=include_self
    )
    me, C = learners[0], dataset.classes
    assert me.by_confidence
    P = len(me.shared.public_x)
    rng = np.random.default_rng(0)

    def absorb(sender, t, ids):
        probs = torch.softmax(3 * torch.randn(len(ids), 2, C), -1).numpy()
        conf = np.log(probs.max(-1) / (1 - probs.max(-1)))
        probs[:3], conf[:3] = probs[3], conf[3]  # equal confidences: the draw decides
        payload = messages.encode(
            sender, t, np.array([0, 1]), ids, probs, encoding, confidence=conf
        )
        me.absorb(payload, sender, t)

    absorb(1, 2.0, np.arange(P))  # stale by t = 10
    absorb(2, 8.0, rng.permutation(P)[: P // 2])
    absorb(3, 9.0, np.arange(P // 3))
    absorb(3, 7.0, np.arange(P // 4, P // 2))  # partly older than what peer 3 sent before
    for _ in range(5):
        step = me.plan.step(10.0)
        fast = me.choose_teachers(step)
        me.by_confidence = False  # the reference path: gather, aggregate, sharpen
        reference = me.choose_teachers(step)
        me.by_confidence = True
        assert [c.head for c in fast] == [c.head for c in reference] == [1, 2]
        for f, r in zip(fast, reference):
            assert torch.equal(f.target, r.target)
            assert (f.ok is None and r.ok is None) or torch.equal(f.ok, r.ok)
            # and the same choices: whose, and how confident (the teacher diagnostics)
            assert (f.own is None) == (r.own is None) == (not include_self)
            if include_self:
                assert np.array_equal(f.own, r.own.numpy())
            assert np.array_equal(f.confidence, r.confidence.numpy())
    if not include_self:  # some samples had only stale peers; the own head is always there
        assert any(c.ok is not None for c in fast)


def test_a_float16_tie_at_one_is_decided_by_confidence_then_by_a_fair_draw(tiny):
    """Two peers and the agent's own head all give class 2 a probability of 1.0 in float16.
    Their confidences (max logit, carried by the message) rank them; where those tie too,
    a seeded draw picks each of the three about equally often, the own head included."""
    learners, dataset, _ = population(tiny, heads=2, include_self=True)
    me, C = learners[0], dataset.classes
    P = len(me.shared.public_x)
    with torch.no_grad():  # its own head 0: logits = bias, class 2 ahead by 30, on every input
        me.model.head.weight.zero_()
        me.model.head.bias.zero_()
        me.model.head.bias[2] = 30.0

    def peer(sender, mark, margin):  # class 2 at 1.0, and a trace on class `mark` to tell it by
        probs = np.zeros((P, 1, C), dtype=np.float32)
        probs[:, 0, 2], probs[:, 0, mark] = 1.0, 1e-3
        conf = np.full((P, 1), margin, dtype=np.float32)
        ids, heads = np.arange(P), np.array([0])
        payload = messages.encode(sender, 1.0, heads, ids, probs, "float16", confidence=conf)
        return payload, sender, 1.0

    def chosen(step):
        ((m, teacher, ok, _, _),) = [
            (c.head, c.target, c.ok, c.own, c.confidence) for c in me.choose_teachers(step)
        ]
        assert m == 1 and ok is None
        return np.where(teacher[:, 0] > 1e-4, 0, np.where(teacher[:, 1] > 1e-4, 1, 2))

    me.absorb(*peer(1, 0, 30.0))
    me.absorb(*peer(2, 1, 31.0))  # the most confident: always its predictions
    assert (chosen(me.plan.step(2.0)) == 1).all()
    me.absorb(*peer(2, 1, 30.0))  # now all three tie at a max logit of 30
    picks = np.concatenate([chosen(me.plan.step(2.0)) for _ in range(40)])
    share = np.bincount(picks, minlength=3) / len(picks)
    assert (share > 0.28).all(), share  # peer 1, peer 2 and its own head, each about a third


def test_isolated_has_one_head_and_sends_nothing(tiny):
    learners, _, _ = population(tiny, name="isolated")
    assert all(lr.heads == 1 and not lr.sends and lr.make_message(0.0) is None for lr in learners)


def test_private_accuracy_weights_per_class_accuracy_by_own_label_mix(tiny):
    learners, dataset, split = population(tiny)
    me = learners[1]
    shared, private, _ = me.evaluate()
    with torch.no_grad():
        pred = me.model(me.shared.test_x)[0].argmax(-1)
    y = me.shared.test_y
    for h in range(me.heads):
        acc_c = torch.stack([(pred[h][y == c] == c).float().mean() for c in range(dataset.classes)])
        assert private[h] == pytest.approx(float(acc_c @ me.label_dist), abs=1e-6)
        assert shared[h] == pytest.approx(float((pred[h] == y).float().mean()), abs=1e-6)


def test_digits_and_synthetic_load_offline():
    d = DATASETS.get("digits")(np.random.default_rng(0))
    assert d.x_train.shape[1:] == (1, 8, 8) and d.classes == 10 and len(d.y_test) > 0
    s = DATASETS.get("synthetic")(
        np.random.default_rng(0), classes=3, dim=5, train_size=50, test_size=20
    )
    assert s.x_train.shape == (50, 5) and set(s.y_train.tolist()) <= {0, 1, 2}


@pytest.mark.parametrize(
    "kind, shape", [("mlp", (40,)), ("cnn1d", (40,)), ("cnn1d", (1, 8, 8)), ("cnn1d", (2, 16))]
)
def test_models_give_logits_per_head_and_count_flops(kind, shape):
    from mhd_sim.learning.models.headed import build, forward_flops, step_flops

    spec = validate({"agents": {"model": {"kind": kind}}}).agents.model
    model = build(spec, shape, heads=3, classes=10, generator=torch.Generator().manual_seed(0))
    logits, emb = model(torch.randn(5, *shape))
    assert logits.shape == (3, 5, 10) and emb.shape[:2] == (1, 5)  # the backbone's embedding
    assert step_flops(model, shape, 8) > 2 * forward_flops(model, shape, 8) > 0
    assert forward_flops(model, shape, 16) == pytest.approx(2 * forward_flops(model, shape, 8))


def test_weight_init_is_seeded_per_generator():
    from mhd_sim.learning.models.headed import build

    spec = validate({}).agents.model

    def weights(seed):
        return build(spec, (40,), 2, 10, torch.Generator().manual_seed(seed)).head.weight

    assert torch.equal(weights(1), weights(1)) and not torch.equal(weights(1), weights(2))


@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_the_written_out_sgd_is_torch_sgd_bit_for_bit(momentum, weight_decay):
    """Ten steps of a small model under ``models.optimizer.SGD`` and under ``torch.optim.SGD``
    from the same start on the same batches: identical parameters, every bit."""
    from mhd_sim.learning.models.optimizer import SGD

    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5))
    twin = copy.deepcopy(net)
    ours = SGD(net.parameters(), lr=0.05, momentum=momentum, weight_decay=weight_decay)
    theirs = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=momentum,
                             weight_decay=weight_decay)  # fmt: skip
    for _ in range(10):
        x, y = torch.randn(16, 20, generator=g), torch.randint(5, (16,), generator=g)
        for model, opt in ((net, ours), (twin, theirs)):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), twin.parameters()))
    assert not torch.equal(net[0].weight, copy.deepcopy(twin)[0].weight * 0)  # it moved


def test_models_that_train_mode_leaves_alone_are_not_switched(tiny):
    """Every bundled backbone is mode-free (no dropout, no batch statistics), so a learner
    skips ``Module.train``; a model with dropout is switched as before."""
    from mhd_sim.learning.models.headed import mode_free

    learners, _, _ = population(tiny)
    assert mode_free(learners[0].model) and not learners[0].modal
    learners[0].mode(train=False)
    assert learners[0].model.training  # skipped: it computes the same either way
    assert not mode_free(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout()))


@pytest.mark.parametrize("heads", [2, 4])
def test_teachers_from_the_steps_own_forward_pass_are_those_of_a_pass_of_their_own(tiny, heads):
    """With its own heads among the candidates, a step chooses its teachers from its training
    forward pass; they are exactly those a separate eval-mode pass on the public batch gives
    (targets, masks, whose, confidences), at every step of a learner with peers' predictions."""
    learners, dataset, _ = population(tiny, heads=heads, include_self=True)
    me, C = learners[0], dataset.classes
    assert me.wiring.own_candidates
    P, sent = len(me.shared.public_x), me.wiring.heads_sent
    for sender in (1, 2):
        probs = torch.softmax(3 * torch.randn(P, len(sent), C), -1).numpy()
        conf = np.log(probs.max(-1) / (1 - probs.max(-1)))
        payload = messages.encode(
            sender, 1.0, sent, np.arange(P), probs, "float16", confidence=conf
        )
        me.absorb(payload, sender, 1.0)
    compared = 0
    for _ in range(5):
        step = me.begin_step(now=2.0)
        separate = me.choose_teachers(step)  # a pass of their own
        me.end_step(step)  # chooses them from its forward pass, then learns
        for a, b in zip(step.targets, separate, strict=True):
            assert torch.equal(a.target, b.target) and a.head == b.head
            assert (a.ok is None and b.ok is None) or torch.equal(a.ok, b.ok)
            assert np.array_equal(a.own, b.own) and np.array_equal(a.confidence, b.confidence)
            compared += 1
    assert compared == 5 * len(me.wiring.sources)


@pytest.mark.parametrize("drawn", ["per_step", "per_sample"])
def test_random_teachers_are_drawn_per_step_or_per_sample(tiny, drawn):
    """`teachers: 2` among 4 peers: drawn per step, the same 2 for all of a step's samples
    (one fewer where one of them has no prediction of a sample); per sample, exactly 2 for
    every sample, among the peers that hold a prediction of it, different pairs for different
    samples."""
    tiny["agents"]["count"] = 6
    learners, dataset, _ = population(tiny, heads=2, teachers=2, teachers_drawn=drawn)
    me = learners[0]
    P, C = len(me.shared.public_x), dataset.classes
    probs = np.full((P, 1, C), 1.0 / C, dtype=np.float32)
    for peer in (1, 2, 3):  # three peers know every public sample, a fourth only the first half
        me.absorb(messages.encode(peer, 1.0, np.array([0]), np.arange(P), probs, "float32"),
                  peer, 1.0)  # fmt: skip
    half = np.arange(P // 2)
    me.absorb(messages.encode(4, 1.0, np.array([0]), half, probs[half], "float32"), 4, 1.0)
    pairs = set()
    for t in range(20):
        step = me.plan.step(2.0 + t)
        late = step.public >= P // 2
        assert not step.valid[3, late].any()  # the fourth peer has nothing to say there
        pairs |= {tuple(np.flatnonzero(col)) for col in step.valid.T}
        if drawn == "per_sample":
            assert (step.valid.sum(0) == 2).all()  # [peers, B]: two candidates per sample
        else:
            chosen = step.valid[:, ~late].any(1) if (~late).any() else step.valid.any(1)
            assert chosen.sum() <= 2 and (step.valid[:, ~late] == chosen[:, None]).all()
    assert len(pairs) > (1 if drawn == "per_step" else 4)
