"""A hand-made network for closed-form tests: complete graph, equal links, rows of events."""

import math

import networkx as nx
import numpy as np
import simpy

from mhd_sim.scenario import validate
from mhd_sim.seeds import sampler
from mhd_sim.world.links import Links
from mhd_sim.world.network import Link, Network, Queueing


def make_network(
    latency=0.05,
    bandwidth=1e6,
    loss=0.0,
    agents=3,
    online=None,
    downlink=None,
    link=None,
    queueing=None,
):
    env = simpy.Environment()
    rows, delivered = [], []
    spec = validate({"network": {"latency": latency}}).network.latency
    links = Links(nx.complete_graph(agents))
    net = Network(
        env,
        links,
        uplink=[bandwidth] * agents,
        downlink=[downlink] * agents,
        link=link or (lambda a, b: Link(sampler(spec), loss)),
        seed=0,
        online=online or (lambda i: True),
        deliver=delivered.append,
        log=lambda t, e, a, peer=None, bytes=None, staleness=None, staleness_max=None, reason=None: (  # noqa: E501
            rows.append((t, e, a, peer, bytes, reason))
        ),
        queueing=queueing or Queueing(),
    )
    return env, net, rows, delivered


def binomial_interval(n: int, p: float, level: float = 0.99) -> tuple[int, int]:
    """Central ``level`` interval of Binomial(n, p), from the exact pmf."""
    k = np.arange(n + 1)
    logpmf = (
        np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k])
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    cdf = np.cumsum(np.exp(logpmf))
    tail = (1 - level) / 2
    return int(np.searchsorted(cdf, tail)), int(np.searchsorted(cdf, 1 - tail))


def times(rows, event):
    return [r[0] for r in rows if r[1] == event]
