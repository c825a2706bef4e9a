"""The simulated world: a SimPy clock, one process per agent, churn, the network, evaluation.

All time lives here. A step lasts ``FLOPs / speed × jitter`` of simulated time; its inputs
are read when it starts and its new weights become visible when it ends. The schedule
(steps, messages, churn) depends on the scenario and seed only, never on weights.
"""

from __future__ import annotations

import math
import time as wallclock
from collections.abc import Callable
from typing import Any

import networkx as nx
import numpy as np
import simpy

from ..learning.seam import Population
from ..record.run_directory import RunDirectory
from ..seeds import sampler, stream
from ..wording import id_ranges
from . import churn as churn_process
from . import reach
from .dynamics import network_change
from .links import Links
from .network import Link, Network, Queueing
from .rounds import RoundServer
from .runtime import few_collections, keep_freed_memory
from .sharing import PeerSharing
from .summary import summary as run_summary
from .topology import build as build_topology
from .topology import edge_list
from .traces import Steps

Progress = Callable[[float, int, int], None]  # (simulated time, events so far, messages sent)
FLUSH_S = 1.0  # wall seconds between flushes of the run directory: a live page follows the run


def _fixed(seconds: float) -> Callable[[np.random.Generator], float]:
    return lambda rng: seconds


class Simulation:
    """One run of a scenario's population, recording into a run directory."""

    def __init__(self, scenario: Any, record: RunDirectory, population: Population) -> None:
        self.sc, self.record, self.population = scenario, record, population
        self.timing_only = population.label_dist is None
        seed, n, net = scenario.seed, scenario.agents.count, scenario.network
        self.agents = scenario.agents.per_agent(seed)
        self.learners = population.learners
        self.env = simpy.Environment()
        # how the agents talk: peer to peer over the topology, or in rounds through a server
        self.coordinator = (
            RoundServer(self, population.rounds) if population.rounds else PeerSharing(self)
        )
        self.links = Links(self.coordinator.graph())
        for i, learner in enumerate(self.learners):
            learner.neighbour_count = lambda i=i: len(self.links.neighbors(i))
        self.warnings: list[str] = list(population.warnings)
        self._warn_if_disconnected(self.links.graph, net.topology.kind)
        empty = [i for i, size in enumerate(population.private_samples or []) if size == 0]
        if empty:  # only a timing-only preview gets here: a full run refuses them at set-up
            self.warnings.append(
                f"{len(empty):,} of {n:,} agents have no private samples (agents "
                f"{id_ranges(empty)}): the preview runs their schedule as if they had one; "
                "a full run refuses them"
            )
        self.switches = {
            k: build_topology(e.topology, n, seed, "switch", k)
            for k, e in enumerate(net.schedule)
            if e.kind == "switch"
        }
        if population.reserve_peers is not None:  # room for every peer an agent can hear
            graphs = [self.links.graph, *self.switches.values()]
            population.reserve_peers(
                max(len(set().union(*(g[i] for g in graphs))) for i in range(n))
            )
        for k, g in self.switches.items():
            self._warn_if_disconnected(
                g, net.schedule[k].topology.kind, f" (switched to at t={net.schedule[k].at:g})"
            )

        self.online = [True] * n
        self.came_online = [self.env.event() for _ in range(n)]
        self.offline_since = [0.0] * n
        self.offline_time = np.zeros(n)
        self.steps = [0] * n
        # per agent: since when every head of its model predicts one class for every test
        # sample (a collapse: steps too large for the losses' weights), or None
        self.collapsed_since: list[float | None] = [None] * n
        self.jitter_rng = [stream(seed, "compute", i) for i in range(n)]
        traced = scenario.agents.speed_changes  # a speed trace's agents: FLOP/s over time
        self.speeds = [
            Steps(self.agents[i].speed, *traced[i]) if i in traced else None for i in range(n)
        ]
        self.staleness: list[float] = []  # mean age of the predictions each distillation step used
        self.staleness_max = 0.0
        self._link_specs = {p: o for o in net.links for p in o.pairs()}  # later overrides win
        extra = self.coordinator.nodes  # a server's uplink, beside the agents'
        server_uplink = self.coordinator.bandwidth or net.bandwidth
        self.network = Network(
            self.env,
            self.links,
            uplink=[a.bandwidth or net.bandwidth for a in self.agents] + [server_uplink] * extra,
            downlink=[a.downlink or net.downlink for a in self.agents] + [None] * extra,
            link=self._link,
            seed=seed,
            online=lambda i: i >= n or self.online[i],
            deliver=self.coordinator.deliver,
            log=record.event,
            queueing=Queueing(
                net.queue.policy,
                net.queue.limit,
                net.transport.kind == "reliable",
                net.transport.max_retries,
                net.transport.min_rto,
            ),
            unbounded=tuple(range(n, n + extra)),
            uplink_trace={
                i: Steps(a.bandwidth or net.bandwidth, *net.uplink_changes[i])
                for i, a in enumerate(self.agents)
                if i in net.uplink_changes
            },
        )
        self.coordinator.start()
        self.procs = [self.env.process(self._agent(i)) for i in range(n)]
        churn = scenario.agents.churn
        if churn is not None and churn.kind == "markov":
            for i in churn.agents if churn.agents is not None else range(n):
                self.env.process(churn_process.markov(self, i, churn))
        elif churn is not None:
            for i, spans in churn.spans(self.sc.duration).items():
                self.env.process(churn_process.scheduled(self, i, spans))
        for k, event in enumerate(net.schedule):
            self.env.process(network_change(self, k, event))
        self.last_eval: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._hops: tuple[int, np.ndarray] | None = None  # (links version, hop distances)
        self.label_dist = population.label_dist  # each agent's label mix π_i, for reach
        self._sampled_at, self._busy = 0.0, np.zeros(n + extra)  # last sample

    def _warn_if_disconnected(self, graph: nx.Graph, kind: str, when: str = "") -> None:
        if graph.number_of_nodes() > 1 and not nx.is_connected(graph):
            self.warnings.append(
                f"topology {kind}{when} is disconnected: knowledge cannot reach every agent"
            )

    def _link(self, sender: int, receiver: int) -> Link:
        """A link's latency, loss and bandwidth cap: the network's (the latency matrix's, if
        there is one), unless a ``links`` entry overrides them; a latency trace, from its
        first change on (the network asks once per link and keeps the answer)."""
        net = self.sc.network
        override = self._link_specs.get((min(sender, receiver), max(sender, receiver)))

        def pick(field: str) -> Any:
            value = getattr(override, field, None)
            return value if value is not None else getattr(net, field, None)

        latency = sampler(pick("latency"))
        if net.matrix is not None and getattr(override, "latency", None) is None:
            if sender < len(net.matrix) and receiver < len(net.matrix):  # not a server's
                latency = _fixed(net.matrix[sender][receiver])
        traced = net.latency_changes.get((sender, receiver))
        cap = getattr(override, "bandwidth", None) or math.inf
        capped = net.link_bandwidth_changes.get((sender, receiver))
        return Link(
            latency,
            pick("loss"),
            cap,
            Steps(math.nan, *traced) if traced else None,
            Steps(cap, *capped) if capped else None,
        )

    # --- processes ---------------------------------------------------------------------

    def duration(self, agent: int, flops: float) -> float:
        """Simulated seconds ``flops`` take on the agent: FLOPs / speed × its jitter draw."""
        a = self.agents[agent]
        sigma = a.jitter
        jitter = (
            np.exp(sigma * self.jitter_rng[agent].standard_normal() - sigma**2 / 2)
            if sigma
            else 1.0
        )
        # a Python float, not numpy's: it becomes the clock, and numpy scalars cost more in
        # every later sum, comparison and pickled event row
        speeds = self.speeds[agent]
        if speeds is not None:  # a speed trace: the work integrated over its changes
            return float(speeds.seconds(self.env.now, flops * jitter))
        return float(flops / a.speed * jitter)

    def _agent(self, i: int):
        """Agent i: a local step after another, each followed by what its coordinator asks
        (a share to peers, an upload in a round). Going offline interrupts it."""
        learner, env, log = self.learners[i], self.env, self.record.event
        after_step = self.coordinator.after_step
        while True:
            try:
                if not self.online[i]:
                    yield self.came_online[i]
                step = learner.begin_step(env.now)
                if step.staleness is not None:
                    mean_age, max_age = step.staleness
                    self.staleness.append(mean_age)
                    if max_age > self.staleness_max:
                        self.staleness_max = max_age
                    log(env.now, "distill", i, None, None, mean_age, max_age)
                yield env.timeout(self.duration(i, step.flops))
                learner.end_step(step)
                self.steps[i] += 1
                log(env.now, "step", i)
                yield from after_step(i)
            except simpy.Interrupt:
                pass  # went offline: the step or message in progress is lost

    def go_offline(self, i: int) -> None:
        self.online[i] = False
        self.coordinator.went_offline(i)
        self.offline_since[i] = self.env.now
        self.came_online[i] = self.env.event()
        self.procs[i].interrupt()
        self.network.went_offline(i)
        self.record.event(self.env.now, "offline", i)

    def go_online(self, i: int) -> None:
        self.online[i] = True
        self.offline_time[i] += self.env.now - self.offline_since[i]
        self.came_online[i].succeed()
        self.record.event(self.env.now, "online", i)

    def _evaluate(self) -> None:
        if self.timing_only:
            self.record.flush(self.env.now)
            return
        now, traffic = self.env.now, self.network.traffic
        self.network.settle()
        self.last_eval = [learner.evaluate() for learner in self.learners]
        for i, (_, _, per_class) in enumerate(self.last_eval):
            one_class = bool(((per_class == 1).sum(-1) == 1).all() and (
                (per_class == 0).sum(-1) == per_class.shape[-1] - 1).all())  # fmt: skip
            if not one_class or not self.steps[i]:
                self.collapsed_since[i] = None
            elif self.collapsed_since[i] is None:
                self.collapsed_since[i] = now
        self.record.metrics(
            (now, i, h, int(self.steps[i]), float(private[h]), float(shared[h]),
             traffic.bytes_sent[i], traffic.bytes_received[i], traffic.bytes_offered[i])
            for i, (shared, private, _) in enumerate(self.last_eval)
            for h in range(len(shared))
        )  # fmt: skip
        self._record_reach(now)
        for learner in self.learners:
            self.record.teachers(learner.teacher_rows(now))
        self.record.flush(now)

    def _record_reach(self, now: float) -> None:
        """``reach.csv``: every head's accuracy on the data of the agents at each hop distance,
        in the topology as it is now (hop distances computed again only after a change)."""
        links = self.links
        if self._hops is None or self._hops[0] != links.version:
            up = nx.Graph(list(links.edges_up()))
            self._hops = (links.version, reach.hops(up, len(self.agents)))
        per_class = [e[2] for e in self.last_eval]
        self.record.reach(reach.rows(now, self._hops[1], per_class, self.label_dist))

    def _evaluations(self):
        while True:
            self._evaluate()
            yield self.env.timeout(self.sc.eval.every)

    # --- driving -----------------------------------------------------------------------

    def run(self, progress: Progress | None = None, ticks: int = 200) -> dict[str, Any]:
        """Run to ``duration``, evaluating every ``eval.every`` and at the end; the summary."""
        start = wallclock.perf_counter()
        self.record.write_scenario(self.sc.resolved())
        self.record.write_text("topology.edges", edge_list(self.links.graph))
        if self.network.uplink_trace:  # what the figures draw beside accuracy
            self.record.write_text("uplinks.csv", self._uplinks())
        self.env.process(self._evaluations())
        duration = self.sc.duration
        keep_freed_memory()
        # the network's state is sampled at ticks: every tick up to 100 agents, fewer beyond
        # (about 20,000 rows of network.csv): sampling settles every uplink, which costs
        sample_every = max(1, len(self.agents) * ticks // 20_000)
        flushed = start
        with few_collections():
            for k in range(1, ticks + 1):
                self.env.run(until=duration * k / ticks)
                if k % sample_every == 0 or k == ticks:
                    self._sample_network()
                if wallclock.perf_counter() - flushed >= FLUSH_S:  # a watcher sees it soon
                    self.record.flush(self.env.now)
                    flushed = wallclock.perf_counter()
                if progress:
                    progress(self.env.now, self.record.events, sum(self.network.traffic.offered))
        self._evaluate()
        summary = self.summary(wallclock.perf_counter() - start)
        self.record.write_summary(summary)
        return summary

    def _uplinks(self) -> str:
        """``uplinks.csv``: each agent's uplink rate over the run, ``agent,time,bandwidth``
        (its rate at 0, then every change before the end)."""
        rows, traced = ["agent,time,bandwidth"], self.network.uplink_trace
        for i in range(len(self.agents)):
            steps = traced.get(i)
            rows.append(f"{i},0,{steps.at(0.0) if steps else self.network.uplink[i]!r}")
            if steps is not None:
                rows += [
                    f"{i},{t!r},{v!r}"
                    for t, v in zip(steps.times, steps.values)
                    if 0 < t < self.sc.duration
                ]
        return "\n".join(rows) + "\n"

    def _sample_network(self) -> None:
        """A row per agent in ``network.csv``: its uplink's queue, and its utilization since
        the last sample."""
        net, now = self.network, self.env.now
        net.settle()
        busy = net.busy()
        since = now - self._sampled_at
        utilization = (busy - self._busy) / since if since > 0 else np.zeros_like(busy)
        self._sampled_at, self._busy = now, busy
        tr = net.traffic
        self.record.network(
            zip(
                [now] * len(busy),
                range(len(busy)),
                net.queued_bytes(),
                utilization.round(6).tolist(),
                tr.bytes_offered,
                tr.bytes_sent,
            )
        )

    def summary(self, wall_time: float, interrupted: bool = False) -> dict[str, Any]:
        return run_summary(self, wall_time, interrupted)
