"""The world's network model over time: churn, neighbour sampling, scheduled link changes."""

from collections import Counter

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from conftest import algorithm, simulation

from mhd_sim.api import build_simulation
from mhd_sim.record.run_directory import RunDirectory
from mhd_sim.scenario import ScenarioError, validate
from mhd_sim.world.topology import TOPOLOGIES
from mhd_sim.world.topology import build as build_topology


def simulate(tmp_path, raw: dict) -> tuple:
    return simulation(tmp_path / "run", raw)


def timing_scenario(tiny, **network) -> dict:
    """Slow compute (one step ≈ 5 s) so that long horizons cost few learning steps."""
    tiny["agents"]["speed"] = 2e3
    tiny["agents"].pop("groups")
    tiny["algorithm"]["share_every"] = 1
    tiny["eval"]["every"] = 1e9
    tiny["network"].update(network)
    return tiny


def test_markov_churn_online_fraction_is_up_over_up_plus_down(tmp_path, tiny):
    sc = timing_scenario(tiny)
    sc["algorithm"] = algorithm(sc, "isolated")
    sc["agents"]["speed"] = 1.0  # a step lasts days: only the churn processes are busy
    sc["agents"]["churn"] = {"up_mean": 40.0, "down_mean": 20.0}
    sc["duration"] = 2e5
    _, summary = simulate(tmp_path, sc)
    fractions = [a["online_fraction"] for a in summary["agents"]]
    # ~3,300 cycles per agent: the time average's standard deviation is about 0.004
    assert np.mean(fractions) == pytest.approx(40 / 60, abs=0.01)
    assert all(abs(f - 40 / 60) < 0.025 for f in fractions)


def test_scheduled_churn_takes_agents_offline_exactly_when_asked(tmp_path, tiny):
    tiny["agents"]["churn"] = {"kind": "schedule", "offline": {1: [[4, 9], [12, 15]]}}
    sim, summary = simulate(tmp_path, tiny)
    events = pd.read_csv(sim.record.path / "events.csv")
    mine = events[events.event.isin(["offline", "online"]) & (events.agent == 1)]
    assert list(zip(mine.time, mine.event)) == [
        (4, "offline"),
        (9, "online"),
        (12, "offline"),
        (15, "online"),
    ]
    assert summary["agents"][1]["online_fraction"] == pytest.approx(1 - 8 / 20)
    steps = events[(events.event == "step") & (events.agent == 1)].time
    assert (
        not steps.between(4, 9, inclusive="neither").any()
        and not steps.between(12, 15, "neither").any()
    )


def test_neighbour_sampling_picks_each_neighbour_equally(tmp_path, tiny):
    tiny["agents"]["count"] = 6
    tiny["agents"]["groups"] = []
    tiny["network"].update(topology="complete", fanout=2)
    sim = build_simulation(validate(tiny), RunDirectory(tmp_path / "run"))
    draws = 10_000
    counts = Counter(j for _ in range(draws) for j in sim.coordinator.targets(0))
    assert sorted(counts) == [1, 2, 3, 4, 5]
    expected = draws * 2 / 5
    for j, c in counts.items():  # binomial sd ≈ 49; 4 sd
        assert abs(c - expected) < 200, (j, c)
    assert all(len(set(sim.coordinator.targets(3))) == 2 for _ in range(100))  # without replacement


def test_sampled_shares_go_to_k_neighbours(tmp_path, tiny):
    tiny["network"].update(topology="complete", fanout=1, loss=0.0)
    sim, summary = simulate(tmp_path, tiny)
    events = pd.read_csv(sim.record.path / "events.csv")
    sends = events[events.event == "send"]
    assert sends.groupby(["agent", "time"]).size().eq(1).all()
    assert sends.peer.nunique() == 4


def replay_links(run_dir) -> None:
    """Replay events.csv; fail if a message is delivered over a down link or to an offline agent."""
    up = {
        tuple(map(int, line.split()))
        for line in (run_dir / "topology.edges").read_text().splitlines()
        if not line.startswith("#")
    }
    offline: set[int] = set()
    events = pd.read_csv(run_dir / "events.csv")
    for row in events.itertuples():
        if row.event in ("link_down", "link_up"):
            pair = (min(row.agent, row.peer), max(row.agent, row.peer))
            (up.discard if row.event == "link_down" else up.add)(pair)
        elif row.event == "offline":
            offline.add(row.agent)
        elif row.event == "online":
            offline.discard(row.agent)
        elif row.event == "deliver":
            pair = (min(row.agent, row.peer), max(row.agent, row.peer))
            assert pair in up, f"delivered over down link {pair} at t={row.time}"
            assert row.agent not in offline, (
                f"delivered to offline agent {row.agent} at t={row.time}"
            )
    return events


def test_no_delivery_over_a_down_link_or_to_an_offline_agent(tmp_path, tiny):
    tiny["agents"]["count"] = 6
    tiny["agents"]["groups"] = []
    tiny["agents"]["churn"] = {"up_mean": 4.0, "down_mean": 2.0}
    tiny["duration"] = 30.0
    tiny["network"].update(
        topology="complete",
        latency={"dist": "exponential", "mean": 0.3},
        bandwidth=3e4,
        loss=0.0,
        schedule=[
            {"kind": "link_down", "at": 3, "until": 8, "links": [[0, 1], [2, 3]]},
            {"kind": "partition", "at": 10, "until": 16, "groups": [[0, 1, 2]]},
            {"kind": "switch", "at": 20, "topology": "ring"},
        ],
    )
    sim, summary = simulate(tmp_path, tiny)
    events = replay_links(sim.record.path)
    reasons = summary["messages"]["dropped_by_reason"]
    assert reasons["link_down"] > 0 and reasons["offline"] > 0  # the replay checked real cases
    assert set(events.event) >= {"partition", "heal", "switch", "link_down", "link_up"}
    downs = events[events.event == "link_down"]
    assert len(downs[downs.time == 10]) == 9  # 3 × 3 cross-partition links of the complete graph
    # after the switch to a ring, only ring neighbours exchange messages
    late = events[(events.event == "send") & (events.time > 20.5)]
    assert ((late.agent - late.peer) % 6).isin([1, 5]).all() and len(late) > 0


def test_disconnected_topologies_warn_once(tmp_path, tiny):
    tiny["network"]["schedule"] = [
        {"kind": "switch", "at": 5, "topology": {"kind": "erdos_renyi", "p": 0.0}}
    ]
    sim = build_simulation(validate(tiny), RunDirectory(tmp_path / "run"))
    assert len(sim.warnings) == 1 and "t=5" in sim.warnings[0]


def test_max_staleness_stops_old_predictions_from_teaching(tmp_path, tiny):
    tiny["network"].update(latency=3.0, loss=0.0)  # every prediction is at least 3 s old
    tiny["algorithm"]["max_staleness"] = 2.0
    sim, summary = simulate(tmp_path, tiny)
    assert summary["messages"]["delivered"] > 0
    assert summary["staleness"]["distill_steps"] == 0  # nothing fresh enough was ever used
    tiny["algorithm"]["max_staleness"] = 10.0
    sim, summary = simulate(tmp_path / "b", tiny)
    events = pd.read_csv(sim.record.path / "events.csv")
    distill = events[events.event == "distill"]
    assert (
        len(distill) > 0
        and (distill.staleness_max <= 10.0).all()
        and (distill.staleness >= 3.0).all()
    )
    assert (distill.staleness_max >= distill.staleness).all()
    assert summary["staleness"]["max"] == pytest.approx(distill.staleness_max.max())


def test_speeds_drawn_from_a_distribution_per_agent(tmp_path, tiny):
    tiny["agents"]["speed"] = {"dist": "lognormal", "median": 2e6, "sigma": 0.5}
    sc = validate(tiny)
    speeds = [a.speed for a in sc.agents.per_agent(sc.seed)]
    assert speeds[0] == 5e5  # the group keeps its fixed speed
    assert len(set(speeds[1:])) == 3 and all(2e5 < s < 2e7 for s in speeds[1:])
    assert speeds == [a.speed for a in sc.agents.per_agent(sc.seed)]


@pytest.mark.parametrize(
    "kind,settings,edges",
    [
        ("grid", {"rows": 3}, 17),
        ("torus", {"rows": 3}, 24),
        ("small_world", {"k": 4, "p": 0.2}, 24),
        ("barabasi_albert", {"m": 2}, 20),
        ("islands", {"islands": 3, "bridges": 2}, 4 * 6 // 2 * 3 // 2 + 4),
    ],
)
def test_topologies_are_seeded(kind, settings, edges):
    sc = validate({"agents": {"count": 12}, "network": {"topology": {"kind": kind, **settings}}})
    a = build_topology(sc.network.topology, 12, 0)
    assert a.number_of_edges() == edges and sorted(a.nodes) == list(range(12))
    assert nx.utils.graphs_equal(a, build_topology(sc.network.topology, 12, 0))


def test_every_topology_is_registered_and_validates(tmp_path, tiny):
    """Each registered kind validates with its defaults and gives a graph over every agent."""
    edges = tmp_path / "g.edges"
    edges.write_text("0 1\n1 2\n2 3\n")
    tiny["agents"]["count"] = 12
    for kind in TOPOLOGIES.names():
        tiny["network"]["topology"] = {
            "kind": kind,
            **({"path": str(edges)} if kind == "edges" else {}),
        }
        sc = validate(tiny)
        graph = build_topology(sc.network.topology, 12, sc.seed)
        assert sorted(graph.nodes) == list(range(12)) and graph.number_of_edges() >= 3, kind
    assert set(TOPOLOGIES.names()) >= {
        "complete",
        "ring",
        "star",
        "grid",
        "torus",
        "islands",
        "erdos_renyi",
        "random_regular",
        "small_world",
        "barabasi_albert",
        "edges",
    }


def test_edge_list_file(tmp_path, tiny):
    f = tmp_path / "g.txt"
    f.write_text("# a path\n0 1\n1 2  # middle\n2 3\n")
    tiny["network"]["topology"] = {"kind": "edges", "path": str(f)}
    sim, _ = simulate(tmp_path, tiny)
    assert sorted(sim.links.graph.edges) == [(0, 1), (1, 2), (2, 3)]
    f.write_text("0 9\n")
    with pytest.raises(
        ScenarioError, match=r"line 1: edge 0 9 is not between two of the agents 0..3"
    ):
        validate(tiny)
    tiny["network"]["topology"]["path"] = str(tmp_path / "missing.txt")
    with pytest.raises(ScenarioError, match="expected an edge list"):
        validate(tiny)


@pytest.mark.parametrize(
    "network,message",
    [
        (
            {"schedule": [{"kind": "link_down", "at": 5, "until": 2, "links": [[0, 1]]}]},
            "until .2. must be after",
        ),
        (
            {"schedule": [{"kind": "partition", "at": 5, "groups": [[0, 7]]}]},
            "schedule.0: agent 7 does not exist",
        ),
        (
            {"links": [{"links": [[0, 1]], "bandwidth": -1}]},
            "network.links.0.bandwidth: must be >= 1",
        ),
        ({"fanout": 0}, "network.fanout: must be >= 1"),
        (
            {"schedule": [{"kind": "switch", "at": 1, "topology": {"kind": "star", "center": 9}}]},
            "network.schedule.0.topology: center 9 is not an agent",
        ),
    ],
)
def test_network_schedule_errors_name_the_field(tiny, network, message):
    tiny["network"].update(network)
    with pytest.raises(ScenarioError, match=message):
        validate(tiny)


def test_link_overrides_apply_to_the_named_links_only(tmp_path, tiny):
    tiny["network"].update(
        topology={"kind": "islands", "islands": 2, "bridges": 1},
        loss=0.0,
        links=[
            {
                "between": [[0, 1], [2, 3]],
                "latency": {"dist": "constant", "value": 0.5},
                "bandwidth": 1e3,
                "loss": 0.2,
            }
        ],
    )
    sim = build_simulation(validate(tiny), RunDirectory(tmp_path / "run"))
    wan, lan = sim._link(2, 0), sim._link(0, 1)
    assert (wan.latency(None), wan.bandwidth, wan.loss) == (0.5, 1e3, 0.2)
    assert (lan.latency(None), lan.bandwidth, lan.loss) == (0.01, float("inf"), 0.0)


TIMING_VARIANTS = {
    "mhd": {"include_self": False},
    "mhd, own head": {},
    "distill": {"name": "distill"},
    "gossip": {"name": "gossip"},
    "mhd, stale limit, 1 random teacher": {"max_staleness": 3.0, "teachers": 1},
}


@pytest.mark.parametrize("variant", TIMING_VARIANTS)
def test_timing_only_runs_the_same_schedule_without_training(tmp_path, tiny, variant):
    """Every event of a full run, distill rows and their staleness included: one plan draws
    and ages what both read."""
    settings = dict(TIMING_VARIANTS[variant])
    tiny["algorithm"] = algorithm(tiny, settings.pop("name", "mhd"), **settings)
    tiny["agents"]["churn"] = {"up_mean": 6.0, "down_mean": 2.0}
    tiny["network"]["schedule"] = [{"kind": "partition", "at": 5, "until": 12, "groups": [[0, 1]]}]
    full, full_summary = simulate(tmp_path / "full", tiny)
    record = RunDirectory(tmp_path / "timing")
    sim = build_simulation(validate(tiny), record, timing_only=True)
    summary = sim.run()
    record.close()
    a, b = (pd.read_csv(d / "events.csv") for d in (full.record.path, tmp_path / "timing"))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert {"send", "deliver", "offline", "link_down"} <= set(b.event)
    if variant != "gossip":
        assert (b.event == "distill").sum() > 10
    assert summary["staleness"] == full_summary["staleness"]
    teachers = [x["staleness_as_teacher"] for x in summary["agents"]]
    assert teachers == [x["staleness_as_teacher"] for x in full_summary["agents"]]
    assert summary["timing_only"] and "final" not in summary  # no accuracy to report
    assert pd.read_csv(tmp_path / "timing" / "metrics.csv").empty
