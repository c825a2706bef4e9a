"""What the live page shows, read from a run directory as it grows.

A run appends to its CSV files and flushes them about once a second of wall time (and at
every evaluation); ``LiveState.update`` reads only the whole lines added since its last
call, so watching a long run costs what the run adds, not what it holds. A file that
shrinks or is replaced (``--overwrite`` started a new run there) starts the reading over.
Everything is kept as short series, so one JSON document (``snapshot``) holds the whole run
for the page to replay: per evaluation the accuracy of every head and each agent's best
head, the bytes sent, the uplinks' queues, agents going offline, links failing, deliveries
per link and the staleness of the predictions used, in time bins.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from ...untrusted import read_text, read_yaml
from .. import status

BINS = 200  # time bins over the run for deliveries and staleness
MAX_FRAMES = 256  # network samples kept for the replay (halved as the run outgrows them)
LINK_AGENTS = 200  # up to this many agents, deliveries are kept per link
READ_LIMIT = 32 << 20  # bytes of one file read per update: a large run is caught up on in steps


class Tail:
    """The rows appended to a CSV file since the last call (whole lines only)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.inode = path, 0, None
        self.columns: dict[str, int] | None = None

    def rows(self) -> list[list[str]] | None:
        """New rows; None when the file shrank or was replaced (read it from the start)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None if self.offset else []
        if (self.inode is not None and st.st_ino != self.inode) or st.st_size < self.offset:
            return None
        self.inode = st.st_ino
        if st.st_size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(min(st.st_size - self.offset, READ_LIMIT))
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        rows = list(csv.reader(data[: end + 1].decode("utf-8", "replace").splitlines()))
        if self.columns is None and rows:
            self.columns = {name: i for i, name in enumerate(rows.pop(0))}
        return rows


def _float(cell: str) -> float | None:
    try:
        v = float(cell)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


class LiveState:
    """A run directory's state for the live page (``update`` reads what is new)."""

    def __init__(self, run: Path) -> None:
        self.run = Path(run)
        self.reset()

    def reset(self) -> None:
        self.tails = {
            name: Tail(self.run / f"{name}.csv")
            for name in ("metrics", "events", "network", "teachers")
        }
        self.meta: dict[str, Any] = {}
        self.n = 0
        self.edges: list[tuple[int, int]] = []
        self.pos: list[tuple[float, float]] = []
        self.topology_mtime: float | None = None
        self.sim_time = 0.0
        self.evals: dict[float, dict[str, Any]] = {}
        self.frames: list[tuple[float, float, list[int]]] = []  # (t, MB sent, queue per agent)
        self.stride, self.samples = 1, 0
        self.sample: tuple[float, float, dict[int, int]] | None = None
        self.changes: list[list[Any]] = []  # [t, what, agent or -1, peer or -1, up]
        self.delivered: defaultdict[int, Counter] = defaultdict(Counter)
        self.stale: defaultdict[int, list[float]] = defaultdict(lambda: [0.0, 0, 0.0])
        self.counts: Counter = Counter()
        self.teachers: defaultdict[tuple[float, int], list[float]] = defaultdict(lambda: [0.0, 0])
        self.status: dict[str, Any] = {}

    # --- reading -----------------------------------------------------------------------

    def update(self) -> bool:
        """Read what the run added; whether anything the page shows changed."""
        before = (self.status, self.sim_time, self.topology_mtime, len(self.meta))
        self._read_status()
        self._read_scenario()
        self._read_topology()
        grew = False
        for name, tail in self.tails.items():
            rows = tail.rows()
            if rows is None:  # a new run took the directory over
                self.reset()
                return True
            if rows:
                grew = True
                getattr(self, f"_{name}")(rows, tail.columns or {})
        return grew or before != (self.status, self.sim_time, self.topology_mtime, len(self.meta))

    def _read_status(self) -> None:
        st = status.read(self.run)
        self.status = {k: getattr(st, k) for k in ("state", "sim_time", "duration", "error")}
        if st.sim_time:
            self.sim_time = max(self.sim_time, float(st.sim_time))

    def _read_scenario(self) -> None:
        if self.meta or not (self.run / "scenario.yaml").is_file():
            return
        try:
            sc = read_yaml(self.run / "scenario.yaml", "run's scenario")
        except ValueError:
            return
        if not isinstance(sc, dict):
            return
        agents = sc.get("agents") if isinstance(sc.get("agents"), dict) else {}
        algorithm = sc.get("algorithm") if isinstance(sc.get("algorithm"), dict) else {}
        self.meta = {
            "name": str(sc.get("name", self.run.name)),
            "algorithm": str(algorithm.get("name", "")),
            "duration": _float(str(sc.get("duration", ""))) or 0.0,
        }
        self.n = max(self.n, int(agents.get("count", 0) or 0))

    def _read_topology(self) -> None:
        f = self.run / "topology.edges"
        try:
            mtime = f.stat().st_mtime
        except FileNotFoundError:
            return
        if mtime == self.topology_mtime:
            return
        try:
            text = read_text(f, "edge list")
        except ValueError:
            return
        pairs = set()
        for line in text.splitlines():
            cells = line.split()
            if len(cells) >= 2 and not line.startswith("#"):
                a, b = int(cells[0]), int(cells[1])
                pairs.add((min(a, b), max(a, b)))
        self.topology_mtime = mtime
        self.edges = sorted(pairs)
        self.n = max([self.n] + [b + 1 for _, b in self.edges])
        self.pos = layout(self.n, self.edges)

    @property
    def bin_width(self) -> float:
        return max(self.meta.get("duration") or self.status.get("duration") or 1.0, 1e-9) / BINS

    def _metrics(self, rows: list[list[str]], c: dict[str, int]) -> None:
        for r in rows:
            t, agent, head = float(r[c["time"]]), int(r[c["agent"]]), int(r[c["head"]])
            shared, private = _float(r[c["shared_acc"]]), _float(r[c["private_acc"]])
            e = self.evals.setdefault(t, {"heads": {}, "best": {}, "bytes": {}})
            h = e["heads"].setdefault(head, [0.0, 0.0, 0])
            h[0] += shared or 0.0
            h[1] += private or 0.0
            h[2] += 1
            if shared is not None:
                e["best"][agent] = max(shared, e["best"].get(agent, 0.0))
            e["bytes"][agent] = int(float(r[c["bytes_sent"]] or 0))
            self.sim_time = max(self.sim_time, t)

    def _network(self, rows: list[list[str]], c: dict[str, int]) -> None:
        for r in rows:
            t = float(r[c["time"]])
            if self.sample is None or self.sample[0] != t:
                self._keep_sample()
                self.sample = (t, 0.0, {})
            sent = float(r[c["bytes_sent"]] or 0)
            queued = int(float(r[c["queued_bytes"]] or 0))
            self.sample = (t, self.sample[1] + sent / 1e6, self.sample[2])
            self.sample[2][int(r[c["agent"]])] = queued
            self.sim_time = max(self.sim_time, t)

    def _keep_sample(self) -> None:
        """The sample just completed joins the frames, every ``stride``-th one; past
        ``MAX_FRAMES`` every other frame goes and the stride doubles."""
        if self.sample is None:
            return
        t, sent, queued = self.sample
        if self.samples % self.stride == 0:
            self.frames.append((t, round(sent, 6), [queued.get(a, 0) for a in range(self.n)]))
            if len(self.frames) > MAX_FRAMES:
                self.frames, self.stride = self.frames[::2], self.stride * 2
        self.samples += 1
        self.sample = None

    def _events(self, rows: list[list[str]], c: dict[str, int]) -> None:
        w, per_link = self.bin_width, self.n <= LINK_AGENTS
        for r in rows:
            t, kind = float(r[c["time"]]), r[c["event"]]
            self.counts[kind] += 1
            agent = int(r[c["agent"]]) if r[c["agent"]] else -1
            peer = int(r[c["peer"]]) if r[c["peer"]] else -1
            k = min(int(t / w), BINS - 1)
            if kind == "deliver" and per_link and peer >= 0:
                self.delivered[k][(peer, agent)] += 1
            elif kind == "distill":
                mean, top = _float(r[c["staleness"]]), _float(r[c["staleness_max"]])
                if mean is not None:
                    s = self.stale[k]
                    s[0], s[1], s[2] = s[0] + mean, s[1] + 1, max(s[2], top or mean)
            elif kind in ("offline", "online", "link_down", "link_up", "partition", "heal"):
                up = int(kind in ("online", "link_up", "heal"))
                self.changes.append([t, kind, agent, peer, up])
                if kind == "link_up" and agent >= 0 and peer >= 0:
                    pair = (min(agent, peer), max(agent, peer))
                    if pair not in self.edges:
                        self.edges.append(pair)
            elif kind == "switch":
                self.changes.append([t, kind, -1, -1, 1])
            self.sim_time = max(self.sim_time, t)

    def _teachers(self, rows: list[list[str]], c: dict[str, int]) -> None:
        for r in rows:
            acc = _float(r[c["teacher_acc"]])
            if acc is not None:
                s = self.teachers[(float(r[c["time"]]), int(r[c["head"]]))]
                s[0], s[1] = s[0] + acc, s[1] + 1

    # --- the page's document -----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the page draws, as plain JSON values."""
        times = sorted(self.evals)
        heads = sorted({h for e in self.evals.values() for h in e["heads"]})
        frames = self.frames + ([self._pending_frame()] if self.sample else [])
        w = self.bin_width
        return {
            "run": str(self.run),
            **{"name": self.run.name, "algorithm": "", "duration": 0.0, **self.meta},
            "status": self.status,
            "sim_time": self.sim_time,
            "n": self.n,
            "edges": self.edges,
            "pos": self.pos,
            "evals": {
                "t": times,
                "shared": {
                    h: [_mean(self.evals[t]["heads"].get(h), 0) for t in times] for h in heads
                },
                "private": {
                    h: [_mean(self.evals[t]["heads"].get(h), 1) for t in times] for h in heads
                },
                "agent_best": [
                    [_round(self.evals[t]["best"].get(a)) for a in range(self.n)] for t in times
                ],
                "mb_sent": [sum(self.evals[t]["bytes"].values()) / 1e6 for t in times],
            },
            "network": {
                "t": [f[0] for f in frames],
                "mb_sent": [f[1] for f in frames],
                "queued": [f[2] for f in frames],
            },
            "bin": w,
            "delivered": [
                [k, a, b, n] for k, c in sorted(self.delivered.items()) for (a, b), n in c.items()
            ],
            "staleness": [
                [(k + 0.5) * w, s[0] / s[1], s[2]] for k, s in sorted(self.stale.items())
            ],
            "teachers": _teacher_series(self.teachers),
            "changes": self.changes,
            "counts": dict(self.counts),
        }

    def _pending_frame(self) -> tuple[float, float, list[int]]:
        t, sent, queued = self.sample
        return (t, round(sent, 6), [queued.get(a, 0) for a in range(self.n)])

    def to_json(self) -> bytes:
        return json.dumps(self.snapshot(), separators=(",", ":")).encode()


def _mean(h: list[float] | None, i: int) -> float | None:
    return None if not h or not h[2] else round(h[i] / h[2], 5)


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def _teacher_series(sums: dict[tuple[float, int], list[float]]) -> dict[int, list[list[float]]]:
    out: defaultdict[int, list[list[float]]] = defaultdict(list)
    for (t, head), (total, count) in sorted(sums.items()):
        out[head].append([t, round(total / count, 5)])
    return dict(out)


def layout(n: int, edges: list[tuple[int, int]]) -> list[tuple[float, float]]:
    """Node positions in [0, 1]²: a circle up to 40 agents (and past 2,000), else the seeded
    spring layout the topology figure uses.

    >>> [tuple(round(v, 2) for v in p) for p in layout(4, [(0, 1)])]
    [(1.0, 0.5), (0.5, 1.0), (0.0, 0.5), (0.5, 0.0)]
    """
    if n <= 40 or n > 2000:
        return [
            (0.5 + 0.5 * math.cos(2 * math.pi * i / n), 0.5 + 0.5 * math.sin(2 * math.pi * i / n))
            for i in range(n)
        ]
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    pos = nx.spring_layout(g, seed=0, iterations=30)
    xs = [float(pos[i][0]) for i in range(n)]
    ys = [float(pos[i][1]) for i in range(n)]
    lo_x, lo_y = min(xs), min(ys)
    span = max(max(xs) - lo_x, max(ys) - lo_y, 1e-9)
    return [((x - lo_x) / span, (y - lo_y) / span) for x, y in zip(xs, ys)]
