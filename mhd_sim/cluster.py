"""Sweep points as Ray tasks on a cluster: the driver places every point itself.

Ray could place and retry the tasks on its own, but then the sweep could not say which node
ran a point, could not keep a node with another mhd-sim (whose points would give other
numbers) out before anything runs on it, and would retry a point lost with its node without
counting it. So each point is pinned to a node the driver chose (hard node affinity), one
per CPU of that node; a node is used only once a probe task on it reported the same mhd-sim
(version and source), torch and Python as the driver's; a point whose node or worker died is
put back and run on another node, at most :data:`RETRIES` times; and the head is probed
once a second, so that losing it ends the sweep in one line (the finished points kept) rather
than when Ray gives up a minute later.

    >>> host_port("ray://head:10001"), host_port("10.0.0.1:6379"), host_port("auto")
    (('head', 10001), ('10.0.0.1', 6379), None)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import socket
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .scenario import ScenarioError

Point = Any  # a sweeps.Point (its name and scenario text); sweeps imports this module

RETRIES = 3  # reruns of a point whose node or worker died
PROBE_EVERY, LOST_AFTER = 1.0, 5.0  # seconds: the head probed, and given up after


def host_port(address: str | None) -> tuple[str, int] | None:
    """The host and port a cluster address connects to (None: found by Ray, as ``auto``)."""
    if not address or address == "auto":
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def reachable(where: tuple[str, int], timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(where, timeout=timeout).close()
        return True
    except OSError:
        return False


def answering(address: str | None) -> tuple[str, int] | None:
    """The head's host and port, once it answered (a sweep checks before it starts)."""
    where = host_port(address)
    if where and not reachable(where):
        raise ScenarioError(
            [
                f"no Ray cluster answers at {address}: start one there (ray start --head) "
                "or give the head's address with --address"
            ]
        )
    return where


def identity() -> dict[str, str]:
    """What decides a point's numbers on a machine: mhd-sim (its version and a digest of its
    source), torch and Python. Run on every node before it gets a point."""
    package = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    version = sys.modules[__package__].__version__  # the package this module came with
    return {
        "mhd-sim": f"{version} (source {digest.hexdigest()[:12]})",
        "torch": importlib.metadata.version("torch"),
        "python": sys.version.split()[0],
    }


def differences(node: dict[str, str], driver: dict[str, str]) -> str:
    """``mhd-sim 0.2.0 (source …) where the driver has 0.1.0 (source …)``; empty: none."""
    return ", ".join(
        f"{k} {node.get(k)} where the driver has {v}" for k, v in driver.items() if node.get(k) != v
    )


@dataclass
class Node:
    ip: str
    slots: int  # its CPUs: points at a time
    state: str = "checking"  # checking, ok, refused, suspect (a point failed there), dead
    busy: int = 0


@dataclass
class ClusterView:
    """What the progress bar shows of a cluster sweep."""

    running: int = 0
    retried: int = 0
    nodes: dict[str, int] = field(default_factory=dict)  # ip -> points running there
    refused: list[str] = field(default_factory=list)
    ran: Counter = field(default_factory=Counter)  # ip -> points finished there

    def line(self) -> str:
        """``2 running on 10.0.0.1 (1), 10.0.0.2 (1); 1 retried``"""
        where = ", ".join(f"{ip} ({n})" for ip, n in self.nodes.items()) or "no node yet"
        return "; ".join([f"{self.running} running on {where}", *self._after(self.retried)])

    def summary(self) -> str:
        """``10.0.0.1 ran 3, 10.0.0.2 ran 2; 1 retried``"""
        ran = ", ".join(f"{ip} ran {n}" for ip, n in sorted(self.ran.items())) or "no point ran"
        return "; ".join([ran, *self._after(True)])

    def _after(self, retried: bool) -> list[str]:
        """The retries (when ``retried``) and the refused nodes (when any)."""
        out = [f"{self.retried} retried"] if retried else []
        return out + ([f"refused {', '.join(self.refused)}"] if self.refused else [])


def lost(address: str, finished: int, why: str) -> ScenarioError:
    return ScenarioError(
        [
            f"lost the Ray cluster at {address} ({why}); the finished points are kept "
            f"({finished} this time): start the cluster again (ray start --head on the head "
            "node) and run the same command, or mhd-sim sweep --resume, to finish the others"
        ]
    )


def ray_backend(
    todo: list[Point],
    jobs: int,
    address: str | None,
    run_point: Callable,
    on_cluster: Callable[[ClusterView], None] = lambda view: None,
    on_note: Callable[[str], None] = lambda line: None,
) -> Iterator[tuple[Point, str, str, dict[str, bytes], str, int]]:
    """Yield (point, status, error, files, node address, retries) as points finish.

    ``address`` None starts a Ray instance of ``jobs`` CPUs on this machine, on 127.0.0.1
    (nothing listens on the machine's network interface); otherwise it joins that cluster.
    ``run_point(scenario_text)`` runs on a node and returns (status, error, files)."""
    if address is None:  # a single node pinned to loopback; Ray reads this when imported
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise ScenarioError(["--backend ray needs Ray: pip install 'mhd-sim[ray]'"]) from None
    where = answering(address)
    started = not ray.is_initialized()
    if started:
        if address:
            kwargs = {"address": address}
        else:  # Ray imported before the variable was set (by the API's caller): the same
            from ray._private import ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = False
            kwargs = {"num_cpus": jobs}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kwargs)
        elsewhere = {n["NodeManagerAddress"] for n in ray.nodes()} - {"127.0.0.1"}
        if not address and elsewhere:
            on_note(f"warning: the local Ray instance listens at {', '.join(elsewhere)}, "
                    "not only on 127.0.0.1")  # fmt: skip
    if where is None and address:  # auto: the head Ray found
        where = host_port(ray.get_runtime_context().gcs_address)
    name = address or "the local Ray instance"
    tasks = ray.remote(num_cpus=1, max_retries=0)(run_point)
    sched = Scheduler(ray, todo, tasks, on_cluster, on_note)
    try:
        while sched.queue or sched.running:
            sched.watch(lambda: where is None or reachable(where, timeout=1.0), name)
            yield from sched.step(name)
    except (OSError, ray.exceptions.RaySystemError) as e:  # this node's Ray lost the head
        raise lost(name, sched.finished, f"{type(e).__name__}: {e}".splitlines()[0]) from None
    finally:
        alive = where is None or reachable(where, timeout=1.0)
        for ref in [*sched.running, *sched.checks] if alive else ():
            try:
                ray.cancel(ref, force=True)
            except Exception:  # its node is gone already: nothing left to cancel
                pass
        if started and alive:  # shutting down against a lost head would wait for it
            ray.shutdown()


class Scheduler:
    """The driver's side of a cluster sweep: nodes checked as they join, points placed on
    those that passed, a point lost with its node put back."""

    def __init__(
        self,
        ray: ModuleType,
        todo: list[Point],
        tasks: Any,  # the point's Ray remote function
        on_cluster: Callable[[ClusterView], None],
        on_note: Callable[[str], None],
    ) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.ray, self.tasks, self.on_cluster, self.on_note = ray, tasks, on_cluster, on_note
        self.pin = lambda node_id: NodeAffinitySchedulingStrategy(node_id, soft=False)
        self.probe = ray.remote(num_cpus=0, max_retries=0)(identity)
        self.mine = identity()
        self.nodes: dict[str, Node] = {}
        self.checks: dict = {}  # probe ref -> node id
        self.running: dict = {}  # task ref -> (point, node id)
        self.queue, self.retries, self.finished = deque(todo), Counter(), 0
        self.view = ClusterView()
        self.last_seen = self.last_probe = time.monotonic() - PROBE_EVERY

    def watch(self, head_answers: Callable[[], bool], name: str) -> None:
        """Once a second: the head probed (lost after :data:`LOST_AFTER` s of silence), then
        nodes that joined are checked and nodes that left are written off."""
        now = time.monotonic()
        if now - self.last_probe < PROBE_EVERY:
            return
        self.last_probe = now
        if not head_answers():
            if now - self.last_seen > LOST_AFTER:
                raise lost(name, self.finished, f"no answer for {LOST_AFTER:g} s")
            return
        self.last_seen = now
        for n in self.ray.nodes():
            node_id, cpus = n["NodeID"], int(n.get("Resources", {}).get("CPU", 0))
            known = self.nodes.get(node_id)
            if n["Alive"] and cpus > 0 and (known is None or known.state == "suspect"):
                if known is None:
                    self.nodes[node_id] = Node(n["NodeManagerAddress"], cpus)
                self.nodes[node_id].state = "checking"  # again, after a point failed there
                ref = self.probe.options(scheduling_strategy=self.pin(node_id)).remote()
                self.checks[ref] = node_id
            elif not n["Alive"] and known is not None and known.state not in ("dead", "refused"):
                known.state, known.busy = "dead", 0
                self.on_note(f"node {known.ip} left the cluster; its points run elsewhere")

    def step(self, name: str) -> Iterator[tuple[Point, str, str, dict[str, bytes], str, int]]:
        """Fill every free CPU of the nodes that passed, then wait up to a second for a
        point or a check to end; yield the points that ended."""
        for node_id, node in self.nodes.items():
            while self.queue and node.state == "ok" and node.busy < node.slots:
                p = self.queue.popleft()
                ref = self.tasks.options(scheduling_strategy=self.pin(node_id)).remote(p.scenario)
                self.running[ref], node.busy = (p, node_id), node.busy + 1
        self.publish()
        if not self.running and not self.checks and self.queue and self.nodes:
            refused = ", ".join(self.view.refused) or "none has a CPU"
            raise ScenarioError([f"no node of {name} can run points (refused: {refused})"])
        pending = [*self.running, *self.checks]
        ready = self.ray.wait(pending, num_returns=1, timeout=PROBE_EVERY)[0] if pending else ()
        if not pending:
            time.sleep(PROBE_EVERY)
        for ref in ready:
            if ref in self.checks:
                self.checked(ref)
            elif (done := self.ended(ref)) is not None:
                yield done

    def checked(self, ref: Any) -> None:
        node = self.nodes[self.checks.pop(ref)]
        try:
            theirs = self.ray.get(ref)
        except self.ray.exceptions.RayError:  # it died before answering
            node.state = "suspect"  # asked again while Ray says it is alive
            return
        why = differences(theirs, self.mine)
        node.state = "refused" if why else "ok"
        if why:  # one line, before any point runs there
            self.view.refused.append(node.ip)
            self.on_note(f"node {node.ip} refused: {why}; its points would give other "
                         "numbers: install the driver's versions there")  # fmt: skip

    def ended(self, ref: Any) -> tuple[Point, str, str, dict[str, bytes], str, int] | None:
        p, node_id = self.running.pop(ref)
        node = self.nodes[node_id]
        node.busy = max(0, node.busy - 1)
        try:
            status, error, files = self.ray.get(ref)
        except self.ray.exceptions.RayError as e:  # its node or worker died: run it elsewhere
            if node.state == "ok":  # no more points there until it answers again
                node.state = "suspect"
            if self.retries[p] < RETRIES:
                self.retries[p] += 1
                self.queue.appendleft(p)
                self.on_note(f"{p.name}: lost with node {node.ip} ({type(e).__name__}); "
                             f"run again (retry {self.retries[p]})")  # fmt: skip
                return None
            why = str(e).splitlines()[0] if str(e) else ""
            status, error, files = "failed", f"ray: {type(e).__name__}: {why}", {}
            error += f" (after {RETRIES} retries)"
        self.finished += status == "done"
        self.view.ran[node.ip] += 1
        self.publish()
        return p, status, error, files, node.ip, self.retries[p]

    def publish(self) -> None:
        view = self.view
        view.running, view.retried = len(self.running), sum(self.retries.values())
        view.nodes = {n.ip: n.busy for n in self.nodes.values() if n.state == "ok"}
        self.on_cluster(view)
