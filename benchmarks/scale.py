"""Wall time and peak memory of learning runs with 10, 100 and 1,000 agents (per-agent execution).

    python -m benchmarks.scale [--agents 10 100 1000] [--steps 100]
                               [--engine both|per_agent|batched]

Each size and engine runs in its own process (so peak memory is its own): MLP agents on
mnist1d with 10 random neighbours each, for the simulated time in which an agent at the
default speed makes ``--steps`` local steps (1 in 12 agents is 8x slower). Per-agent
execution uses one torch thread (fastest for small models), the batched engine every core.
Prints set-up and run wall time, steps, messages, events and peak resident memory, and for
both engines the speed-up and the largest difference in final accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def child(agents: int, steps: int, engine: str = "per_agent", threads: int = 1) -> dict:
    import torch

    from mhd_sim.api import build_simulation
    from mhd_sim.record.run_directory import RunDirectory
    from mhd_sim.scenario import validate

    from .scenarios import population

    torch.set_num_threads(threads)
    raw = population(agents)
    raw["engine"] = engine
    sc = validate(raw)
    with tempfile.TemporaryDirectory() as tmp:  # a timing-only stand-in knows a step's FLOPs
        stand_in = build_simulation(sc, RunDirectory(tmp), timing_only=True).learners[-1]
        step_seconds = stand_in.plan.distill_flops / sc.agents.per_agent(sc.seed)[-1].speed
    raw["duration"] = raw["eval"]["every"] = round(steps * step_seconds, 3)
    with tempfile.TemporaryDirectory() as tmp:
        record = RunDirectory(tmp)
        start = time.perf_counter()
        sim = build_simulation(validate(raw), record)
        setup = time.perf_counter() - start
        summary = sim.run()
        record.close()
    return {
        "agents": agents,
        "sim_time": raw["duration"],
        "setup_s": setup,
        "run_s": summary["wall_time_s"],
        "steps": summary["steps"],
        "messages": summary["messages"]["sent"],
        "events": summary["events"],
        "shared_acc": [a["shared_acc"] for a in summary["agents"]],
        "private_acc": [a["private_acc"] for a in summary["agents"]],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _run(agents: int, steps: int, engine: str, threads: int) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.scale",
            "--child",
            str(agents),
            "--steps",
            str(steps),
            "--engine",
            engine,
            "--threads",
            str(threads),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--engine", choices=["per_agent", "batched", "both"], default="both")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="batched engine's torch threads (default: every core)",
    )
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.engine, args.threads or 1)))
        return
    engines = ["per_agent", "batched"] if args.engine == "both" else [args.engine]
    threads = {"per_agent": 1, "batched": args.threads or os.cpu_count() or 1}
    print(
        f"{'agents':>7} {'engine':>10} {'threads':>7} {'sim s':>7} {'steps':>9} {'messages':>9} "
        f"{'events':>9} "
        f"{'setup s':>8} {'run s':>8} {'peak MB':>8}"
    )
    for n in args.agents:
        runs = {}
        for engine in engines:
            r = runs[engine] = _run(n, args.steps, engine, threads[engine])
            print(
                f"{r['agents']:>7} {engine:>10} {threads[engine]:>7} {r['sim_time']:>7.1f} "
                f"{r['steps']:>9,} "
                f"{r['messages']:>9,} {r['events']:>9,} {r['setup_s']:>8.1f} {r['run_s']:>8.1f} "
                f"{r['peak_rss_mb']:>8.0f}",
                flush=True,
            )
        if len(runs) == 2:
            a, b = runs["per_agent"], runs["batched"]
            diff = max(
                abs(x - y)
                for key in ("shared_acc", "private_acc")
                for ra, rb in zip(a[key], b[key])
                for x, y in zip(ra, rb)
            )
            print(
                f"{n:>7} batched speed-up {a['run_s'] / b['run_s']:.1f}x; same steps and messages: "
                f"{a['steps'] == b['steps'] and a['messages'] == b['messages']}; "
                "largest accuracy difference "
                f"over agents and heads: {diff:.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
