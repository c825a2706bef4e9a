"""Wall time and peak memory of learning runs with 10, 100 and 1,000 agents (per-agent execution).

    python -m benchmarks.scale [--agents 10 100 1000] [--steps 100]

Each size runs in its own process (so peak memory is its own): MLP agents on mnist1d with
10 random neighbours each, for the simulated time in which an agent at the default speed
makes about ``--steps`` local steps. Prints set-up and run wall time, steps, messages and
peak resident memory.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time


def child(agents: int, steps: int) -> dict:
    import torch

    from mhd_sim.record import RunDirectory
    from mhd_sim.scenario import validate
    from mhd_sim.world import Simulation

    from .scenarios import population

    torch.set_num_threads(1)
    raw = population(agents)
    sc = validate(raw)
    with tempfile.TemporaryDirectory() as tmp:  # a timing-only stand-in knows a step's FLOPs
        schedule = Simulation(sc, RunDirectory(tmp), timing_only=True).learners[-1]
        step_seconds = schedule.distill / sc.agents.per_agent(sc.seed)[-1].speed
    raw["duration"] = raw["eval"]["every"] = round(steps * step_seconds, 3)
    with tempfile.TemporaryDirectory() as tmp:
        record = RunDirectory(tmp)
        start = time.perf_counter()
        sim = Simulation(validate(raw), record)
        setup = time.perf_counter() - start
        summary = sim.run()
        record.close()
    return {"agents": agents, "sim_time": raw["duration"], "setup_s": setup, "run_s": summary["wall_time_s"],
            "steps": summary["steps"], "messages": summary["messages"]["sent"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps)))
        return
    print(f"{'agents':>7} {'sim s':>7} {'steps':>9} {'messages':>9} {'setup s':>8} {'run s':>8} {'peak MB':>8}")
    for n in args.agents:
        out = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--child", str(n), "--steps", str(args.steps)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['agents']:>7} {r['sim_time']:>7.1f} {r['steps']:>9,} {r['messages']:>9,} {r['setup_s']:>8.1f} "
              f"{r['run_s']:>8.1f} {r['peak_rss_mb']:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
