"""Availability traces, as a user meets them: a CSV named by the scenario, `mhd-sim run`."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import cli_run
from test_faults import cli, one_line

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
