"""The simulated world: a SimPy clock, one process per agent, churn, the network, evaluation.

All time lives here. A step lasts ``FLOPs / speed × jitter`` of simulated time; its inputs
are read when it starts and its new weights become visible when it ends. The schedule
(steps, messages, churn) depends on the scenario and seed only, never on weights.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import time as wallclock
from typing import Any, Callable, Iterator

import networkx as nx
import numpy as np
import simpy

from .algorithms import build_learners, build_schedules
from .network import Link, Links, Message, Network
from .record import RunDirectory
from .scenario import LinkFailure, MarkovChurn, Switch
from .seeds import sampler, stream
from .topology import build as build_topology
from .topology import edge_list

DROP_REASONS = ("loss", "offline", "link_down", "sender_offline")
Progress = Callable[[float, int, int], None]  # (simulated time, events so far, messages sent)


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """Python's cycle collector rescans every live object again and again while millions of
    short-lived events go by; set-up objects (data, models) are frozen out of its scans and
    it runs less often. Nothing here relies on cycles being freed promptly."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _keep_freed_memory() -> None:
    """Let glibc reuse freed blocks instead of returning each large one to the system. Every
    evaluation and every batched wave allocates and frees tensors of MBs to tens of MBs, and
    mapping them anew each time was page faults all the way: a third of the batched engine's
    time at 1,000 agents (59 s → 42 s), 1.1 of the straggler run's 1.8 s of evaluation."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: blocks up to 1 GB come from the heap
        libc.mallopt(-1, 1 << 31)  # M_TRIM_THRESHOLD: keep up to 2 GB of freed heap
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


class Simulation:
    """One run of a scenario, recording into a run directory."""

    def __init__(self, scenario: Any, record: RunDirectory, timing_only: bool = False) -> None:
        self.sc, self.record, self.timing_only = scenario, record, timing_only
        seed, n, net = scenario.seed, scenario.agents.count, scenario.network
        self.agents = scenario.agents.per_agent(seed)
        models = [a.model for a in self.agents]
        if timing_only:  # the same schedule, no training: see algorithms.Schedule
            self.learners, self.split = build_schedules(scenario.data, models, scenario.algorithm,
                                                        scenario.training, seed), None
        else:
            self.learners, _, self.split = build_learners(scenario.data, models, scenario.algorithm,
                                                          scenario.training, seed, scenario.device)
            self.engine = None
            if scenario.engine == "batched":
                from .batched import Engine, unsupported

                missing = unsupported(scenario.algorithm, scenario.training)
                if missing:
                    raise ValueError(f"engine: batched does not support {'; '.join(missing)}; "
                                     f"use engine: per_agent")
                self.engine = Engine(self.learners)
                self.learners = self.engine.proxies()
        self.links = Links(build_topology(net.topology, n, seed))
        for i, learner in enumerate(self.learners):
            learner.degree = lambda i=i: len(self.links.neighbors(i))
        self.warnings: list[str] = []
        self._warn_if_disconnected(self.links.graph, net.topology.kind)
        self.switches = {k: build_topology(e.topology, n, seed, "switch", k)
                         for k, e in enumerate(net.schedule) if isinstance(e, Switch)}
        if getattr(self, "engine", None) is not None:  # room in its shared cache for every peer an agent can hear
            graphs = [self.links.graph, *self.switches.values()]
            self.engine.ensure_slots(max(len(set().union(*(g[i] for g in graphs))) for i in range(n)))
        for k, g in self.switches.items():
            self._warn_if_disconnected(g, net.schedule[k].topology.kind, f" (switched to at t={net.schedule[k].at:g})")

        self.env = simpy.Environment()
        self.online = [True] * n
        self.came_online = [self.env.event() for _ in range(n)]
        self.offline_since = [0.0] * n
        self.offline_time = np.zeros(n)
        self.steps = [0] * n
        self.jitter_rng = [stream(seed, "compute", i) for i in range(n)]
        self.fanout_rng = [stream(seed, "fanout", i) for i in range(n)]
        self.staleness: list[float] = []  # mean age of the predictions each distillation step used
        self.staleness_max = 0.0
        self._link_specs = {p: o for o in net.links for p in o.pairs()}  # later overrides win
        self.network = Network(self.env, self.links, uplink=[a.bandwidth or net.bandwidth for a in self.agents],
                               downlink=[a.downlink or net.downlink for a in self.agents], link=self._link,
                               seed=seed, online=lambda i: self.online[i], deliver=self._deliver,
                               log=record.event)
        self.procs = [self.env.process(self._agent(i)) for i in range(n)]
        churn = scenario.agents.churn
        if isinstance(churn, MarkovChurn):
            for i in churn.agents if churn.agents is not None else range(n):
                self.env.process(self._markov_churn(i, churn))
        elif churn is not None:
            for i, spans in churn.offline.items():
                self.env.process(self._scheduled_churn(i, spans))
        for k, event in enumerate(net.schedule):
            self.env.process(self._network_event(k, event))
        self.last_eval: list[tuple[np.ndarray, np.ndarray]] = []

    def _warn_if_disconnected(self, graph: nx.Graph, kind: str, when: str = "") -> None:
        if graph.number_of_nodes() > 1 and not nx.is_connected(graph):
            self.warnings.append(f"topology {kind}{when} is disconnected: knowledge cannot reach every agent")

    def _link(self, sender: int, receiver: int) -> Link:
        """A link's latency, loss and bandwidth cap: the network's, unless a ``links`` entry
        overrides them (the network asks once per link and keeps the answer)."""
        override = self._link_specs.get((min(sender, receiver), max(sender, receiver)))

        def pick(field: str) -> Any:
            value = getattr(override, field, None)
            return value if value is not None else getattr(self.sc.network, field, None)

        return Link(sampler(pick("latency")), pick("loss"), getattr(override, "bandwidth", None) or float("inf"))

    # --- processes ---------------------------------------------------------------------

    def _duration(self, agent: int, flops: float) -> float:
        a = self.agents[agent]
        sigma = a.jitter
        jitter = np.exp(sigma * self.jitter_rng[agent].standard_normal() - sigma**2 / 2) if sigma else 1.0
        # a Python float, not numpy's: it becomes the clock, and numpy scalars cost more in
        # every later sum, comparison and pickled event row
        return float(flops / a.speed * jitter)

    def _agent(self, i: int):
        learner, env, log = self.learners[i], self.env, self.record.event
        share_every = self.sc.algorithm.share_every
        while True:
            try:
                if not self.online[i]:
                    yield self.came_online[i]
                step = learner.begin_step(env.now)
                ages = step.staleness()
                if ages is not None:
                    self.staleness.append(ages[0])
                    self.staleness_max = max(self.staleness_max, ages[1])
                    log(env.now, "distill", i, staleness=ages[0], staleness_max=ages[1])
                yield env.timeout(self._duration(i, step.flops))
                learner.end_step(step)
                self.steps[i] += 1
                log(env.now, "step", i)
                if learner.sends and self.links.neighbors(i) and self.steps[i] % share_every == 0:
                    yield env.timeout(self._duration(i, learner.message_flops()))
                    payload = learner.make_message(env.now)
                    if payload is not None:
                        for j in self._targets(i):
                            self.network.send(Message(i, j, len(payload), env.now, payload))
            except simpy.Interrupt:
                pass  # went offline: the step or message in progress is lost

    def _targets(self, i: int) -> list[int]:
        """The neighbours a share goes to: all of them, or ``fanout`` drawn uniformly without replacement."""
        nbrs, k = self.links.neighbors(i), self.sc.network.fanout
        if k is None or len(nbrs) <= k:
            return nbrs
        return sorted(self.fanout_rng[i].choice(nbrs, k, replace=False).tolist())

    def _go_offline(self, i: int) -> None:
        self.online[i] = False
        self.offline_since[i] = self.env.now
        self.came_online[i] = self.env.event()
        self.procs[i].interrupt()
        self.network.went_offline(i)
        self.record.event(self.env.now, "offline", i)

    def _go_online(self, i: int) -> None:
        self.online[i] = True
        self.offline_time[i] += self.env.now - self.offline_since[i]
        self.came_online[i].succeed()
        self.record.event(self.env.now, "online", i)

    def _markov_churn(self, i: int, churn: MarkovChurn):
        rng = stream(self.sc.seed, "churn", i)
        while True:
            yield self.env.timeout(rng.exponential(churn.up_mean))
            self._go_offline(i)
            yield self.env.timeout(rng.exponential(churn.down_mean))
            self._go_online(i)

    def _scheduled_churn(self, i: int, spans: list[tuple[float, float]]):
        for start, end in spans:
            yield self.env.timeout(start - self.env.now)
            self._go_offline(i)
            yield self.env.timeout(end - self.env.now)
            self._go_online(i)

    def _log_links(self, change: tuple[list, list]) -> None:
        lost, regained = change
        for event, pairs in (("link_down", lost), ("link_up", regained)):
            for a, b in pairs:
                self.record.event(self.env.now, event, a, b)

    def _network_event(self, k: int, ev: Any):
        """A scheduled change of who can reach whom; messages in flight over a cut link are dropped."""
        yield self.env.timeout(ev.at)
        now, links = self.env.now, self.links
        if isinstance(ev, Switch):
            self.record.event(now, "switch", None)
            self._log_links(links.switch(self.switches[k], now))
            return
        if isinstance(ev, LinkFailure):
            pairs = ev.pairs()
            self._log_links(links.fail(pairs, now))
        else:
            self.record.event(now, "partition", None)
            self._log_links(links.partition(k, ev.labels(self.sc.agents.count), now))
        if ev.until is None:
            return
        yield self.env.timeout(ev.until - now)
        if isinstance(ev, LinkFailure):
            self._log_links(links.restore(pairs, self.env.now))
        else:
            self.record.event(self.env.now, "heal", None)
            self._log_links(links.heal(k, self.env.now))

    def _deliver(self, msg: Message) -> None:
        self.learners[msg.receiver].absorb(msg.payload, self.env.now)

    def _evaluate(self) -> None:
        if self.timing_only:
            self.record.flush()
            return
        now, net = self.env.now, self.network
        self.last_eval = [learner.evaluate() for learner in self.learners]
        for i, (shared, private) in enumerate(self.last_eval):
            for h in range(len(shared)):
                self.record.metric(now, i, h, int(self.steps[i]), float(private[h]), float(shared[h]),
                                   int(net.bytes_sent[i]), int(net.bytes_received[i]))
        self.record.flush()

    def _evaluations(self):
        while True:
            self._evaluate()
            yield self.env.timeout(self.sc.eval.every)

    def _online_fraction(self, i: int) -> float:
        now = self.env.now
        offline = self.offline_time[i] + (0.0 if self.online[i] else now - self.offline_since[i])
        return 1.0 - offline / now if now > 0 else 1.0

    def _ages_as_teacher(self) -> list[float | None]:
        """Per agent, the mean age of its predictions at the moments peers distilled from them."""
        total, count = np.zeros(len(self.learners)), np.zeros(len(self.learners))
        for learner in self.learners:
            for sender, (s, c) in learner.teacher_ages().items():
                total[sender] += s
                count[sender] += c
        return [float(t / c) if c else None for t, c in zip(total, count)]

    # --- driving -----------------------------------------------------------------------

    def run(self, progress: Progress | None = None, ticks: int = 200) -> dict[str, Any]:
        """Run to ``duration`` (evaluating every ``eval.every`` and at the end); return the summary."""
        start = wallclock.perf_counter()
        self.record.write_scenario(self.sc.resolved())
        self.record.write_text("topology.edges", edge_list(self.links.graph))
        self.env.process(self._evaluations())
        duration = self.sc.duration
        _keep_freed_memory()
        with _few_collections():
            for k in range(1, ticks + 1):
                self.env.run(until=duration * k / ticks)
                if progress:
                    progress(self.env.now, self.record.events, sum(self.network.sent))
        self._evaluate()
        summary = self.summary(wallclock.perf_counter() - start)
        self.record.write_summary(summary)
        return summary

    def summary(self, wall_time: float, interrupted: bool = False) -> dict[str, Any]:
        net = self.network
        shared = np.array([s for s, _ in self.last_eval])  # [agents, heads]
        private = np.array([p for _, p in self.last_eval])
        best = int(shared.mean(0).argmax()) if len(shared) else 0
        q = np.percentile(self.staleness, [50, 90, 99]).tolist() if self.staleness else [None] * 3
        as_teacher = self._ages_as_teacher()
        return {
            "name": self.sc.name,
            "seed": self.sc.seed,
            "algorithm": self.sc.algorithm.name,
            "sim_time": float(self.env.now),
            "wall_time_s": round(wall_time, 3),
            "interrupted": interrupted,
            "timing_only": self.timing_only,
            "events": self.record.events,
            "steps": sum(self.steps),
            "messages": {
                "sent": sum(net.sent),
                "delivered": int(net.delivered),
                "dropped": int(sum(net.dropped.values())),
                "dropped_by_reason": {r: int(net.dropped[r]) for r in DROP_REASONS},
            },
            "bytes_sent": sum(net.bytes_sent),
            "bytes_received": sum(net.bytes_received),
            "staleness": {"p50": q[0], "p90": q[1], "p99": q[2],
                          "mean": float(np.mean(self.staleness)) if self.staleness else None,
                          "max": self.staleness_max if self.staleness else None,
                          "distill_steps": len(self.staleness)},
            "final": {
                "mean_private_acc": private.mean(0).tolist() if len(private) else [],
                "mean_shared_acc": shared.mean(0).tolist() if len(shared) else [],
                "best_head": best,
                "best_head_shared_acc": float(shared.mean(0)[best]) if len(shared) else None,
            },
            "agents": [
                {
                    "agent": i,
                    "group": a.group,
                    "speed": a.speed,
                    "steps": int(self.steps[i]),
                    "online_fraction": self._online_fraction(i),
                    "messages_sent": int(net.sent[i]),
                    "bytes_sent": int(net.bytes_sent[i]),
                    "bytes_received": int(net.bytes_received[i]),
                    "private_samples": int(len(self.split.private[i])) if self.split else None,
                    "shared_acc": shared[i].tolist() if len(shared) else [],
                    "private_acc": private[i].tolist() if len(private) else [],
                    "staleness_as_teacher": as_teacher[i],
                }
                for i, a in enumerate(self.agents)
            ],
            "warnings": self.warnings,
        }
