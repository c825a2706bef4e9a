"""Seeded example traces: what ``scenarios/traces.yaml`` replays, made here, never downloaded.

``python -m mhd_sim.world.trace_examples OUT_DIR [--agents 8] [--duration 400] [--seed 0]``
writes four files a scenario can name:

- ``availability.csv`` (``agents.churn: {kind: trace}``): a diurnal pattern. Agents live in
  three regions a third of a "day" apart (a day is half the run); each is online with a
  probability that follows its region's daytime (from about 0.9 at noon to 0.2 at night),
  in sessions of a few to tens of seconds, as phones that are picked up and put away.
- ``bandwidth.csv`` (``network.bandwidth_trace``): cellular-like uplinks. Each agent's rate
  is a log-normal random walk around its own median (0.3 to 2 MB/s), a new value every
  2 s, with deep fades (a twentieth of the rate for a few seconds) as a handset moving
  behind a building does.
- ``speeds.csv`` (``agents.speed_trace``): two handsets throttle under heat: their speed
  drops to 40% for a minute or so, then recovers.
- ``latency_matrix.csv`` (``network.latency_matrix``): geography. 10–20 ms within a region,
  60–150 ms between regions.
- ``fedscale_sample.pkl``: a small availability trace in FedScale's own format (its
  ``client_behave_trace``: a pickle of client id → ``{'active': [...], 'inactive': [...],
  'finish_time': ...}``), 20 clients, to try the converter on (``python -m
  mhd_sim.world.traces fedscale``); the real one is FedScale's download.

The same arguments write the same bytes (every draw comes from the seed's streams), so the
files in the repository can be checked against this script.
"""

from __future__ import annotations

import argparse
import math
import pickle
from pathlib import Path

import numpy as np

from ..seeds import stream

REGIONS = 3


def region(agent: int, agents: int) -> int:
    """Agents in contiguous blocks, one block per region."""
    return agent * REGIONS // agents


def availability(agents: int, duration: float, seed: int) -> str:
    """Online intervals ``agent,start,end`` of a diurnal pattern (see the module docstring)."""
    day = duration / 2
    rows = ["agent,start,end"]
    for a in range(agents):
        rng = stream(seed, "example-availability", a)
        noon = day * (region(a, agents) / REGIONS + rng.uniform(-0.05, 0.05))
        t, online = 0.0, bool(rng.random() < 0.8)
        while t < duration:
            p = 0.55 + 0.35 * math.cos(2 * math.pi * (t - noon) / day)  # online at time t
            mean = 25 * p / (1 - p) if online else 25  # sessions last longer by day
            length = min(duration - t, max(2.0, rng.exponential(mean)))
            if online:
                rows.append(f"{a},{t:.3f},{t + length:.3f}")
            t += length
            online = not online
    return "\n".join(rows) + "\n"


def bandwidth(agents: int, duration: float, seed: int, every: float = 2.0) -> str:
    """Uplink rates ``agent,time,bandwidth``: a log-normal walk with deep fades."""
    rows = ["agent,time,bandwidth"]
    steps = int(math.ceil(duration / every))
    for a in range(agents):
        rng = stream(seed, "example-bandwidth", a)
        median = math.exp(rng.uniform(math.log(3e5), math.log(2e6)))
        x, fade = 0.0, 0
        for k in range(steps):
            x = 0.8 * x + 0.35 * rng.standard_normal()  # AR(1) in log rate
            if fade == 0 and rng.random() < 0.03:
                fade = int(rng.integers(1, 4))  # a deep fade of 1-3 periods
            rate = median * math.exp(x) / (20 if fade else 1)
            fade = max(0, fade - 1)
            rows.append(f"{a},{k * every:g},{max(rate, 1e4):.0f}")
    return "\n".join(rows) + "\n"


def speeds(agents: int, duration: float, seed: int, base: float = 3e8) -> str:
    """Compute speeds ``agent,time,flops`` of two handsets that throttle under heat."""
    rows = ["agent,time,flops"]
    for a in (0, agents // 2):
        rng = stream(seed, "example-speed", a)
        t = rng.uniform(20, 60)
        while t < duration:
            hot = rng.uniform(40, 90)
            rows += [f"{a},{t:.3f},{0.4 * base:g}", f"{a},{t + hot:.3f},{base:g}"]
            t += hot + rng.uniform(60, 120)
    return "\n".join(rows) + "\n"


def latency_matrix(agents: int, seed: int) -> str:
    """Seconds from row to column: near within a region, far across regions."""
    rng = stream(seed, "example-latency")
    m = np.zeros((agents, agents))
    for i in range(agents):
        for j in range(i + 1, agents):
            near = region(i, agents) == region(j, agents)
            m[i, j] = m[j, i] = rng.uniform(0.010, 0.020) if near else rng.uniform(0.060, 0.150)
    return "\n".join(",".join(f"{v:.4f}" for v in row) for row in m) + "\n"


def fedscale_sample(seed: int, clients: int = 20) -> bytes:
    """A FedScale-format availability trace (see the module docstring): each client online in
    sessions of minutes within its own day (``finish_time`` of 2 to 6 hours), as a pickle of
    containers and numbers only (what the converter reads without running code)."""
    trace = {}
    for c in range(clients):
        rng = stream(seed, "example-fedscale", c)
        finish = float(rng.integers(7_200, 21_600))
        active, inactive, t = [], [], float(rng.uniform(0, 600))
        while t < finish:
            end = min(finish, t + float(rng.exponential(900)) + 60)
            active.append(round(t)), inactive.append(round(end))
            t = end + float(rng.exponential(1_800)) + 60
        trace[1000 + c] = {"active": active, "inactive": inactive, "finish_time": round(finish)}
    return pickle.dumps(trace, protocol=4)


def write(out: Path, agents: int = 8, duration: float = 400.0, seed: int = 0) -> list[Path]:
    """Write the example traces into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "availability.csv": availability(agents, duration, seed),
        "bandwidth.csv": bandwidth(agents, duration, seed),
        "speeds.csv": speeds(agents, duration, seed),
        "latency_matrix.csv": latency_matrix(agents, seed),
        "fedscale_sample.pkl": fedscale_sample(seed),
    }
    for name, data in files.items():
        path = out / name
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
    return [out / name for name in files]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m mhd_sim.world.trace_examples",
        description="Write seeded example traces (availability, bandwidth, speed, latency, "
        "and a FedScale-format sample).",
    )
    ap.add_argument("out", type=Path, help="the folder to write them into")
    ap.add_argument("--agents", type=int, default=8, help="how many agents (default 8)")
    ap.add_argument("--duration", type=float, default=400.0, help="seconds (default 400)")
    ap.add_argument("--seed", type=int, default=0, help="the seed (default 0)")
    args = ap.parse_args(argv)
    if args.agents < REGIONS or not args.duration > 0 or args.seed < 0:
        ap.error(f"needs --agents >= {REGIONS}, --duration > 0 and --seed >= 0")
    for path in write(args.out, args.agents, args.duration, args.seed):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
