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
"""

from __future__ import annotations

import bisect
import csv
import io
import math
import sys
from pathlib import Path

from ..untrusted import read_text

TRACE_BYTES = 64 << 20  # about two million intervals
Spans = list[tuple[float, float]]


def _rows(path: str | Path, what: str, columns: tuple[str, ...]):
    """``(row number, agent, value, ...)`` for each row of a trace CSV with these columns (an
    agent, then numbers ≥ 0), in file order; a bad row is one line naming file, row, reason."""
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
    for number, row in enumerate(rows, 2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            cells = [row[i].strip() for i in at]
            agent, values = int(cells[0]), [float(c) for c in cells[1:]]
        except (IndexError, ValueError):
            shown = ",".join(row)[:60]
            raise ValueError(
                f"{path}, row {number}: expected an agent number and {len(at) - 1} numbers, "
                f"got {shown!r}"
            ) from None
        if agent < 0 or not all(v >= 0 and math.isfinite(v) for v in values):
            shown = ", ".join(f"{v:g}" for v in values)
            raise ValueError(
                f"{path}, row {number}: agent and numbers must be ≥ 0 and finite, "
                f"got {agent}, {shown}"
            )
        yield number, agent, *values


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


class Speeds:
    """One agent's FLOP/s over time, piecewise constant: ``base`` until its first change, then
    each ``flops[k]`` from ``times[k]`` on.

    >>> s = Speeds(100.0, [10.0, 20.0], [50.0, 200.0])
    >>> s.seconds(0.0, 500.0), s.seconds(5.0, 1000.0), s.seconds(19.0, 250.0)
    (5.0, 15.0, 2.0)
    """

    def __init__(self, base: float, times: list[float], flops: list[float]) -> None:
        self.base, self.times, self.flops = base, times, flops

    def seconds(self, now: float, work: float) -> float:
        """How long ``work`` FLOPs take from ``now``: integrated over the speed changes."""
        k = bisect.bisect_right(self.times, now)  # the segment now is in (0: before any)
        t, left = now, work
        while True:
            rate = self.flops[k - 1] if k else self.base
            end = self.times[k] if k < len(self.times) else math.inf
            if left <= (end - t) * rate:
                return t + left / rate - now
            left -= (end - t) * rate
            t, k = end, k + 1


def read_speeds(path: str | Path) -> dict[int, tuple[list[float], list[float]]]:
    """Per agent, the times its speed changes and the FLOP/s from then on (a speed trace:
    the header ``agent,time,flops``, each agent's rows in time order, speeds > 0)."""
    out: dict[int, tuple[list[float], list[float]]] = {}
    for number, a, t, f in _rows(path, "speed trace", ("agent", "time", "flops")):
        if not f > 0:
            raise ValueError(f"{path}, row {number}: a speed must be above 0 FLOP/s, got {f:g}")
        times, flops = out.setdefault(a, ([], []))
        if times and t <= times[-1]:
            raise ValueError(
                f"{path}, row {number}: agent {a}'s time {t:g} is not after its previous "
                f"{times[-1]:g}; sort by time"
            )
        times.append(t)
        flops.append(f)
    return out


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
    print(f"wrote {args.out}: {text.count(chr(10)) - 1} intervals of {args.agents} agents; in a")
    print(f"scenario: agents.churn: {{kind: trace, path: {args.out}, period: {args.duration:g}}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
