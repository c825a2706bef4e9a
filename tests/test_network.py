import numpy as np
import pytest
import simpy

from mhd_sim.network import Message, Network
from mhd_sim.scenario import validate


def make_network(latency=0.05, bandwidth=1e6, loss=0.0, agents=3, online=None):
    env = simpy.Environment()
    rows, delivered = [], []
    spec = validate({"network": {"latency": latency}}).network.latency
    net = Network(env, agents, bandwidth=bandwidth, latency=spec, loss=loss, seed=0,
                  online=online or (lambda i: True), deliver=delivered.append,
                  log=lambda t, e, a, peer=None, bytes=None, staleness=None, reason=None:
                  rows.append((t, e, a, peer, bytes, reason)))
    return env, net, rows, delivered


def times(rows, event):
    return [r[0] for r in rows if r[1] == event]


def test_lone_message_takes_bytes_over_bandwidth_plus_latency():
    env, net, rows, delivered = make_network(latency=0.05, bandwidth=1e6)
    env.run(until=1.25)
    net.send(Message(0, 1, 11292, env.now, b""))
    env.run()
    (sent,), (arrived,) = times(rows, "send"), times(rows, "deliver")
    assert sent == 1.25
    assert arrived - sent == pytest.approx(11292 / 1e6 + 0.05, abs=1e-9)
    assert delivered[0].receiver == 1


def test_burst_arrives_spaced_by_transmission_time():
    size, bw, lat, n = 5000, 2e5, 0.3, 6
    env, net, rows, _ = make_network(latency=lat, bandwidth=bw)
    for k in range(n):
        net.send(Message(0, 1 + k % 2, size, 0.0, b""))
    env.run()
    arrivals = np.array(times(rows, "deliver"))
    expected = (np.arange(1, n + 1)) * size / bw + lat
    np.testing.assert_allclose(arrivals, expected, atol=1e-9)
    np.testing.assert_allclose(np.diff(arrivals), size / bw, atol=1e-9)


def test_uplinks_are_independent():
    env, net, rows, _ = make_network(latency=0.0, bandwidth=1e3)
    net.send(Message(0, 2, 1000, 0.0, b""))
    net.send(Message(1, 2, 1000, 0.0, b""))
    env.run()
    assert times(rows, "deliver") == pytest.approx([1.0, 1.0], abs=1e-12)


def test_loss_rate_matches_probability():
    n, p = 4000, 0.2
    env, net, rows, _ = make_network(latency=0.0, bandwidth=1e9, loss=p)
    for k in range(n):
        net.send(Message(0, 1, 100, 0.0, b""))
    env.run()
    lost = sum(1 for r in rows if r[1] == "drop" and r[5] == "loss")
    sd = np.sqrt(n * p * (1 - p))
    assert abs(lost - n * p) < 3.3 * sd
    assert lost + len(times(rows, "deliver")) == n


def test_messages_to_offline_agents_are_dropped_and_counted():
    env, net, rows, delivered = make_network(online=lambda i: i != 1)
    net.send(Message(0, 1, 100, 0.0, b""))
    net.send(Message(0, 2, 100, 0.0, b""))
    env.run()
    assert [r[5] for r in rows if r[1] == "drop"] == ["offline"]
    assert [m.receiver for m in delivered] == [2]
    assert net.dropped["offline"] == 1 and net.delivered == 1


def test_sender_going_offline_drops_its_queue():
    env, net, rows, _ = make_network(bandwidth=100.0)
    for _ in range(3):
        net.send(Message(0, 1, 100, 0.0, b""))  # 1 s each on the wire
    env.run(until=0.5)
    net.sender_offline(0)
    env.run()
    assert net.dropped["sender_offline"] == 3 and net.delivered == 0


def test_lognormal_latency_is_seeded_per_link():
    def arrivals():
        env, net, rows, _ = make_network(latency={"dist": "lognormal", "median": 0.1, "sigma": 0.5}, bandwidth=1e9)
        for k in range(50):
            net.send(Message(k % 3, (k + 1) % 3, 10, 0.0, b""))
        env.run()
        return times(rows, "deliver")
    a = arrivals()
    assert a == arrivals()
    assert 0.05 < np.median(a) < 0.2
