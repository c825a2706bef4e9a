"""The plan's compiled hot path (learning/distillation/_plan_kernel.pyx) against the Python
one: numpy's draws and stream, a whole step's samples and ages, a message's writes, and the
same files for bundled and fuzzed runs; MHD_SIM_PURE_PYTHON=1 forces the Python path, and a
run says which one ran."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

import mhd_sim as ms
from mhd_sim.learning.distillation import plan_kernel
from mhd_sim.scenario import bundled

COMPILED = plan_kernel._compiled is not None
needs_compiled = pytest.mark.skipif(not COMPILED, reason="the compiled hot path is not built")


def test_the_extension_is_built_where_a_compiler_is():
    """``make install`` builds it on these machines: a silent fallback would hide a broken
    build (where no compiler exists, the Python path is the design)."""
    if os.environ.get("MHD_SIM_PURE_PYTHON") or not shutil.which("cc"):
        pytest.skip("no C compiler here: the Python path is the one")
    assert plan_kernel.path() == "compiled"


@needs_compiled
@pytest.mark.parametrize("top", [2, 10, 1000, 2**31, 2**40])
def test_compiled_draws_are_numpys_numbers_and_leave_the_stream_as_numpy_does(top):
    cases = np.random.default_rng(top)
    for seed in range(300):
        high = cases.integers(1, top, size=int(cases.integers(1, 40))).astype(np.int64)
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        assert np.array_equal(plan_kernel.integers(a, high), b.integers(0, high))
        assert np.array_equal(
            plan_kernel.integers(a, np.full(5, high[0])), b.integers(high[0], size=5)
        )
        assert a.random() == b.random()  # the stream where numpy leaves it
    with pytest.raises(ValueError, match="high <= 0"):
        plan_kernel.integers(np.random.default_rng(0), np.array([3, 0]))


@needs_compiled
def test_a_compiled_step_is_numpys_to_the_last_bit():
    """The step kernel against Plan.step's numpy lines, on random tables: the draws, the
    public samples they pick, and the ages, for one slot (numpy sums pairwise) and many (in
    order), batches past numpy's 8- and 128-element blocks, missing predictions and a
    staleness limit."""
    from mhd_sim.learning.distillation import _plan_kernel as c

    add, biggest = np.add.reduce, np.maximum.reduce
    cases = np.random.default_rng(1)
    for seed in range(400):
        K, B, P = int(cases.integers(1, 12)), int(cases.integers(1, 300)), 50
        stamps = np.concatenate([[np.nan], cases.random(30) * 100])
        which = cases.integers(0, 31, size=(P, K + 3)).astype(np.int32)
        pool = np.sort(cases.choice(P, int(cases.integers(1, P)), replace=False))
        high = np.concatenate([np.full(int(cases.integers(0, 40)), 17), np.full(B, len(pool))])
        now, limit = 120.0, float(cases.choice([np.inf, 60.0]))
        mine, numpys = np.random.default_rng(seed), np.random.default_rng(seed)
        drawn = numpys.integers(0, high)
        u = pool[drawn[len(high) - B :]]
        age = now - stamps.take(which[u, :K]).T
        age[age > limit] = np.nan
        valid = age == age
        age = np.where(valid, age, 0.0)
        per_slot, counts = add(age, 1), add(valid, 1)
        sums, seen = cases.random(K + 3), cases.integers(0, 9, K + 3)
        want_sums, want_seen = sums.copy(), seen.copy()
        want_sums[:K] += per_slot
        want_seen[:K] += counts
        got_drawn, got_u = np.empty(len(high), dtype=np.int64), np.empty(B, dtype=np.int64)
        got_valid = np.empty((B, K), dtype=np.uint8)
        scratch = np.empty(K + 3), np.empty(B)
        total, count, top = c.step(mine, high, pool, got_drawn, got_u, now, which, stamps, K,
                                   limit, sums, seen, got_valid, *scratch)  # fmt: skip
        assert np.array_equal(got_drawn, drawn) and np.array_equal(got_u, u)
        assert mine.random() == numpys.random()  # the stream where numpy leaves it
        assert np.array_equal(got_valid.view(bool).T, valid)
        assert sums.tobytes() == want_sums.tobytes() and np.array_equal(seen, want_seen)
        assert count == int(add(counts)) and top == float(biggest(age, None))
        assert total == float(add(per_slot))


@needs_compiled
def test_a_compiled_store_writes_what_the_python_one_does():
    """Plan.store on both paths, message by message (late, early and duplicate times, new
    and known samples): the same cache, the same answer, the same pool."""
    from mhd_sim.learning.distillation import plan as plans

    def plan(fast):
        sc = ms.load("straggler")
        p = plans.Plan(plans.Wiring.of([1.0, 1.0], True, False), sc.algorithm, sc.training, 60, 30,
                       np.random.default_rng(0), lambda kind, batch: 1.0)  # fmt: skip
        p._fast = fast
        return p

    cases = np.random.default_rng(2)
    a, b = plan(plan_kernel.compiled()), plan(None)
    partial = 0  # messages that some samples kept out (they held later predictions)
    for _ in range(300):
        sender, produced = int(cases.integers(0, 9)), float(cases.integers(0, 50))
        ids = cases.choice(60, int(cases.integers(1, 40)), replace=False)
        got = a.store(sender, ids, produced, a.wiring.heads_sent)
        want = b.store(sender, ids, produced, b.wiring.heads_sent)
        assert got[0] == want[0] and np.array_equal(got[1], want[1])
        assert (got[2] is None) == (want[2] is None)
        assert got[2] is None or np.array_equal(got[2], want[2])
        partial += got[2] is not None and not got[2].all()
        assert np.array_equal(a.which, b.which) and np.array_equal(a.have, b.have)
        assert np.array_equal(a.pool, b.pool)
    assert partial > 20
    with pytest.raises(IndexError, match="past the cache"):
        a.store(0, np.array([60]), 99.0, a.wiring.heads_sent)


def run_files(path):
    return {n: (path / n).read_bytes() for n in ("events.csv", "metrics.csv", "teachers.csv")
            if (path / n).exists()}  # fmt: skip


@needs_compiled
def test_a_run_gives_the_same_files_on_both_paths_and_says_which_ran(tmp_path, tiny):
    f = tmp_path / "tiny.yaml"
    f.write_text(yaml.safe_dump(tiny))
    out = {}
    for path in ("compiled", "python"):
        env = {**os.environ, **({"MHD_SIM_PURE_PYTHON": "1"} if path == "python" else {})}
        cmd = [sys.executable, "-m", "mhd_sim", "run", str(f), "--out", str(tmp_path / path),
               "--no-plots"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-1500:]
        assert f"hot path: {path}" in done.stdout
        summary = json.loads((tmp_path / path / "summary.json").read_text())
        assert summary["hot_path"] == path
        out[path] = run_files(tmp_path / path)
    assert out["compiled"] == out["python"] and out["compiled"]["events.csv"]


@pytest.mark.slow  # every bundled scenario, learning and timing-only, on both paths
@needs_compiled
@pytest.mark.parametrize("name", bundled.names())
def test_every_bundled_scenario_gives_the_same_files_on_both_paths(name, tmp_path, monkeypatch):
    files = {}
    for path in ("compiled", "python"):
        if path == "python":
            monkeypatch.setattr(plan_kernel, "_compiled", None)
        for timing_only in (False, True):
            out = tmp_path / f"{path}-{timing_only}"
            sc = ms.load(name, set={"duration": 4})
            ms.simulate(sc, out, progress=False, timing_only=timing_only, plots=False)
            files[path, timing_only] = run_files(out)
    for timing_only in (False, True):
        assert files["compiled", timing_only] == files["python", timing_only], timing_only


@pytest.mark.slow  # 16 fuzzed scenarios, timing-only, and 4 of them learning, on both paths
@needs_compiled
def test_fuzzed_scenarios_give_the_same_files_on_both_paths(tmp_path, monkeypatch):
    """The first fuzzed cases that validate (tests/test_fuzz.py: odd values, staleness
    limits, random neighbours, other queues and transports), at 2 simulated s: the same
    files, or the same one-line error, on both paths."""
    from test_fuzz import cases, check_validate

    runnable = [c for c in cases(120, seed=4) if check_validate(*c) == 0][:16]
    assert len(runnable) == 16
    for k, (base, sets) in enumerate(runnable):
        got = {}
        for path in ("compiled", "python"):
            with monkeypatch.context() as m:
                if path == "python":
                    m.setattr(plan_kernel, "_compiled", None)
                for timing_only in (True, False)[: 1 + (k < 4)]:
                    out = tmp_path / f"{k}-{path}-{timing_only}"
                    try:
                        sc = ms.load(base, set=[*sets, "duration=2"])
                        ms.simulate(sc, out, progress=False, timing_only=timing_only,
                                    plots=False, warn=lambda line: None)  # fmt: skip
                        got[path, timing_only] = run_files(out)
                    except ms.MhdSimError as e:
                        got[path, timing_only] = str(e)
        for timing_only in (True, False)[: 1 + (k < 4)]:
            assert got["compiled", timing_only] == got["python", timing_only], (base, sets)
