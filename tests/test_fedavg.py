"""FedAvg: rounds on a closed-form schedule (the slowest online client's steps plus the
transfers), exact bytes both ways, and the average the server sends back."""

import pandas as pd
import pytest
import torch
from conftest import simulation

PERIOD, LATENCY, UP, DOWN = 5, 0.1, 1.0e5, 5.0e4


def scenario(tiny, **algorithm):
    slow = [{"name": "slow", "agents": [1], "speed": 1.0e6}]
    model = {"kind": "mlp", "hidden": [16]}
    tiny["agents"] = {"count": 2, "model": model, "speed": 2.0e6, "jitter": 0.0, "groups": slow}
    tiny["network"] = {"latency": LATENCY, "bandwidth": UP, "loss": 0.0}
    tiny["algorithm"] = {"name": "fedavg", "period": PERIOD, "server_bandwidth": DOWN,
                         "deadline": 1000.0, **algorithm}  # fmt: skip
    return tiny


def run(tmp_path, tiny, timing_only=False, **algorithm):
    sim, summary = simulation(tmp_path, scenario(tiny, **algorithm), timing_only)
    return sim, summary, pd.read_csv(tmp_path / "events.csv", low_memory=False)


def test_rounds_follow_the_slowest_client_and_the_transfers(tmp_path, tiny):
    sim, summary, ev = run(tmp_path, tiny)
    server = sim.coordinator.node
    steps = ev[ev.event == "step"]
    d0 = steps[steps.agent == 0].time.iloc[0]  # a step's duration (no jitter)
    d1 = steps[steps.agent == 1].time.iloc[0]
    assert d1 == pytest.approx(2 * d0)
    size = int(ev[(ev.event == "send") & (ev.agent == 0)].bytes.iloc[0])
    rounds = ev[ev.event == "round"].time.to_numpy()
    # round 1: the slow client's PERIOD steps, then its upload
    first = PERIOD * d1 + size / UP + LATENCY
    assert rounds[0] == pytest.approx(first, abs=1e-9)
    back = ev[(ev.event == "deliver") & (ev.peer == server)]
    # the server's FIFO uplink sends the model to client 0, then to client 1
    assert back.time.iloc[0] == pytest.approx(first + size / DOWN + LATENCY, abs=1e-9)
    assert back.time.iloc[1] == pytest.approx(first + 2 * size / DOWN + LATENCY, abs=1e-9)
    # round 2: client 1 got the model last; PERIOD slow steps after that, and its upload
    second = back.time.iloc[1] + PERIOD * d1 + size / UP + LATENCY
    assert rounds[1] == pytest.approx(second, abs=1e-9)
    # bytes both ways, exactly: every upload and every model is one weight message
    sends = ev[ev.event == "send"]
    assert (sends.bytes == size).all()
    assert (
        summary["bytes_offered"]
        == len(sends) * size
        == summary["bytes_by_fate"]["delivered"]
        + sum(v for k, v in summary["bytes_by_fate"].items() if k != "delivered")
    )
    ups, downs = (sends.peer == server).sum(), (sends.agent == server).sum()
    assert downs == 2 * len(rounds) and ups >= downs


def test_timing_only_gives_the_same_rounds(tmp_path, tiny):
    _, _, full = run(tmp_path / "full", tiny)
    _, _, timing = run(tmp_path / "timing", tiny, timing_only=True)
    keep = ["round", "send", "deliver", "step"]
    a = full[full.event.isin(keep)][["time", "event", "agent", "peer", "bytes"]].reset_index(
        drop=True
    )
    b = timing[timing.event.isin(keep)][["time", "event", "agent", "peer", "bytes"]].reset_index(
        drop=True
    )
    pd.testing.assert_frame_equal(a, b)


def test_clients_evaluate_the_average_weighted_by_their_data(tmp_path, tiny):
    sim, _, _ = run(tmp_path, tiny)
    a, b = sim.learners
    assert a.global_model is not None
    for p, q in zip(a.global_model.parameters(), b.global_model.parameters()):
        assert torch.equal(p, q)  # both hold the same round's model
    assert not torch.equal(
        torch.nn.utils.parameters_to_vector(a.model.parameters()),
        torch.nn.utils.parameters_to_vector(a.global_model.parameters()),
    )  # its own weights moved on since
