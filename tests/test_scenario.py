import pytest
import yaml
from typer.testing import CliRunner

from mhd_sim.cli import app
from mhd_sim.scenario import ScenarioError, apply_overrides, load, validate


def problems(raw) -> list[str]:
    with pytest.raises(ScenarioError) as e:
        validate(raw)
    return e.value.problems


def test_defaults_fill_every_section():
    sc = validate({})
    assert sc.algorithm.name == "mhd" and sc.network.topology.kind == "ring"
    assert sc.resolved()["data"]["dataset"] == {
        "kind": "mnist1d",
        "classes": 10,
        "samples": None,  # 1,200 per class
        "template_seed": 0,
        "test_fraction": 0.2,
    }


def test_bound_violation_names_field_and_value():
    assert problems({"network": {"bandwidth": -3}}) == ["network.bandwidth: must be >= 1, got -3"]


def test_unknown_key_is_named():
    assert problems({"network": {"bandwith": 1e6}}) == [
        "network.bandwith: unknown key; did you mean bandwidth?"
    ]


def test_wrong_type_is_named():
    (line,) = problems({"agents": {"count": "many"}})
    assert line.startswith("agents.count: ") and "'many'" in line


def test_unknown_kind_lists_choices():
    (line,) = problems({"network": {"topology": {"kind": "hypercube"}}})
    assert line.startswith("network.topology: unknown kind 'hypercube'") and "ring" in line


def test_params_of_a_kind_are_checked_with_their_path():
    assert problems({"network": {"topology": {"kind": "erdos_renyi", "p": 3}}}) == [
        "network.topology.p: must be <= 1, got 3"
    ]
    assert problems({"data": {"partition": {"kind": "iid", "skew": 0.5}}}) == [
        "data.partition.skew: unknown key"
    ]


def test_latency_accepts_number_or_distribution():
    assert validate({"network": {"latency": 0.2}}).resolved()["network"]["latency"] == {
        "dist": "constant",
        "value": 0.2,
    }
    assert (
        validate(
            {"network": {"latency": {"dist": "lognormal", "median": 0.1}}}
        ).network.latency.sigma
        == 0.5
    )
    (line,) = problems({"network": {"latency": -1}})
    assert line == "network.latency.value: must be >= 0, got -1"


def test_missing_dataset_file_says_what_to_provide(tmp_path):
    (line,) = problems({"data": {"dataset": {"kind": "npz", "path": str(tmp_path / "nope.npz")}}})
    assert line.startswith("data.dataset.path: no file at") and "x_train" in line


def test_groups_must_name_existing_agents():
    (line,) = problems({"agents": {"count": 4, "groups": [{"name": "slow", "agents": [7]}]}})
    assert line.startswith("agents: ") and "agent 7" in line


def test_overrides_are_typed_and_kind_resets_settings():
    raw = {"network": {"topology": {"kind": "erdos_renyi", "p": 0.3}}}
    out = apply_overrides(raw, ["network.topology.kind=complete", "network.loss=0.25", "seed=4"])
    assert out == {"network": {"topology": {"kind": "complete"}, "loss": 0.25}, "seed": 4}
    assert validate(out).network.loss == 0.25
    with pytest.raises(ScenarioError, match="expected KEY=VALUE"):
        apply_overrides({}, ["network.loss"])


def test_override_into_a_list_item():
    raw = {"agents": {"groups": [{"name": "slow", "agents": [0], "speed": 1.0}]}}
    assert apply_overrides(raw, ["agents.groups.0.speed=5"])["agents"]["groups"][0]["speed"] == 5


def test_load_reports_bad_yaml_with_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: x\nnetwork: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load(f)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "network.bandwidth=-3"], "network.bandwidth: must be >= 1, got -3"),
        (["--set", "algorithm.name=fedprox"], "unknown algorithm 'fedprox'"),
        (["--set", "nonsense"], "expected KEY=VALUE"),
        (
            ["--set", "algorithm.period=5"],
            "algorithm.period is a fedavg setting; this run's algorithm is mhd",
        ),
        (
            ["--set", "algorithm.name=fedavg", "--set", "algorithm.heads=4"],
            "algorithm.heads is an mhd or hybrid setting; this run's algorithm is fedavg",
        ),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, tiny, args, message):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(tiny))
    result = CliRunner().invoke(app, ["validate", str(f), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_each_algorithm_has_its_own_settings():
    """A name switched on the command line keeps what the new algorithm shares with the file's
    and drops the rest; a file that mixes algorithms is refused."""
    straggler = load("scenarios/straggler.yaml")
    assert straggler.algorithm.heads == 3 and not hasattr(straggler.algorithm, "period")
    distill = load("scenarios/straggler.yaml", ["algorithm.name=distill"]).algorithm
    assert (distill.name, distill.share_size, distill.share_every) == ("distill", 256, 5)
    assert not hasattr(distill, "heads")
    fedavg = load("scenarios/straggler.yaml", ["algorithm.name=fedavg", "algorithm.period=7"])
    assert fedavg.algorithm.period == 7 and fedavg.algorithm.encoding == "float16"
    assert load("scenarios/straggler.yaml", ["algorithm.name=isolated"]).algorithm.name == (
        "isolated"
    )
    with pytest.raises(
        ScenarioError, match="^algorithm.heads is an mhd or hybrid setting; this run's "
    ):
        validate({"algorithm": {"name": "gossip", "heads": 3}})
    with pytest.raises(
        ScenarioError, match="^algorithm.hedas: unknown key; did you mean heads\\?$"
    ):
        validate({"algorithm": {"hedas": 3}})


def test_cli_missing_scenario_file_exit_2(tmp_path):
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2 and "no such scenario file" in result.output


def test_bundled_scenarios_validate():
    from mhd_sim.scenario import bundled

    files = sorted(bundled.directory().glob("**/*.yaml"))
    assert files, "no bundled scenarios found"
    for f in files:
        load(f)


def test_cli_lists_bundled_scenarios_with_their_first_comment():
    result = CliRunner().invoke(app, ["scenarios"])
    assert result.exit_code == 0 and "straggler" in result.output and "Stragglers:" in result.output


def test_scenario_reference_and_bundled_schema_match_the_models():
    """docs/scenario-reference.md and the bundled JSON Schema are generated; regenerate them
    with `python -m mhd_sim.scenario.reference` when this fails."""
    import json
    from pathlib import Path

    from mhd_sim.scenario import bundled, reference

    root = Path(__file__).resolve().parent.parent
    assert (root / "docs" / "scenario-reference.md").read_text() == reference.markdown()
    shipped = json.loads((bundled.directory() / bundled.SCHEMA_FILE).read_text())
    assert shipped == reference.json_schema()


def test_schema_command_prints_a_json_schema_that_bundled_scenarios_use():
    import json

    from mhd_sim.scenario import bundled

    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "mhd-sim scenario"
    assert {"data", "agents", "network", "algorithm"} <= set(schema["properties"])
    for name in bundled.names():
        first = (bundled.directory() / f"{name}.yaml").read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema=") and first.endswith(
            bundled.SCHEMA_FILE
        ), name


def test_every_scenario_example_in_the_docs_loads():
    """The docs' whole-scenario examples (a YAML block with a name) validate as written."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    examples = []
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for block in re.findall(r"```yaml\n(.*?)```", page.read_text(), re.S):
            raw = yaml.safe_load(block)
            if isinstance(raw, dict) and "name" in raw:
                examples.append((page.name, raw))
    assert len(examples) >= 2
    for page, raw in examples:
        assert validate(raw).name == raw["name"], page


def test_validate_prints_yaml_that_fits_80_columns_and_reads_back():
    """What ``validate`` prints can be pasted as a scenario file: lines within the terminal,
    comments unbroken, the same settings when read back."""
    result = CliRunner().invoke(app, ["validate", "paper_regime", "--no-labels"], terminal_width=80)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(ln) for ln in lines if not ln.startswith("#")) <= 80
    again = validate(yaml.safe_load(result.output))
    assert again.resolved() == load("paper_regime").resolved()
