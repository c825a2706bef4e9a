"""Traces: measured behaviour over time, read from files a user brings.

Availability (``agents.churn: {kind: trace, path: ...}``): a CSV with a header ``agent,start,end``
and one row per interval in which that agent is **online** (seconds from the trace's start).
An agent the file names is offline outside its intervals; agents it does not name are always
online. The trace's ``period`` (by default its last ``end``) is how long it lasts; with
``repeat`` it starts again every period, and without it every agent is online once it is over.
An agent's ``offset`` delays its trace (wrapped around the period when it repeats).

Compute speed (``agents.speed_trace: path``): a CSV with a header ``agent,time,flops``; from
each row's time on, that agent computes at that many FLOP/s, until its next row. Before its
first row, and for the agents it does not name, the scenario's speed holds. A step or a
forward pass takes the time its FLOPs need, integrated over the changes it spans.

Uplink bandwidth (``network.bandwidth_trace: path``): a CSV ``agent,time,bandwidth`` (bytes/s),
read the same way: a message on the uplink when its rate changes is sent at the new rate for
the rest of its bytes, so its departure is the bytes integrated over the rate.

A link's own bandwidth (``network.link_bandwidth_trace: path``): a CSV
``src,dst,time,bandwidth``, a cap on the rate from ``src`` to ``dst`` that changes over time
(a message to ``dst`` is sent at the smaller of the uplink's rate and this one).

Link latency (``network.latency_trace: path``): a CSV ``src,dst,time,latency`` (seconds): a
message that leaves ``src``'s uplink for ``dst`` at or after ``time`` takes that latency (until
the pair's next row); before the pair's first row, and for pairs it does not name, the
scenario's latency holds. A latency matrix (``network.latency_matrix``) gives each pair one
latency for the whole run: ``n`` rows of ``n`` numbers, row ``i`` column ``j`` the seconds from
agent ``i`` to agent ``j`` (a CSV without a header, or a ``.npy`` array).
"""

from __future__ import annotations

import bisect
import csv
import io
import math
import sys
from pathlib import Path
from typing import Any

from ..untrusted import read_bytes, read_text

TRACE_BYTES = 64 << 20  # about two million intervals
Spans = list[tuple[float, float]]


def _rows(path: str | Path, what: str, columns: tuple[str, ...], ids: int = 1):
    """``(row number, id, ..., value, ...)`` for each row of a trace CSV with these columns
    (``ids`` agent numbers, then numbers ≥ 0), in file order; a bad row is one line naming
    file, row, reason."""
    text = read_text(path, what, TRACE_BYTES)
    rows = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(rows, [])]
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(
            f"{path}, row 1: the header needs the columns {', '.join(columns)} "
            f"(missing {', '.join(missing)}; has {', '.join(header[:4])[:40] or 'nothing'})"
        )
    at = [header.index(c) for c in columns]
    agents = "an agent number" if ids == 1 else f"{ids} agent numbers"
    for number, row in enumerate(rows, 2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            cells = [row[i].strip() for i in at]
            keys, values = [int(c) for c in cells[:ids]], [float(c) for c in cells[ids:]]
        except (IndexError, ValueError):
            shown = ",".join(row)[:60]
            raise ValueError(
                f"{path}, row {number}: expected {agents} and {len(at) - ids} numbers, "
                f"got {shown!r}"
            ) from None
        if min(keys) < 0 or not all(v >= 0 and math.isfinite(v) for v in values):
            shown = ", ".join([*map(str, keys), *(f"{v:g}" for v in values)])
            raise ValueError(
                f"{path}, row {number}: agent and numbers must be ≥ 0 and finite, got {shown}"
            )
        yield number, *keys, *values


def read_availability(path: str | Path) -> dict[int, Spans]:
    """Per agent, its online intervals, sorted; a bad row is one line naming file, row, reason.

    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "up.csv")
    >>> _ = open(f, "w").write("agent,start,end\\n0,0,10\\n0,20,30\\n2,5,8\\n")
    >>> read_availability(f)
    {0: [(0.0, 10.0), (20.0, 30.0)], 2: [(5.0, 8.0)]}
    """
    out: dict[int, Spans] = {}
    for number, a, s, e in _rows(path, "availability trace", ("agent", "start", "end")):
        if not s < e:
            raise ValueError(
                f"{path}, row {number}: the interval ends ({e:g}) at or before it starts ({s:g})"
            )
        spans = out.setdefault(a, [])
        if spans and s < spans[-1][1]:
            why = "overlaps" if s >= spans[-1][0] else "comes before"
            raise ValueError(
                f"{path}, row {number}: agent {a}'s [{s:g}, {e:g}) {why} its previous "
                f"[{spans[-1][0]:g}, {spans[-1][1]:g}); sort by time"
            )
        spans.append((s, e))
    return out


class Steps:
    """A quantity over time, piecewise constant: ``base`` until the first change, then each
    ``values[k]`` from ``times[k]`` on (an agent's FLOP/s, an uplink's bytes/s, a latency).

    >>> s = Steps(100.0, [10.0, 20.0], [50.0, 200.0])
    >>> s.at(0.0), s.at(10.0), s.at(25.0)
    (100.0, 50.0, 200.0)
    >>> s.seconds(0.0, 500.0), s.seconds(5.0, 1000.0), s.seconds(19.0, 250.0)
    (5.0, 15.0, 2.0)
    >>> s.minimum(Steps(80.0, [], [])).values  # under a constant cap
    [50.0, 80.0]
    """

    __slots__ = ("base", "times", "values")

    def __init__(self, base: float, times: list[float], values: list[float]) -> None:
        self.base, self.times, self.values = base, times, values

    def at(self, t: float) -> float:
        k = bisect.bisect_right(self.times, t)
        return self.values[k - 1] if k else self.base

    def minimum(self, other: Steps) -> Steps:
        """The smaller of the two at every moment (an uplink and a link's own trace).

        >>> Steps(5.0, [1.0, 3.0], [2.0, 9.0]).minimum(Steps(4.0, [2.0], [1.0])).values
        [2.0, 1.0, 1.0]
        """
        times = sorted({*self.times, *other.times})
        values = [min(self.at(t), other.at(t)) for t in times]
        return Steps(min(self.base, other.base), times, values)

    def seconds(self, now: float, work: float) -> float:
        """How long ``work`` (FLOPs, bytes) takes from ``now`` at these rates: integrated over
        the changes it spans."""
        k = bisect.bisect_right(self.times, now)  # the segment now is in (0: before any)
        t, left = now, work
        while True:
            rate = self.values[k - 1] if k else self.base
            end = self.times[k] if k < len(self.times) else math.inf
            if left <= (end - t) * rate:
                return t + left / rate - now
            left -= (end - t) * rate
            t, k = end, k + 1


Changes = dict[Any, tuple[list[float], list[float]]]  # per agent (or link): times, values


def read_steps(
    path: str | Path, what: str, column: str, unit: str | None, ids: tuple[str, ...] = ("agent",)
) -> Changes:
    """Per agent (per ``(src, dst)`` with two ``ids``), the times a quantity changes and its
    values from then on: a trace CSV with the header ``agent,time,<column>``, each agent's
    rows in time order. With a ``unit`` (speeds, bandwidths), values must be above 0.

    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "up.csv")
    >>> _ = open(f, "w").write("agent,time,bandwidth\\n0,0,1e6\\n0,30,2.5e5\\n")
    >>> read_steps(f, "bandwidth trace", "bandwidth", "bytes/s")
    {0: ([0.0, 30.0], [1000000.0, 250000.0])}
    """
    out: Changes = {}
    for number, *row in _rows(path, what, (*ids, "time", column), len(ids)):
        key, t, v = (row[0] if len(ids) == 1 else tuple(row[:-2])), row[-2], row[-1]
        if unit and not v > 0:
            noun = what.removesuffix(" trace")
            raise ValueError(f"{path}, row {number}: a {noun} must be above 0 {unit}, got {v:g}")
        times, values = out.setdefault(key, ([], []))
        if times and t <= times[-1]:
            who = f"agent {key}" if len(ids) == 1 else f"link {key[0]}→{key[1]}"
            raise ValueError(
                f"{path}, row {number}: {who}'s time {t:g} is not after its previous "
                f"{times[-1]:g}; sort by time"
            )
        times.append(t)
        values.append(v)
    return out


def read_latency_matrix(path: str | Path, agents: int) -> list[list[float]]:
    """An ``agents × agents`` matrix of latencies in seconds, from a CSV without a header or a
    ``.npy`` array (read without pickles); a wrong shape or value is one line."""
    import numpy as np

    if str(path).endswith(".npy"):
        data = read_bytes(path, "latency matrix", TRACE_BYTES)
        try:
            m = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"{path}: not a .npy array of numbers ({str(e)[:80]})") from None
        if m.dtype.kind not in "iuf":
            raise ValueError(f"{path}: a latency matrix holds numbers, got dtype {m.dtype}")
    else:
        text = read_text(path, "latency matrix", TRACE_BYTES)
        rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
        for k, r in enumerate(rows, 1):
            if len(r) != agents or not _numbers(r):
                raise ValueError(
                    f"{path}, row {k}: expected {agents} numbers (one per agent), "
                    f"got {','.join(r)[:60]!r}"
                )
        m = np.array([[float(c) for c in r] for r in rows], dtype=float)
    if m.shape != (agents, agents):
        raise ValueError(
            f"{path}: a latency matrix for {agents} agents is {agents}×{agents}, "
            f"got shape {'×'.join(map(str, m.shape)) or 'scalar'}"
        )
    if not (np.isfinite(m).all() and (m >= 0).all()):
        i, j = np.argwhere(~(np.isfinite(m) & (m >= 0)))[0]
        raise ValueError(
            f"{path}: latencies must be ≥ 0 and finite, got {m[i, j]:g} at row {i + 1}, "
            f"column {j + 1}"
        )
    return m.astype(float).tolist()


def _numbers(row: list[str]) -> bool:
    try:
        [float(c) for c in row]
    except ValueError:
        return False
    return True


def offline_spans(
    online: Spans, period: float, duration: float, repeat: bool = False, offset: float = 0.0
) -> Spans:
    """The ``[start, end)`` spans of a run of ``duration`` seconds in which an agent with these
    online intervals (in a trace of ``period`` seconds) is offline.

    >>> offline_spans([(0, 10), (20, 30)], 40, 100)
    [(10.0, 20.0), (30.0, 40.0)]
    >>> offline_spans([(0, 10), (20, 30)], 40, 100, repeat=True)
    [(10.0, 20.0), (30.0, 40.0), (50.0, 60.0), (70.0, 80.0), (90.0, 100.0)]
    >>> offline_spans([(0, 10), (30, 40)], 40, 100, repeat=True)  # online across the wrap
    [(10.0, 30.0), (50.0, 70.0), (90.0, 100.0)]
    >>> offline_spans([(0, 10)], 40, 60, repeat=True, offset=35)
    [(5.0, 35.0), (45.0, 60.0)]
    >>> offline_spans([(0, 10)], 40, 60, offset=15)  # online until its trace begins
    [(25.0, 55.0)]
    """
    gaps, t = [], 0.0  # offline within one period
    for s, e in online:
        if s >= period:
            break
        if s > t:
            gaps.append((t, s))
        t = max(t, min(e, period))
    if t < period:
        gaps.append((t, period))
    laps = range(-1, math.ceil(duration / period) + 1) if repeat else range(1)
    return _unroll(gaps, period, duration, laps, offset)


def _unroll(
    spans: Spans, period: float, duration: float, laps: range, offset: float = 0.0
) -> Spans:
    """``spans`` of one period, repeated for each of ``laps`` and shifted by ``offset``, cut to
    ``[0, duration)``; spans that touch across a lap's end become one."""
    out: Spans = []
    for lap in laps:
        for s, e in spans:
            s, e = max(0.0, s + offset + lap * period), min(duration, e + offset + lap * period)
            if s >= e:
                continue
            if out and s <= out[-1][1]:  # one lap's last span runs into the next one's first
                out[-1] = (out[-1][0], max(out[-1][1], e))
            else:
                out.append((float(s), float(e)))
    return out


def from_fedscale(trace: dict, agents: int, duration: float, first: int = 0) -> str:
    """FedScale's client availability trace (``client_behave_trace``: client id → ``{'active':
    [...], 'inactive': [...], 'finish_time': ...}``, online from each ``active`` time to the
    ``inactive`` one, wrapped every ``finish_time`` seconds as FedScale's ``is_active`` does)
    as an availability CSV: the clients in id order from the ``first``-th, one per agent,
    unrolled over ``duration`` seconds (so the scenario needs no ``repeat``).

    >>> print(from_fedscale({7: {"active": [0, 30], "inactive": [10, 40], "finish_time": 40}},
    ...                     agents=1, duration=100), end="")
    agent,start,end
    0,0,10
    0,30,50
    0,70,90
    """
    ids = sorted(trace)[first : first + agents]
    if len(ids) < agents:
        raise ValueError(
            f"the trace has {len(trace)} clients: too few for {agents} agents from {first}"
        )
    rows = ["agent,start,end"]
    for agent, client in enumerate(ids):
        t = {k.decode() if isinstance(k, bytes) else k: v for k, v in trace[client].items()}
        period = float(t["finish_time"])
        spans = sorted(zip(map(float, t["active"]), map(float, t["inactive"])))
        spans = [(s, min(e, period)) for s, e in spans if s < min(e, period)]
        laps = range(math.ceil(duration / period) if period > 0 else 0)
        out = _unroll(spans, period, duration, laps)  # online across the wrap: one interval
        rows += [f"{agent},{s:g},{e:g}" for s, e in out]
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m mhd_sim.world.traces fedscale IN.pkl OUT.csv --agents N --duration S``."""
    import argparse

    from ..untrusted import load_arrays_pickle

    ap = argparse.ArgumentParser(prog="python -m mhd_sim.world.traces", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    fs = sub.add_parser("fedscale", help="FedScale's client_behave_trace → availability CSV")
    fs.add_argument("trace", help="the pickle (read without running code: containers only)")
    fs.add_argument("out", help="the CSV to write")
    fs.add_argument("--agents", type=int, required=True, help="how many agents (clients taken)")
    fs.add_argument("--duration", type=float, required=True, help="seconds to unroll")
    fs.add_argument("--first", type=int, default=0, help="skip this many clients first")
    args = ap.parse_args(argv)
    try:
        trace = load_arrays_pickle(args.trace, "FedScale trace")
        if not isinstance(trace, dict):
            raise ValueError(f"{args.trace}: not a FedScale trace (a dict of clients)")
        text = from_fedscale(trace, args.agents, args.duration, args.first)
    except (ValueError, KeyError, TypeError) as e:
        why = f"a client without {e}" if isinstance(e, KeyError) else e
        print(f"error: {why}", file=sys.stderr)
        return 2
    Path(args.out).write_text(text)
    print(f"wrote {args.out}: {text.count(chr(10)) - 1} intervals of {args.agents} agents")
    print(f"in a scenario: agents.churn: {{kind: trace, path: {args.out}, "
          f"period: {args.duration:g}}}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
