"""The simulated world: a SimPy clock, one process per agent, churn, the network, evaluation.

All time lives here. A step lasts ``FLOPs / speed × jitter`` of simulated time; its inputs
are read when it starts and its new weights become visible when it ends. The schedule
(steps, messages, churn) depends on the scenario and seed only, never on weights.
"""
from __future__ import annotations

import time as wallclock
from typing import Any, Callable

import networkx as nx
import numpy as np
import simpy

from .algorithms import build_learners
from .network import Message, Network
from .record import RunDirectory
from .seeds import stream
from .topology import build as build_topology

Progress = Callable[[float, int, int], None]  # (simulated time, events so far, messages sent)


class Simulation:
    """One run of a scenario, recording into a run directory."""

    def __init__(self, scenario: Any, record: RunDirectory) -> None:
        self.sc, self.record = scenario, record
        seed, n = scenario.seed, scenario.agents.count
        self.agents = scenario.agents.per_agent()
        self.learners, self.dataset, self.split = build_learners(
            scenario.data, [a.model for a in self.agents], scenario.algorithm, scenario.training, seed,
            scenario.device)
        topo = scenario.network.topology
        self.graph = build_topology(topo, n, seed)
        self.neighbors = [sorted(self.graph.neighbors(i)) for i in range(n)]
        self.warnings: list[str] = []
        if n > 1 and not nx.is_connected(self.graph):
            self.warnings.append(f"topology {topo.kind} is disconnected: knowledge cannot reach every agent")

        self.env = simpy.Environment()
        self.online = [True] * n
        self.came_online = [self.env.event() for _ in range(n)]
        self.steps = np.zeros(n, dtype=np.int64)
        self.jitter_rng = [stream(seed, "compute", i) for i in range(n)]
        self.staleness: list[float] = []  # mean age of the predictions each distillation step used
        net = scenario.network
        self.network = Network(self.env, n, bandwidth=net.bandwidth, latency=net.latency, loss=net.loss,
                               seed=seed, online=lambda i: self.online[i], deliver=self._deliver,
                               log=record.event)
        self.procs = [self.env.process(self._agent(i)) for i in range(n)]
        if scenario.agents.churn is not None:
            for i in range(n):
                self.env.process(self._churn(i))
        self.last_eval: list[tuple[np.ndarray, np.ndarray]] = []

    # --- processes ---------------------------------------------------------------------

    def _duration(self, agent: int, flops: float) -> float:
        a = self.agents[agent]
        sigma = a.jitter
        jitter = np.exp(sigma * self.jitter_rng[agent].standard_normal() - sigma**2 / 2) if sigma else 1.0
        return flops / a.speed * jitter

    def _agent(self, i: int):
        learner, env, log = self.learners[i], self.env, self.record.event
        share_every = self.sc.algorithm.share_every
        while True:
            try:
                if not self.online[i]:
                    yield self.came_online[i]
                step = learner.begin_step(env.now)
                if len(step.ages):
                    self.staleness.append(float(step.ages.mean()))
                    log(env.now, "distill", i, staleness=self.staleness[-1])
                yield env.timeout(self._duration(i, step.flops))
                learner.end_step(step)
                self.steps[i] += 1
                log(env.now, "step", i)
                if learner.sends and self.neighbors[i] and self.steps[i] % share_every == 0:
                    yield env.timeout(self._duration(i, learner.message_flops()))
                    payload = learner.make_message(env.now)
                    if payload is not None:
                        for j in self.neighbors[i]:
                            self.network.send(Message(i, j, len(payload), env.now, payload))
            except simpy.Interrupt:
                pass  # went offline: the step or message in progress is lost

    def _churn(self, i: int):
        rng, churn = stream(self.sc.seed, "churn", i), self.sc.agents.churn
        while True:
            yield self.env.timeout(rng.exponential(churn.up_mean))
            self.online[i] = False
            self.came_online[i] = self.env.event()
            self.procs[i].interrupt()
            self.network.sender_offline(i)
            self.record.event(self.env.now, "offline", i)
            yield self.env.timeout(rng.exponential(churn.down_mean))
            self.online[i] = True
            self.came_online[i].succeed()
            self.record.event(self.env.now, "online", i)

    def _deliver(self, msg: Message) -> None:
        self.learners[msg.receiver].absorb(msg.payload, self.env.now)

    def _evaluate(self) -> None:
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

    def _age_as_teacher(self, sender: int) -> float | None:
        """Mean age of ``sender``'s predictions at the moments peers distilled from them."""
        total = count = 0.0
        for learner in self.learners:
            s, c = learner.teacher_ages().get(sender, (0.0, 0))
            total, count = total + s, count + c
        return total / count if count else None

    # --- driving -----------------------------------------------------------------------

    def run(self, progress: Progress | None = None, ticks: int = 200) -> dict[str, Any]:
        """Run to ``duration`` (evaluating every ``eval.every`` and at the end); return the summary."""
        start = wallclock.perf_counter()
        self.record.write_scenario(self.sc.resolved())
        self.env.process(self._evaluations())
        duration = self.sc.duration
        for k in range(1, ticks + 1):
            self.env.run(until=duration * k / ticks)
            if progress:
                progress(self.env.now, self.record.events, int(self.network.sent.sum()))
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
        return {
            "name": self.sc.name,
            "seed": self.sc.seed,
            "algorithm": self.sc.algorithm.name,
            "sim_time": float(self.env.now),
            "wall_time_s": round(wall_time, 3),
            "interrupted": interrupted,
            "events": self.record.events,
            "steps": int(self.steps.sum()),
            "messages": {
                "sent": int(net.sent.sum()),
                "delivered": int(net.delivered),
                "dropped": int(sum(net.dropped.values())),
                "dropped_by_reason": dict(sorted(net.dropped.items())),
            },
            "bytes_sent": int(net.bytes_sent.sum()),
            "bytes_received": int(net.bytes_received.sum()),
            "staleness": {"p50": q[0], "p90": q[1], "p99": q[2]},
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
                    "messages_sent": int(net.sent[i]),
                    "bytes_sent": int(net.bytes_sent[i]),
                    "bytes_received": int(net.bytes_received[i]),
                    "private_samples": int(len(self.split.private[i])),
                    "shared_acc": shared[i].tolist() if len(shared) else [],
                    "private_acc": private[i].tolist() if len(private) else [],
                    "staleness_as_teacher": self._age_as_teacher(i),
                }
                for i, a in enumerate(self.agents)
            ],
            "warnings": self.warnings,
        }
