import numpy as np
import pytest
from network_helpers import binomial_interval, make_network, times

from mhd_sim.world.network import Link, Message, Queueing


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


@pytest.mark.parametrize("p", [0.01, 0.2, 0.5])
def test_loss_rate_is_within_the_binomial_99_percent_interval(p):
    n = 4000
    unbounded = Queueing(policy="unbounded")  # a burst of 400 kB: no buffer drops here
    env, net, rows, _ = make_network(latency=0.0, bandwidth=1e9, loss=p, queueing=unbounded)
    for k in range(n):
        net.send(Message(0, 1 + k % 2, 100, 0.0, b""))
    env.run()
    lost = sum(1 for r in rows if r[1] == "drop" and r[5] == "loss")
    low, high = binomial_interval(n, p)
    assert low <= lost <= high
    assert lost + len(times(rows, "deliver")) == n


@pytest.mark.parametrize("up,down", [(2e5, 5e4), (5e4, 2e5), (1e5, 1e5)])
def test_downlink_queue_makes_the_slower_side_the_bottleneck(up, down):
    """Store and forward: message k (1..n) of a burst is delivered at
    b/U + L + k·b/D when the downlink D is slower, at k·b/U + L + b/D when the uplink U is."""
    size, lat, n = 5000, 0.3, 5
    env, net, rows, _ = make_network(latency=lat, bandwidth=up, downlink=down)
    for _ in range(n):
        net.send(Message(0, 1, size, 0.0, b""))
    env.run()
    k = np.arange(1, n + 1)
    expected = size / up + lat + k * size / down if down < up else k * size / up + lat + size / down
    arrivals = np.array(times(rows, "deliver"))
    np.testing.assert_allclose(arrivals, expected, atol=1e-9)
    np.testing.assert_allclose(np.diff(arrivals), size / min(up, down), atol=1e-9)


def test_per_link_bandwidth_cap_and_latency():
    slow = Link(lambda rng: 0.5, 0.0, bandwidth=1e3)
    fast = Link(lambda rng: 0.01, 0.0)
    env, net, rows, _ = make_network(
        bandwidth=1e4, link=lambda a, b: slow if {a, b} == {0, 2} else fast
    )
    net.send(Message(0, 2, 1000, 0.0, b""))  # 1 s on the capped link, then 0.5 s
    net.send(Message(0, 1, 1000, 0.0, b""))  # waits for the uplink: 1 s, then 0.1 s + 0.01 s
    env.run()
    assert times(rows, "deliver") == pytest.approx([1.11, 1.5], abs=1e-9)


def test_a_link_cut_while_a_message_is_in_flight_drops_it():
    env, net, rows, delivered = make_network(latency=1.0, bandwidth=1e9)
    net.send(Message(0, 1, 10, 0.0, b""))
    net.send(Message(0, 2, 10, 0.0, b""))
    env.run(until=0.4)
    assert net.links.fail([(0, 1)], env.now) == ([(0, 1)], [])
    env.run(until=0.6)
    # back before the message would arrive
    assert net.links.restore([(1, 0)], env.now) == ([], [(0, 1)])
    env.run()
    assert [m.receiver for m in delivered] == [2]
    assert [r[5] for r in rows if r[1] == "drop"] == ["link_down"]
    net.send(Message(0, 1, 10, env.now, b""))  # sent after the restore: goes through
    env.run()
    assert [m.receiver for m in delivered] == [2, 1]


def test_messages_to_offline_agents_are_dropped_and_counted():
    env, net, rows, delivered = make_network(online=lambda i: i != 1)
    net.send(Message(0, 1, 100, 0.0, b""))
    net.send(Message(0, 2, 100, 0.0, b""))
    env.run()
    assert [r[5] for r in rows if r[1] == "drop"] == ["offline"]
    assert [m.receiver for m in delivered] == [2]
    assert net.traffic.dropped["offline"] == 1 and net.traffic.delivered == 1


def test_sender_going_offline_drops_its_queue():
    env, net, rows, _ = make_network(bandwidth=100.0)
    for _ in range(3):
        net.send(Message(0, 1, 100, 0.0, b""))  # 1 s each on the wire
    env.run(until=0.5)
    net.went_offline(0)
    env.run()
    assert net.traffic.dropped["sender_offline"] == 3 and net.traffic.delivered == 0


def test_lognormal_latency_is_seeded_per_link():
    def arrivals():
        env, net, rows, _ = make_network(
            latency={"dist": "lognormal", "median": 0.1, "sigma": 0.5}, bandwidth=1e9
        )
        for k in range(50):
            net.send(Message(k % 3, (k + 1) % 3, 10, 0.0, b""))
        env.run()
        return times(rows, "deliver")

    a = arrivals()
    assert a == arrivals()
    assert 0.05 < np.median(a) < 0.2


def test_a_receiver_that_went_offline_during_the_flight_loses_the_message():
    state = {"online": True}
    env, net, rows, delivered = make_network(
        latency=1.0, bandwidth=1e9, online=lambda i: i != 1 or state["online"]
    )
    net.send(Message(0, 1, 10, 0.0, b""))
    env.run(until=0.3)
    state["online"] = False
    net.went_offline(1)
    env.run(until=0.6)
    state["online"] = True  # back before the message arrives at t = 1
    env.run()
    assert delivered == [] and [r[5] for r in rows if r[1] == "drop"] == ["offline"]
    net.send(Message(0, 1, 10, env.now, b""))
    env.run()
    assert len(delivered) == 1
