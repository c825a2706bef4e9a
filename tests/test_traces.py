"""Availability traces, as a user meets them: a CSV named by the scenario, `mhd-sim run`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import cli_run
from test_faults import MHD_SIM, cli, one_line

from mhd_sim.scenario import bundled

TRACE = "agent,start,end\n0,0,20\n0,40,60\n1,10,50\n"


def transitions(run) -> dict[int, list[tuple[float, str]]]:
    ev = pd.read_csv(run / "events.csv")
    ev = ev[ev.event.isin(["offline", "online"])]
    return {a: list(zip(g.time, g.event)) for a, g in ev.groupby("agent")}


@pytest.mark.parametrize("timing_only", [True, False])
def test_an_availability_trace_is_followed_exactly(tmp_path, tiny, timing_only):
    """Agent 0 is online [0, 20) and [40, 60) of each 60 s period, agent 1 [10, 50) shifted
    by its offset of 15 s, agents 2 and 3 always: events.csv has exactly those transitions,
    summary.json exactly those online fractions, in a full run as in a timing-only one."""
    f = tmp_path / "up.csv"
    f.write_text(TRACE)
    tiny["duration"] = 130.0
    tiny["agents"]["churn"] = {"kind": "trace", "path": str(f), "repeat": True, "offset": {1: 15}}
    result, run = cli_run(tmp_path, tiny, "run", *(["--timing-only"] if timing_only else []))
    assert result.exit_code == 0, result.output
    want0 = [(20, "offline"), (40, "online"), (80, "offline"), (100, "online")]
    # agent 1's trace starts at 15: online [25, 65), [85, 125), and the wrapped tail [0, 5)
    want1 = [(5, "offline"), (25, "online"), (65, "offline"), (85, "online"), (125, "offline")]
    assert transitions(run) == {0: want0, 1: want1}
    online = [
        a["online_fraction"] for a in json.loads((run / "summary.json").read_text())["agents"]
    ]
    assert online == pytest.approx([1 - 40 / 130, 1 - 45 / 130, 1.0, 1.0], abs=1e-12)


def test_without_repeat_agents_are_online_after_the_trace(tmp_path, tiny):
    f = tmp_path / "up.csv"
    f.write_text(TRACE)
    tiny["duration"] = 100.0
    tiny["agents"]["churn"] = {"kind": "trace", "path": str(f)}
    result, run = cli_run(tmp_path, tiny, "run", "--timing-only")
    assert result.exit_code == 0, result.output
    assert transitions(run) == {
        0: [(20, "offline"), (40, "online")],
        1: [(0, "offline"), (10, "online"), (50, "offline"), (60, "online")],
    }


UP, SPEED = "agents.churn={{kind: trace, path: {}}}", "agents.speed_trace={}"


@pytest.mark.parametrize(
    "setting, text, says",
    [
        (UP, "agent,begin,end\n0,0,1\n", "row 1: the header needs the columns agent, start, end"),
        (UP, "agent,start,end\n0,0,10\n0,5,20\n", "row 3: agent 0's [5, 20) overlaps its previous"),
        (UP, "agent,start,end\n0,20,30\n0,0,10\n", "row 3: agent 0's [0, 10) comes before its"),
        (UP, "agent,start,end\n0,-1,10\n", "row 2: agent and numbers must be ≥ 0 and finite"),
        (UP, "agent,start,end\n0,x,10\n", "row 2: expected an agent number and 2 numbers"),
        (UP, "agent,start,end\n0,10,5\n", "row 2: the interval ends (5) at or before it starts"),
        (UP, "agent,start,end\n12,0,10\n", "the trace names agent 12, but agents are 0..7"),
        (SPEED, "agent,when,flops\n0,0,1e6\n", "row 1: the header needs the columns agent, time,"),
        (SPEED, "agent,time,flops\n0,0,0\n", "row 2: a speed must be above 0 FLOP/s, got 0"),
        (SPEED, "agent,time,flops\n0,5,1e6\n0,5,2e6\n", "row 3: agent 0's time 5 is not after"),
        (SPEED, "agent,time,flops\n0,-5,1e6\n", "row 2: agent and numbers must be ≥ 0 and"),
        (SPEED, "agent,time,flops\n9,0,1e6\n", "the speed trace names agent 9, but agents are"),
    ],
)
def test_a_bad_trace_is_one_line_naming_file_row_and_reason(tmp_path, setting, text, says):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    result = cli("validate", "straggler", "--set", setting.format(f))
    one_line(result, 2, says)
    assert str(f) in result.stderr  # and short, but for the path the user gave
    assert max(len(line.replace(str(f), "F")) for line in result.stderr.splitlines()) <= 200


def first_step(run, agent: int) -> float:
    ev = pd.read_csv(run / "events.csv")
    return float(ev[(ev.event == "step") & (ev.agent == agent)].time.iloc[0])


def test_a_speed_trace_integrates_a_step_over_its_changes(tmp_path, tiny):
    """Agent 0 (5e5 FLOP/s, no jitter) slows to a quarter halfway through its first step: the
    step ends at ½·d + 4·½·d = 2.5·d, d its length at full speed; agent 1 is unchanged."""
    tiny["agents"]["jitter"] = 0.0
    result, plain = cli_run(tmp_path, tiny, "plain", "--timing-only")
    assert result.exit_code == 0, result.output
    d = first_step(plain, 0)
    f = tmp_path / "speeds.csv"
    f.write_text(f"agent,time,flops\n0,{d / 2!r},{5e5 / 4!r}\n")
    tiny["agents"]["speed_trace"] = str(f)
    result, traced = cli_run(tmp_path, tiny, "traced", "--timing-only")
    assert result.exit_code == 0, result.output
    assert first_step(traced, 0) == pytest.approx(2.5 * d, rel=1e-12)
    ev0, ev1 = (pd.read_csv(r / "events.csv") for r in (plain, traced))
    steps = [e[(e.event == "step") & (e.agent == 1)].time.tolist() for e in (ev0, ev1)]
    assert steps[0] == steps[1] and len(steps[0]) > 10


# --- bandwidth and latency over time --------------------------------------------------------


def test_a_rate_change_mid_transmission_sends_the_rest_at_the_new_rate():
    """1,000 B/s until 0.5 s, then 4,000: a 1,000-byte message started at 0 has 500 bytes
    left at 0.5 s and leaves at 0.625; the next one, behind it, at 0.875."""
    from network_helpers import make_network, times

    from mhd_sim.world.network import Message
    from mhd_sim.world.traces import Steps

    env, net, rows, _ = make_network(latency=0.01, bandwidth=1e3)
    net.uplink_trace = {0: Steps(1e3, [0.5], [4e3])}
    net.send(Message(0, 1, 1_000, 0.0, "a"))
    net.send(Message(0, 2, 1_000, 0.0, "b"))
    env.run()
    assert times(rows, "deliver") == pytest.approx([0.635, 0.885], abs=1e-12)


def write_network_traces(folder, agents: int, duration: float, seed: int = 1) -> dict:
    """A bandwidth trace that changes every 0.1-0.5 s (many transmissions span a change), a
    link's own bandwidth trace, a latency trace on some directed links, and a latency
    matrix: the scenario settings."""
    rng = np.random.default_rng(seed)
    bw = ["agent,time,bandwidth"]
    for a in range(agents - 1):  # the last agent keeps the scenario's bandwidth
        t = float(rng.uniform(0, 0.5))
        while t < duration:
            bw.append(f"{a},{t!r},{float(rng.uniform(2e4, 4e5))!r}")
            t += float(rng.uniform(0.1, 0.5))
    lat = ["src,dst,time,latency"]
    for src, dst in ((0, 1), (1, 0), (2, 3)):
        for t in np.sort(rng.uniform(0, duration, 6)):
            lat.append(f"{src},{dst},{float(t)!r},{float(rng.uniform(0, 0.3))!r}")
    caps = ["src,dst,time,bandwidth"]  # a thin link 1 → 2 that widens and narrows again
    caps += [f"1,2,{t!r},{b!r}" for t, b in ((2.0, 1e4), (7.3, 6e5), (12.1, 3e4))]
    m = rng.uniform(0.001, 0.1, (agents, agents))
    (folder / "bw.csv").write_text("\n".join(bw) + "\n")
    (folder / "lat.csv").write_text("\n".join(lat) + "\n")
    (folder / "caps.csv").write_text("\n".join(caps) + "\n")
    (folder / "m.csv").write_text("\n".join(",".join(map(repr, r)) for r in m.tolist()) + "\n")
    return {"bandwidth_trace": "bw.csv", "latency_trace": "lat.csv", "latency_matrix": "m.csv",
            "link_bandwidth_trace": "caps.csv"}  # fmt: skip


def rate_steps(table: pd.DataFrame, base: float) -> tuple[np.ndarray, np.ndarray]:
    """A step function as (times from 0, rate from each): ``base`` until the first row."""
    return np.concatenate([[0.0], table.time.to_numpy()]), np.concatenate(
        [[base], table.bandwidth.to_numpy()]
    )


def departure(start: float, size: int, steps: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """When ``size`` bytes started at ``start`` have left, at the smallest of ``steps``' rates
    at every moment: the capacity integrated as a piecewise-linear function, inverted."""
    t = np.unique(np.concatenate([s[0] for s in steps] + [[1e9]]))
    rate = np.min([r[np.searchsorted(ts, t, "right") - 1] for ts, r in steps], axis=0)
    capacity = np.concatenate([[0.0], np.cumsum(np.diff(t) * rate[:-1])])
    return float(np.interp(np.interp(start, t, capacity) + size, capacity, t))


def replay(run, folder, bandwidth: float) -> tuple[list, int]:
    """Every delivery time predicted from the sends in events.csv and the trace files alone:
    per uplink first in first out, a message leaving when the smaller of its uplink's and its
    link's rate, integrated from its start, covers its bytes, plus the latency of its link at
    departure (the trace's, else the matrix's). Returns the predicted (receiver, sender,
    time) and how many transmissions spanned a rate change."""
    ev = pd.read_csv(run / "events.csv")
    bw, caps = pd.read_csv(folder / "bw.csv"), pd.read_csv(folder / "caps.csv")
    lat = pd.read_csv(folder / "lat.csv")
    matrix = np.loadtxt(folder / "m.csv", delimiter=",")
    predicted, spanning = [], 0
    for sender, sends in ev[ev.event == "send"].groupby("agent", sort=True):
        up = rate_steps(bw[bw.agent == sender], bandwidth)
        free = 0.0
        for s in sends.itertuples():
            peer, size = int(s.peer), int(s.bytes)
            cap = rate_steps(caps[(caps.src == sender) & (caps.dst == peer)], np.inf)
            start = max(s.time, free)
            leaves = free = departure(start, size, [up, cap])
            changes = np.concatenate([up[0], cap[0]])
            spanning += bool(((changes > start) & (changes < leaves)).any())
            link = lat[(lat.src == sender) & (lat.dst == peer)]
            k = np.searchsorted(link.time.to_numpy(), leaves, "right")
            delay = link.latency.iloc[k - 1] if k else matrix[sender, peer]
            predicted.append((peer, int(sender), leaves + delay))
    return predicted, spanning


def test_deliveries_under_traces_equal_an_independent_replay(tmp_path, tiny):
    """Through `mhd-sim run`: 4 agents on a complete graph, no loss, unbounded uplinks, a
    bandwidth trace changing every few tenths of a second, a link's own bandwidth trace, a
    latency trace and a matrix:
    every delivery at the replay's time to 1e-9 s, and no delivery the replay lacks."""
    tiny["agents"]["groups"] = []
    tiny["network"].update(
        topology="complete", loss=0.0, queue={"policy": "unbounded"}, bandwidth=2e5,
        **write_network_traces(tmp_path, 4, tiny["duration"]),
    )  # fmt: skip
    result, run = cli_run(tmp_path, tiny, "run")
    assert result.exit_code == 0, result.output
    predicted, spanning = replay(run, tmp_path, 2e5)
    ev = pd.read_csv(run / "events.csv")
    got = ev[ev.event == "deliver"]
    for (receiver, sender), rows in got.groupby(["agent", "peer"]):
        want = sorted(t for r, s, t in predicted if (r, s) == (receiver, sender))
        want = [t for t in want if t <= tiny["duration"]]
        assert rows.time.tolist() == pytest.approx(want, abs=1e-9, rel=0)
    late = [t for *_, t in predicted if t > tiny["duration"]]
    assert len(got) == len(predicted) - len(late) > 300
    assert spanning > 30  # the replay checked transmissions that a change cut in two


def test_traces_give_the_same_schedule_in_every_engine_and_the_same_bytes_twice(tmp_path, tiny):
    """The schedule is a function of scenario, seed and traces: per-agent, batched and
    timing-only runs write the same events.csv; the same run twice, the same files."""
    tiny["network"].update(**write_network_traces(tmp_path, 4, tiny["duration"]))
    f = tmp_path / "up.csv"
    f.write_text(TRACE)
    tiny["agents"]["churn"] = {"kind": "trace", "path": "up.csv", "repeat": True}
    runs = {}
    engines = {"batched": ["--set", "engine=batched"], "timing": ["--timing-only"]}
    for name, args in {"a": [], "b": [], **engines}.items():
        result, runs[name] = cli_run(tmp_path, tiny, name, *args)
        assert result.exit_code == 0, result.output
    for name in ("metrics.csv", "events.csv", "uplinks.csv", "reach.csv", "network.csv"):
        assert (runs["a"] / name).read_bytes() == (runs["b"] / name).read_bytes(), name
    events = (runs["a"] / "events.csv").read_bytes()
    assert (runs["batched"] / "events.csv").read_bytes() == events
    assert (runs["timing"] / "events.csv").read_bytes() == events
    assert (runs["timing"] / "plots" / "traces.png").is_file()  # drawn without accuracy too


CAP = "network.link_bandwidth_trace={}"
BW, LAT, MATRIX = (
    "network.bandwidth_trace={}",
    "network.latency_trace={}",
    "network.latency_matrix={}",
)


@pytest.mark.parametrize(
    "setting, text, says",
    [
        (BW, "agent,time,rate\n0,0,1e6\n", "row 1: the header needs the columns agent, time, band"),
        (BW, "agent,time,bandwidth\n0,0,0\n", "row 2: a bandwidth must be above 0 bytes/s, got 0"),
        (BW, "agent,time,bandwidth\n0,5,1e6\n0,1,2e6\n", "row 3: agent 0's time 1 is not after"),
        (BW, "agent,time,bandwidth\n0,-5,1e6\n", "row 2: agent and numbers must be ≥ 0 and"),
        (BW, "agent,time,bandwidth\n0,1,fast\n", "row 2: expected an agent number and 2 numbers"),
        (BW, "agent,time,bandwidth\n9,0,1e6\n", "the trace names agent 9, but agents are 0..7"),
        (CAP, "src,dst,time,bandwidth\n0,1,0,-1\n", "row 2: agent and numbers must be ≥ 0"),
        (CAP, "src,dst,time,bandwidth\n0,1,0,0\n", "a link bandwidth must be above 0 bytes/s"),
        (CAP, "src,dst,time,bandwidth\n0,9,0,1e5\n", "the trace names agent 9, but agents are"),
        (LAT, "src,dst,time,latency\n0,1,5,0.1\n0,1,5,0.2\n", "row 3: link 0→1's time 5 is not"),
        (LAT, "src,dst,time,latency\n0,8,0,0.1\n", "the trace names agent 8, but agents are 0..7"),
        (LAT, "src,time,latency\n0,0,0.1\n", "row 1: the header needs the columns src, dst, time"),
        (LAT, "src,dst,time,latency\n0,x,0,0.1\n", "row 2: expected 2 agent numbers and 2 numbers"),
        (MATRIX, "0,1\n1,0\n", "row 1: expected 8 numbers (one per agent), got '0,1'"),
        (MATRIX, "\n".join([",".join(["0.1"] * 8)] * 7), "for 8 agents is 8×8, got shape 7×8"),
        (MATRIX, "\n".join([",".join(["0.1"] * 8)] * 7 + ["0,1,2,x,4,5,6,7"]), "row 8: expected"),
        (MATRIX, "\n".join([",".join(["-0.1"] * 8)] * 8), "≥ 0 and finite, got -0.1 at row 1"),
    ],
)
def test_a_bad_network_trace_is_one_line_naming_file_row_and_reason(tmp_path, setting, text, says):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    result = cli("validate", "straggler", "--set", setting.format(f))
    one_line(result, 2, says)
    assert str(f) in result.stderr
    assert max(len(line.replace(str(f), "F")) for line in result.stderr.splitlines()) <= 200


def test_a_latency_matrix_as_npy_is_read_without_pickles(tmp_path):
    good, bad = tmp_path / "m.npy", tmp_path / "objects.npy"
    np.save(good, np.full((8, 8), 0.02))
    np.save(bad, np.array([[{"a": 1}] * 8] * 8, dtype=object), allow_pickle=True)
    assert cli("validate", "straggler", "--set", MATRIX.format(good)).returncode == 0
    one_line(cli("validate", "straggler", "--set", MATRIX.format(bad)), 2, "not a .npy array")


def test_relative_paths_are_read_beside_the_scenario_file(tmp_path, tiny):
    """A scenario and its traces in one folder run from anywhere; the run's scenario.yaml
    names the file it read, so it runs again from the run directory."""
    folder = tmp_path / "study"
    (folder / "traces").mkdir(parents=True)
    (folder / "traces" / "up.csv").write_text(TRACE)
    tiny["agents"]["churn"] = {"kind": "trace", "path": "traces/up.csv"}
    (folder / "s.yaml").write_text(yaml.safe_dump(tiny))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [*MHD_SIM, "run", str(folder / "s.yaml"), "--out", "r", "-q", "--timing-only"],
        cwd=elsewhere, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load((elsewhere / "r" / "scenario.yaml").read_text())
    assert resolved["agents"]["churn"]["path"] == str(folder / "traces" / "up.csv")
    again = cli("validate", str(elsewhere / "r" / "scenario.yaml"))
    assert again.returncode == 0, again.stderr


def test_the_bundled_traces_run_and_are_what_the_seeded_script_writes(tmp_path):
    """`mhd-sim run traces` (cut to 40 s) draws plots/traces.png and writes uplinks.csv; the
    script that made the bundled trace files writes the same bytes again."""
    result = cli("run", "traces", "--set", "duration=40", "--out", str(tmp_path / "run"), "-q")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "plots" / "traces.png").is_file()
    uplinks = pd.read_csv(tmp_path / "run" / "uplinks.csv")
    assert sorted(uplinks.agent.unique()) == list(range(8)) and uplinks.time.max() < 40
    made = subprocess.run(
        [sys.executable, "-m", "mhd_sim.world.trace_examples", str(tmp_path / "made")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    bundled_dir = bundled.directory() / "traces"
    for f in sorted((tmp_path / "made").iterdir()):
        assert f.read_bytes() == (bundled_dir / f.name).read_bytes(), f.name


def test_a_sweep_over_a_trace_reads_it_beside_the_scenario(tmp_path, tiny):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "bw.csv").write_text("agent,time,bandwidth\n0,0,5e4\n0,10,5e5\n")
    (folder / "s.yaml").write_text(yaml.safe_dump(tiny))
    out = tmp_path / "sweep"
    grid = "network.bandwidth_trace=null,bw.csv"
    result = cli("sweep", str(folder / "s.yaml"), "--grid", grid, "--out", str(out), "--jobs", "1")
    assert result.returncode == 0, result.stderr
    index = pd.read_csv(out / "sweep.csv")
    assert index.status.tolist() == ["done", "done"]
    traced = out / "runs" / "bandwidth_trace=bw.csv_seed=0"
    assert pd.read_csv(traced / "uplinks.csv").bandwidth.tolist()[:2] == [5e4, 5e5]
    assert (traced / "plots" / "traces.png").is_file()
    assert not (out / "runs" / "bandwidth_trace=null_seed=0" / "uplinks.csv").exists()


def test_the_fedscale_converter_on_its_bundled_sample(tmp_path, tiny):
    """As its docs show it: the bundled FedScale-format sample converts to an availability
    CSV that a run follows; its two lines say what it wrote and how to use it; a missing file
    is one line naming it, exit 2."""
    sample = bundled.directory() / "traces" / "fedscale_sample.pkl"
    out = tmp_path / "up.csv"

    def convert(source):
        return subprocess.run(
            [sys.executable, "-m", "mhd_sim.world.traces", "fedscale", str(source), str(out),
             "--agents", "4", "--duration", "3600"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    done = convert(sample)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"wrote {out}: ") and lines[0].endswith(" intervals of 4 agents")
    assert lines[1] == f"in a scenario: agents.churn: {{kind: trace, path: {out}, period: 3600}}"
    spans = pd.read_csv(out)
    assert sorted(spans.agent.unique()) == [0, 1, 2, 3] and (spans.end > spans.start).all()
    tiny["duration"] = 3600.0
    tiny["agents"]["churn"] = {"kind": "trace", "path": str(out), "period": 3600}
    result, run = cli_run(tmp_path, tiny, "run", "--timing-only")
    assert result.exit_code == 0, result.output
    online = json.loads((run / "summary.json").read_text())["agents"][0]["online_fraction"]
    first = spans[spans.agent == 0]
    assert online == pytest.approx((first.end - first.start).sum() / 3600)
    missing = convert(tmp_path / "nofile")
    one_line(missing, 2, f"FedScale trace: '{tmp_path / 'nofile'}' cannot be read (No such file")
