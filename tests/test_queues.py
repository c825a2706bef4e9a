"""Bounded uplink queues, reliable transport, back-pressure, and bytes that mean what they
say: closed-form checks on hand-made bursts, and the byte identities on every bundled
scenario."""

import json

import numpy as np
import pytest
from conftest import simulation
from network_helpers import binomial_interval, make_network, times
from typer.testing import CliRunner

from mhd_sim.api import build_simulation
from mhd_sim.cli import app
from mhd_sim.record.run_directory import RunDirectory
from mhd_sim.scenario import bundled, load
from mhd_sim.world.network import Message, Queueing


def drops(rows, reason):
    return [r for r in rows if r[1] == "drop" and r[5] == reason]


@pytest.mark.parametrize("limit,size,k", [(10_000, 3_000, 6), (9_000, 3_000, 5), (2_000, 3_000, 3)])
def test_drop_tail_drops_exactly_what_does_not_fit(limit, size, k):
    env, net, rows, delivered = make_network(
        latency=0.01, bandwidth=1e5, queueing=Queueing("drop_tail", limit)
    )
    for m in range(k):
        net.send(Message(0, 1, size, 0.0, m))
    env.run()
    fit = max(1, limit // size)  # an empty uplink takes one message, however large
    assert [m.payload for m in delivered] == list(range(fit))
    assert len(drops(rows, "queue_full")) == k - fit
    np.testing.assert_allclose(
        times(rows, "deliver"), np.arange(1, fit + 1) * size / 1e5 + 0.01, atol=1e-9
    )
    fates = net.traffic.fates(0)
    assert fates["queue_full"] == (k - fit) * size and fates["delivered"] == fit * size


def test_drop_tail_frees_room_as_messages_leave():
    env, net, rows, delivered = make_network(
        latency=0.0, bandwidth=1e3, queueing=Queueing("drop_tail", 2_000)
    )
    net.send(Message(0, 1, 1_000, 0.0, "a"))
    net.send(Message(0, 1, 1_000, 0.0, "b"))
    net.send(Message(0, 1, 1_000, 0.0, "c"))  # full: dropped
    env.run(until=1.0)  # "a" has left exactly now
    net.send(Message(0, 1, 1_000, env.now, "d"))
    env.run()
    assert [m.payload for m in delivered] == ["a", "b", "d"]
    assert times(rows, "deliver") == pytest.approx([1.0, 2.0, 3.0], abs=1e-9)


def test_replace_keeps_only_the_newest_message_per_receiver_waiting():
    env, net, rows, delivered = make_network(
        latency=0.0, bandwidth=1e3, queueing=Queueing("replace", 10**9)
    )
    for m in range(10):  # to receivers 1, 2, 1, 2, ...: the first to 1 starts at once
        net.send(Message(0, 1 + m % 2, 500, float(m), m))
    env.run()
    assert [(d.receiver, d.payload) for d in delivered] == [(1, 0), (2, 9), (1, 8)]
    assert len(drops(rows, "superseded")) == 7
    assert times(rows, "deliver") == pytest.approx([0.5, 1.0, 1.5], abs=1e-9)
    assert net.traffic.fates(0)["superseded"] == 7 * 500


def test_replace_keeps_a_message_of_another_size_in_line():
    env, net, rows, delivered = make_network(
        latency=0.0, bandwidth=1e3, queueing=Queueing("replace", 10**9)
    )
    net.send(Message(0, 1, 500, 0.0, "first"))
    net.send(Message(0, 1, 500, 0.0, "waits"))
    net.send(Message(0, 1, 700, 0.0, "bigger"))  # cannot take the 500-byte slot: queued
    env.run()
    assert [d.payload for d in delivered] == ["first", "waits", "bigger"]
    assert not drops(rows, "superseded")


@pytest.mark.parametrize("p", [0.1, 0.4])
def test_reliable_transport_resends_lost_messages_until_delivered(p):
    n = 2_000
    reliable = Queueing("unbounded", reliable=True, max_retries=40, min_rto=0.01)
    env, net, rows, delivered = make_network(
        latency=0.001, bandwidth=1e9, loss=p, queueing=reliable
    )
    for k in range(n):
        net.send(Message(0, 1 + k % 2, 100, 0.0, k))
    env.run()
    tries = len(times(rows, "send"))
    lost = len(drops(rows, "loss"))
    assert sorted(d.payload for d in delivered) == list(range(n))  # none lost for good
    assert tries == n + net.traffic.retransmitted and lost == tries - n
    low, high = binomial_interval(tries, p)  # losses among all tries, as Binomial(tries, p)
    assert low <= lost <= high
    assert 1 / (1 - p) * 0.9 < tries / n < 1 / (1 - p) * 1.1
    retransmits = [r for r in rows if r[1] == "send" and r[5] == "retransmit"]
    assert len(retransmits) == net.traffic.retransmitted > 0
    fates = net.traffic.fates(0)
    assert fates["delivered"] == n * 100 and fates["lost"] == lost * 100
    assert sum(fates.values()) == sum(net.traffic.bytes_offered)


def test_retransmission_timeout_doubles():
    reliable = Queueing("unbounded", reliable=True, max_retries=2, min_rto=0.5)
    env, net, rows, delivered = make_network(
        latency=0.1, bandwidth=1e9, loss=0.999999, queueing=reliable
    )
    net.send(Message(0, 1, 100, 0.0, "x"))
    env.run()
    sends = times(rows, "send")  # the first try, then after 0.5 and 1.0 s more
    assert sends == pytest.approx([0.0, 0.5, 1.5], abs=1e-6)
    assert not delivered and net.traffic.retransmitted == 2


@pytest.mark.parametrize("back", [1.0, None])
def test_reliable_transport_resends_to_a_receiver_that_was_offline(back):
    """A sender cannot tell an offline receiver from a lost message: it resends at the same
    timeouts. 1,000 bytes at 10 kB/s (0.1 s), latency 0.05 s: the first try arrives at 0.15 and
    finds the receiver offline; the timeout max(0.2, 2 × 0.15) = 0.3 s runs from when the try
    left the uplink (0.1), so the second try starts at 0.4, arrives at 0.55, is dropped again;
    the third starts at 0.5 + 0.6 = 1.1 and arrives at 1.25, after the receiver is back at 1.0.
    With the receiver never back, max_retries = 2 ends it after three tries."""
    offline = {1}
    reliable = Queueing("unbounded", reliable=True, max_retries=2, min_rto=0.2)
    env, net, rows, delivered = make_network(
        latency=0.05, bandwidth=1e4, online=lambda i: i not in offline, queueing=reliable
    )
    if back is not None:
        env.timeout(back).callbacks.append(lambda _: offline.clear())
    net.send(Message(0, 1, 1_000, 0.0, "x"))
    env.run()
    assert times(rows, "send") == pytest.approx([0.0, 0.4, 1.1], abs=1e-9)
    if back is None:
        assert times(rows, "drop") == pytest.approx([0.15, 0.55, 1.25], abs=1e-9)
        assert not delivered and net.traffic.fates(0)["offline"] == 3_000
    else:
        assert times(rows, "drop") == pytest.approx([0.15, 0.55], abs=1e-9)
        assert times(rows, "deliver") == pytest.approx([1.25], abs=1e-9)
        assert [d.payload for d in delivered] == ["x"]
    assert {r[5] for r in rows if r[1] == "drop"} == {"offline"}
    datagram = make_network(latency=0.05, bandwidth=1e4, online=lambda i: i != 1)
    datagram[1].send(Message(0, 1, 1_000, 0.0, "x"))
    datagram[0].run()
    assert len(times(datagram[2], "send")) == 1  # a datagram is not resent


def test_fifo_timing_stays_exact_where_nothing_is_dropped():
    rng = np.random.default_rng(1)
    sizes = rng.integers(100, 5_000, size=40)
    env, net, rows, _ = make_network(latency=0.2, bandwidth=1e5)
    for s in sizes:  # 40 messages, ~100 kB: they fit the default buffer
        net.send(Message(0, 1, int(s), 0.0, b""))
    env.run()
    assert not drops(rows, "queue_full")
    np.testing.assert_allclose(times(rows, "deliver"), np.cumsum(sizes) / 1e5 + 0.2, atol=1e-9)


THIN = {
    "name": "thin",
    "duration": 30,
    "data": {"dataset": {"kind": "synthetic", "train_size": 600, "test_size": 100}},
    "agents": {"count": 3, "model": {"kind": "mlp", "hidden": [16]}, "speed": 1.0e9},
    "network": {"topology": "complete", "latency": 0.125, "bandwidth": 50_000},
    "algorithm": {"share_every": 1, "share_size": 100, "encoding": "float32"},
}


def simulate(tmp_path, raw, name="run", timing_only=True):
    return simulation(tmp_path / name, raw, timing_only)[1]


def message_size(summary):
    sent = [a for a in summary["agents"] if a["messages_offered"]]
    return max(a["bytes_offered"] // a["messages_offered"] for a in sent)


def test_thin_uplink_sends_no_more_than_it_can_carry_and_says_so(tmp_path):
    out = tmp_path / "cli"
    args = ["run", "-", "--timing-only", "--out", str(out), "-q"]
    (tmp_path / "thin.yaml").write_text(json.dumps(THIN))
    args[1] = str(tmp_path / "thin.yaml")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "uplink was busy 100% of the time; offered" in result.output
    assert "dropped (queue_full)" in result.output
    summary = json.loads((out / "summary.json").read_text())
    size = message_size(summary)
    for a in summary["agents"]:
        assert a["bytes_sent"] <= 50_000 * 30 + size
        assert a["uplink"]["utilization"] > 0.99 and a["uplink"]["offered_load"] > 10
        assert a["uplink"]["peak_queue_bytes"] <= 212_992 + size
    assert summary["bytes_sent"] < summary["bytes_offered"] / 10
    again = simulate(tmp_path, THIN, "again")
    assert again["bytes_by_fate"] == summary["bytes_by_fate"]
    events = (out / "events.csv").read_bytes()
    assert events == (tmp_path / "again" / "events.csv").read_bytes()


def test_a_share_larger_than_the_buffer_is_named_with_the_agents_that_heard_nothing(tmp_path):
    """The teaching stragglers with MHD's embedding term: 7 messages of 45 kB per share
    overflow the 208 kB buffer, though the uplink carries three times what is offered; the
    same three peers are last in line every time and hear nothing. A bigger buffer: no line."""
    base = ["run", "teaching/stragglers", "--timing-only", "--set", "duration=30", "-q"]
    emb = ["--set", "algorithm.embedding_weight=1"]
    result = CliRunner().invoke(app, [*base, *emb, "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "8 of 8 uplinks dropped messages at a full buffer though offered at most" in (
        " ".join(result.output.split())
    )
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    deaf = [a["agent"] for a in summary["agents"] if a["bytes_received"] == 0]
    assert deaf and f"agents received no message in the whole run (agents {deaf[0]}" in (
        " ".join(summary["warnings"])
    )
    big = ["--set", "network.queue.limit=1000000", "--out", str(tmp_path / "b")]
    result = CliRunner().invoke(app, [*base, *emb, *big])
    assert result.exit_code == 0 and "warning" not in result.output, result.output


def test_backpressure_skips_messages_instead_of_dropping_them(tmp_path):
    raw = {**THIN, "network": {**THIN["network"], "backpressure": 2}}
    summary = simulate(tmp_path, raw)
    m = summary["messages"]
    assert m["skipped"] > 10 * m["offered"]
    assert m["dropped_by_reason"]["queue_full"] == 0
    assert sum(a["messages_skipped"] for a in summary["agents"]) == m["skipped"]
    events = (tmp_path / "run" / "events.csv").read_text()
    assert events.count(",skip,") == m["skipped"]


def test_bytes_sent_in_metrics_is_what_left_the_uplink_by_then(tmp_path):
    agents = {**THIN["agents"], "count": 2, "speed": 5.0e7}
    raw = {**THIN, "duration": 6, "eval": {"every": 2}, "agents": agents}
    simulate(tmp_path, raw, timing_only=False)
    import pandas as pd

    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    head0 = metrics[metrics["head"] == 0]
    assert (head0.bytes_sent <= 50_000 * head0.time + 1).all()  # never more than the link
    assert (head0.bytes_offered >= head0.bytes_sent).all()
    assert head0.bytes_sent.iloc[-1] > 0


STRESS = [
    {},
    {"network.bandwidth": 2.0e4, "network.queue.policy": "replace"},
    {"network.bandwidth": 2.0e4, "network.loss": 0.3, "network.transport": "reliable"},
    {
        "network.queue.limit": 5_000,
        "network.downlink": 1.0e4,
        "agents.churn": "{up_mean: 5, down_mean: 2}",
    },
]


@pytest.mark.parametrize("name", bundled.names())
@pytest.mark.parametrize("stress", range(len(STRESS)))
def test_every_offered_byte_has_exactly_one_fate(tmp_path, name, stress):
    overrides = ["duration=12", "eval.every=6"] + [f"{k}={v}" for k, v in STRESS[stress].items()]
    sc = load(bundled.directory() / f"{name}.yaml", overrides)
    record = RunDirectory(tmp_path / "run")
    s = build_simulation(sc, record, timing_only=True).run()
    record.close()
    fates = s["bytes_by_fate"]
    assert set(fates) == {
        "delivered", "lost", "queue_full", "superseded", "offline", "link_down",
        "sender_offline", "queued_at_end", "in_flight_at_end",
    }  # fmt: skip
    assert all(v >= 0 for v in fates.values())
    assert sum(fates.values()) == s["bytes_offered"] == sum(a["bytes_offered"] for a in s["agents"])
    assert s["bytes_sent"] == sum(a["bytes_sent"] for a in s["agents"]) <= s["bytes_offered"]
    for a in s["agents"]:
        rate = sc.agents.groups and next(
            (g.bandwidth for g in sc.agents.groups if a["agent"] in g.agents and g.bandwidth), None
        )
        rate = rate or sc.network.bandwidth
        traced = sc.network.uplink_changes.get(a["agent"])  # a bandwidth trace: its fastest
        rate = max(rate, *traced[1]) if traced else rate
        size = a["bytes_offered"] // a["messages_offered"] if a["messages_offered"] else 0
        assert a["bytes_sent"] <= rate * s["sim_time"] + size
