"""The scenario reference and JSON Schema, generated from the pydantic models so they cannot
drift: ``docs/scenario-reference.md`` and ``mhd_sim/scenarios/scenario.schema.json`` are
written by ``python -m mhd_sim.scenario.reference``, and a test fails when either differs
from what this module makes now."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pydantic

from ..learning.algorithms import ALGORITHMS
from ..learning.data.datasets import DATASETS
from ..learning.data.partitions import PARTITIONS
from ..learning.models.backbones import BACKBONES
from ..registry import Registry
from ..seeds import DISTRIBUTIONS
from ..world.topology import TOPOLOGIES
from . import bundled
from .schema import Scenario

PIECES: list[tuple[str, Registry, str]] = [
    ("data.dataset", DATASETS, "datasets"),
    ("data.partition", PARTITIONS, "partitions"),
    ("agents.model", BACKBONES, "models (backbones)"),
    ("network.topology", TOPOLOGIES, "topologies"),
    ("latencies, speeds, sizes", DISTRIBUTIONS, "distributions (`dist`)"),
]
SECTIONS: list[tuple[str, list[str]]] = [  # (title, path of models below Scenario)
    ("top level", []),
    ("data", ["data"]),
    ("agents", ["agents"]),
    ("agents.groups[]", ["agents", "groups"]),
    ("agents.churn (Markov)", ["agents", "churn", "MarkovChurn"]),
    ("agents.churn (schedule)", ["agents", "churn", "ScheduledChurn"]),
    ("agents.churn (trace)", ["agents", "churn", "TraceChurn"]),
    ("network", ["network"]),
    ("network.queue", ["network", "queue"]),
    ("network.transport", ["network", "transport"]),
    ("network.links[]", ["network", "links"]),
    ("network.schedule[]: link_down", ["network", "schedule", "LinkFailure"]),
    ("network.schedule[]: partition", ["network", "schedule", "Partition"]),
    ("network.schedule[]: switch", ["network", "schedule", "Switch"]),
    ("training", ["training"]),
    ("eval", ["eval"]),
]


def json_schema() -> dict[str, Any]:
    """The scenario file's JSON Schema (what ``mhd-sim schema`` prints)."""
    schema = Scenario.model_json_schema()
    schema["title"] = "mhd-sim scenario"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _type(prop: dict[str, Any]) -> str:
    """A short, readable type of one JSON Schema property."""
    if "const" in prop:
        return f"`{prop['const']}`"
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return "distribution" if name.startswith("distribution") else name
    if "anyOf" in prop or "oneOf" in prop:
        options = [_type(p) for p in prop.get("anyOf", prop.get("oneOf", []))]
        if any(o.startswith("distribution") for o in options):
            options = ["number or distribution"] + [o for o in options if o == "null"]
        if all(o.startswith(("dataset", "partition", "model", "topology")) for o in options):
            return "kind (see below)"
        if all(o.endswith("Settings") for o in options):
            return "settings of the algorithm `name` picks"
        return " or ".join(dict.fromkeys(options))
    kind = prop.get("type", "any")
    if kind == "array":
        items = prop.get("prefixItems")
        if items:
            return "[" + ", ".join(_type(i) for i in items) + "]"
        return f"list of {_type(prop.get('items', {}))}"
    if kind == "object" and "additionalProperties" in prop:
        return f"map of {_type(prop['additionalProperties'])}"
    bounds = [
        f"{op} {prop[key]:g}"
        for key, op in (
            ("exclusiveMinimum", ">"),
            ("minimum", "≥"),
            ("exclusiveMaximum", "<"),
            ("maximum", "≤"),
        )
        if key in prop
    ]
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def _default(field: pydantic.fields.FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default
    if isinstance(value, pydantic.BaseModel):
        return "see its section"
    if isinstance(value, pydantic.BaseModel | dict) or hasattr(value, "model_dump"):
        return "see its section"
    return f"`{json.dumps(value, default=str)}`"


def _rows(model: type[pydantic.BaseModel], schema: dict[str, Any]) -> list[str]:
    props = schema.get("properties", {})
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        about = " ".join((field.description or "").split())
        rows.append(f"| `{name}` | {_type(props.get(name, {}))} | {_default(field)} | {about} |")
    return rows


def _model_at(path: list[str]) -> type[pydantic.BaseModel]:
    from . import agents, network

    if path and path[-1][0].isupper():
        return getattr(agents, path[-1], None) or getattr(network, path[-1])
    model: Any = Scenario
    for part in path:
        annotation = model.model_fields[part].annotation
        model = next(
            t
            for t in _flatten(annotation)
            if isinstance(t, type) and issubclass(t, pydantic.BaseModel)
        )
    return model


def _flatten(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    if not args:
        return [annotation]
    return [a for arg in args for a in _flatten(arg)]


def markdown() -> str:
    """``docs/scenario-reference.md``: every section's keys, then every registered piece."""
    defs = json_schema()["$defs"]
    out = [
        "# Scenario reference",
        "",
        "Generated from the pydantic models by `python -m mhd_sim.scenario.reference`; a test "
        "fails when this page drifts from them. A guide by example is "
        "[scenarios.md](scenarios.md); `mhd-sim schema` prints the JSON Schema, and the "
        "bundled scenarios point editors at it with a `yaml-language-server` comment.",
        "",
        "Any key can be set on the command line: `--set network.topology.kind=complete`.",
    ]
    for title, path in SECTIONS:
        if title == "training":  # after network: the algorithm, one table per algorithm
            out += _algorithms()
        model = _model_at(path)
        schema = json_schema() if not path else defs[model.__name__]
        out += ["", f"## {title}", ""]
        doc = (model.__doc__ or "").strip().split("\n")[0] if path else ""
        if doc and not doc.startswith(("A base class", "Usage docs")):
            out += [doc, ""]
        out += _rows(model, schema)
    out += ["", "## Registered pieces", ""]
    out += [
        "A piece is chosen by its `kind` (`dist` for distributions) and takes the settings "
        "listed. A bare name stands for `{kind: name}`; a bare number where a distribution "
        "is expected stands for `{dist: constant, value: number}`.",
    ]
    for where, registry, title in PIECES:
        out += ["", f"### {title}", "", f"Used by: {where}."]
        for name in registry.names():
            model = registry.params_model(name)
            schema = model.model_json_schema()
            doc = " ".join((model.__doc__ or "").split())
            out += ["", f"#### `{name}`", ""]
            if doc:
                out += [doc, ""]
            rows = [r for r in _rows(model, schema) if not r.startswith(f"| `{registry.tag}`")]
            out += rows if len(rows) > 2 else ["No settings."]
    return "\n".join(out) + "\n"


def _algorithms() -> list[str]:
    """The ``algorithm`` section: ``name`` picks the algorithm, and each has its own settings
    (a setting of another algorithm is an error naming both)."""
    out = [
        "",
        "## algorithm",
        "",
        "`algorithm.name` picks the learning algorithm (default `mhd`); each has its own "
        "settings, listed under it. A setting of another algorithm is an error that names "
        "both; `--set algorithm.name=X` keeps the settings X has too and drops the others.",
    ]
    for name in ["mhd", *(n for n in ALGORITHMS.names() if n != "mhd")]:
        model = ALGORITHMS.params_model(name)
        doc = " ".join((model.__doc__ or "").split())
        out += ["", f"### `{name}`", ""]
        if doc:
            out += [doc, ""]
        rows = [r for r in _rows(model, model.model_json_schema()) if not r.startswith("| `name`")]
        out += rows if len(rows) > 2 else ["No settings."]
    return out


def write(root: Path) -> list[Path]:
    """Write the reference page and the bundled schema under the repository ``root``."""
    page = root / "docs" / "scenario-reference.md"
    page.write_text(markdown())
    schema = bundled.directory() / bundled.SCHEMA_FILE
    schema.write_text(json.dumps(json_schema(), indent=2) + "\n")
    return [page, schema]


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    for path in write(root):
        print(f"wrote {path}")
