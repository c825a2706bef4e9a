"""A seeded fuzz of the scenario schema: every field of three bundled scenarios set to
extreme, wrong-typed and odd values, alone and in combinations with the network and
algorithm options. No traceback, no hang, an exit code of 0, 1 or 2 with one line per
problem. ``-m slow`` runs several hundred more cases."""

import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from mhd_sim.cli import app
from mhd_sim.scenario import bundled

BASES = ("straggler", "teaching/congestion", "paper_claims")
VALUES = [0, -1, 1, 2, 0.5, 1e-9, 5e-324, 1e12, 1e308, -1e308, math.inf, -math.inf, math.nan,
          "x", "", [1], [[0, 1]], {"a": 1}, None, True, 10**12, "1e3", [], {}]  # fmt: skip
OPTIONS = [  # the new network and algorithm options, in combinations
    "network.queue.policy=replace", "network.queue.policy=unbounded", "network.queue.limit=1",
    "network.transport=reliable", "network.backpressure=1", "network.downlink=1e4",
    "network.fanout=1", "network.loss=0.9", "algorithm.teachers=1", "algorithm.include_self=false",
    "algorithm.confidence=max_probability", "algorithm.encoding=topk", "algorithm.topk=255",
    "algorithm.name=distill", "algorithm.name=fedavg", "algorithm.name=gossip",
    "algorithm.name=isolated", "algorithm.max_staleness=1", "engine=batched",
    "agents.churn={up_mean: 5, down_mean: 5}",
    "data.partition={kind: label_skew, skew: 1.0, placement: random}",
]  # fmt: skip


def leaves(node, prefix=""):
    """The dotted keys of every setting in a resolved scenario, with their values."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, f"{prefix}{k}.")
    elif isinstance(node, list) and node and isinstance(node[0], dict):
        for i, v in enumerate(node):
            yield from leaves(v, f"{prefix}{i}.")
    else:
        yield prefix[:-1], node


def nearby(value, rng):
    """A plausible change of a setting: a number scaled, a flag flipped (half of the fuzz stays
    valid-looking, so that runs are tried too)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)) and value:
        scaled = value * rng.choice([0.1, 0.5, 2, 10, 1000])
        return int(scaled) if isinstance(value, int) else float(scaled)
    return VALUES[rng.integers(len(VALUES))]


def cases(count: int, seed: int):
    """``count`` lists of --set overrides, each of 1 to 3 fuzzed settings plus 0 to 2 options."""
    from mhd_sim.scenario import load

    rng = np.random.default_rng(seed)
    keys = {b: list(leaves(load(bundled.resolve(b)).resolved())) for b in BASES}
    out = []
    for _ in range(count):
        base = BASES[rng.integers(len(BASES))]
        sets = []
        for _ in range(rng.integers(1, 3)):
            key, old = keys[base][rng.integers(len(keys[base]))]
            value = nearby(old, rng) if rng.random() < 0.7 else VALUES[rng.integers(len(VALUES))]
            text = yaml.safe_dump(value, default_flow_style=True).removesuffix("...\n").strip()
            sets.append(f"{key}={text}")
        sets += [OPTIONS[i] for i in rng.choice(len(OPTIONS), rng.integers(0, 3), replace=False)]
        out.append((base, sets))
    return out


class Hang(Exception):
    pass


def invoke(args, what, limit):
    """``mhd-sim ARGS`` in this process, under an alarm: its result (exit code, output)."""

    def alarm(*_):
        raise Hang(f"{what} took over {limit} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(limit)
    try:
        return CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def validate_case(base, sets, limit=20):
    """``mhd-sim validate`` in this process, under an alarm: (exit code, output)."""
    args = ["validate", base, "--no-labels", *(a for s in sets for a in ("--set", s))]
    return invoke(args, f"validate {base} {sets}", limit)


def check_validate(base, sets):
    result = validate_case(base, sets)
    assert result.exit_code in (0, 2), (base, sets, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        base, sets, repr(result.exception))  # fmt: skip
    if result.exit_code == 2:
        errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
        assert errors and "Traceback" not in result.output, (base, sets, result.output)
        assert all(len(ln) <= 200 for ln in errors), (base, sets, result.output)
    return result.exit_code


def run_args(base, sets, tmp_path) -> list[str]:
    """A timing-only run of a case, capped at 2 simulated seconds."""
    return ["run", base, "--timing-only", "-q", "--out", str(tmp_path / "run"),
            *(a for s in sets for a in ("--set", s)), "--set", "duration=2"]  # fmt: skip


def check_errors(base, sets, code, stderr) -> None:
    """Exit 0, 1 or 2, no traceback, and a failure says why in lines of its own."""
    assert code in (0, 1, 2), (base, sets, stderr)
    assert "Traceback" not in stderr, (base, sets, stderr)
    if code:
        errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
        assert errors and all(len(ln) <= 200 for ln in errors), stderr


def check_run(base, sets, tmp_path):
    """A case that validated, run in its own process with a time limit."""
    args = [sys.executable, "-m", "mhd_sim", *run_args(base, sets, tmp_path)]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung: {base} {sets}")
    check_errors(base, sets, proc.returncode, proc.stderr)


def check_run_here(base, sets, tmp_path):
    """As :func:`check_run`, in this process, under an alarm: no interpreter and torch to
    start (twenty cases took 6 s here against 19 s in processes of their own)."""
    result = invoke(run_args(base, sets, tmp_path), f"run {base} {sets}", 120)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        base, sets, repr(result.exception))  # fmt: skip
    check_errors(base, sets, result.exit_code, result.stderr)


@pytest.mark.parametrize("base, sets", cases(60, seed=1))
def test_fuzzed_scenarios_validate_or_give_one_line(base, sets):
    check_validate(base, sets)


@pytest.mark.slow  # eight runs in processes of their own
def test_fuzzed_scenarios_run_timing_only_or_give_one_line(tmp_path):
    """The first eight fuzzed cases that validate, run."""
    runnable = (c for c in cases(200, seed=2) if check_validate(*c) == 0)
    for k, (base, sets) in zip(range(8), runnable):
        check_run(base, sets, tmp_path / str(k))


@pytest.mark.slow
@pytest.mark.parametrize("k, case", list(enumerate(cases(400, seed=3))))
def test_many_more_fuzzed_scenarios(k, case, tmp_path):
    if check_validate(*case) == 0 and k % 4 == 0:
        check_run_here(*case, tmp_path)
