"""Reading a scenario: ``--set`` overrides, validation with one line per problem, and loading.

Bad input becomes a :class:`ScenarioError` whose lines each name the field and the reason,
so the command line can print them without a traceback.
"""

from __future__ import annotations

import copy
import difflib
import functools
import reprlib
import typing
from pathlib import Path
from typing import Any

import pydantic
import yaml

from ..untrusted import parse_yaml, read_yaml
from .schema import TAGS, Scenario, owners

TAGGED = (*TAGS, "name")  # fields that pick a model of a union (an algorithm by its name)


class ScenarioError(ValueError):
    """Bad input: one line per problem, each naming the field and the reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _parse_value(item: str, text: str) -> Any:
    try:
        return parse_yaml(text, f"--set {item[:60]!r}")
    except yaml.YAMLError:
        return text
    except ValueError as e:  # nested too deep, or aliases that multiply it
        raise ScenarioError([str(e)]) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` assignments (value parsed as YAML) to a raw scenario dict.

    Setting a ``kind`` (or ``dist``) replaces that piece's settings with the new kind's
    defaults, so ``--set network.topology.kind=complete`` works whatever the file had.
    Kinds are applied first, then everything else, in the order given. Setting
    ``algorithm.name`` keeps the file's algorithm settings that the new algorithm has too
    and drops those it has not (``--set algorithm.name=isolated`` on an MHD scenario).
    """
    raw = copy.deepcopy(raw)
    pairs = []
    for item in overrides:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ScenarioError(
                [f"--set {item!r}: expected KEY=VALUE, for example network.loss=0.1"]
            )
        pairs.append((key.strip().split("."), _parse_value(item, value)))
    pairs.sort(key=lambda kv: kv[0][-1] not in TAGS)
    for path, value in pairs:
        node: Any = raw
        for i, part in enumerate(path[:-1]):
            where = ".".join(path[: i + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ScenarioError([f"{where}: no list item {part!r}"])
                node = node[int(part)]
                continue
            child = node.get(part)
            if isinstance(child, str) and path[i + 1] in TAGS:
                child = {path[i + 1]: child}
            if child is None:
                child = {}
            if not isinstance(child, (dict, list)):
                raise ScenarioError([f"{where}: is {child!r}, not a section with settings"])
            node[part] = child
            node = child
        last = path[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ScenarioError([f"{'.'.join(path)}: no list item {last!r}"])
            node[int(last)] = value
        elif last in TAGS:
            node.clear()
            node[last] = value
        else:
            node[last] = value
    _keep_algorithm_settings(raw, {tuple(path) for path, _ in pairs})
    return raw


def _keep_algorithm_settings(raw: dict[str, Any], overridden: set[tuple[str, ...]]) -> None:
    """After ``--set algorithm.name=X``: drop the file's settings of other algorithms (those
    set on the command line stay, and are errors if X has no such setting)."""
    from ..learning.algorithms import ALGORITHMS

    algo = raw.get("algorithm")
    if ("algorithm", "name") not in overridden or not isinstance(algo, dict):
        return
    if algo.get("name") not in ALGORITHMS.names():
        return
    own = ALGORITHMS.params_model(algo["name"]).model_fields
    # a setting the algorithm fixes (fedmd's aggregation: mean) is its own, not the file's
    fixed = {k for k, f in own.items() if typing.get_origin(f.annotation) is typing.Literal
             and len(typing.get_args(f.annotation)) == 1}  # fmt: skip
    for key in list(algo):
        mine = key in own and key not in fixed
        if not mine and ("algorithm", key) not in overridden and owners(key):
            del algo[key]


def _walk(raw: Any, loc: tuple) -> tuple[str, ...]:
    """The user's path of a pydantic error: drop the union tags pydantic inserts into it."""
    out, node = [], raw
    for part in loc:
        if isinstance(node, (str, int, float)) and isinstance(part, str):
            node = {}  # shorthand (`ring`, `0.05`) expanded to a spec: this part is its tag
            continue
        tagged = part in (node.get(t) for t in TAGGED) if isinstance(node, dict) else False
        if isinstance(node, dict) and part not in node and (tagged or out == ["algorithm"]):
            continue  # `{kind: ring}` shows up as a path step 'ring' (an algorithm's name too,
            # also the default one a section without a name gets)
        out.append(str(part))
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "extra_forbidden": "unknown key",
    "missing": "required",
    "literal_error": "must be one of {expected}",
}


def _describe(err: dict[str, Any]) -> str:
    kind, ctx = err["type"], err.get("ctx", {})
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = ctx.get("expected_tags", "").replace("'", "")
        what = "algorithm" if "name" in str(ctx.get("discriminator")) else "kind"
        if kind.endswith("not_found"):
            return f"needs a {what}, one of {tags}"
        guess = did_you_mean(str(ctx.get("tag")), tags.split(", "))
        choose = f"(choose from {tags})" if guess else f"choose from {tags}"
        return f"unknown {what} {ctx.get('tag')!r}; {guess}{choose}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    ctx = {
        k: f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else v
        for k, v in ctx.items()
    }
    text = (
        _MESSAGES[kind].format(**ctx)
        if kind in _MESSAGES
        else err["msg"][0].lower() + err["msg"][1:]
    )
    if kind not in ("extra_forbidden", "missing"):
        text += f", got {_short(err['input'])}"
        if isinstance(err["input"], bool) and not kind.startswith("bool"):
            text += " (bare yes/no/on/off are YAML booleans: quote it)"
    return text


def _short(value: Any, width: int = 60) -> str:
    """``repr(value)`` cut to ``width`` characters: an error line stays one short line.

    >>> _short(list(range(100)), 20)
    '[0, 1, 2, 3, 4, 5, …'
    """
    short = reprlib.Repr()  # its keyword arguments are Python 3.12's
    short.maxlevel, short.maxlist, short.maxdict, short.maxstring = 3, 20, 10, width
    text = short.repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def validate(raw: Any, force: bool = False, base: Path | None = None) -> Scenario:
    """Validate raw scenario data; raise :class:`ScenarioError` listing every problem.
    ``force``: accept a scenario that looks too large for this machine (``budget.py``);
    ``base``: the scenario file's folder, where its relative paths are looked for first."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ScenarioError([f"scenario: expected a mapping of settings, got {type(raw).__name__}"])
    try:
        return Scenario.model_validate(raw, context={"force": force, "base": base})
    except pydantic.ValidationError as e:
        problems = []
        for err in e.errors(include_url=False):
            if err["type"] == "foreign_setting":  # its message names the whole key
                problems.append(err["msg"])
                continue
            where = _walk(raw, err["loc"])
            path, text = ".".join(where), _describe(err)
            if err["type"] == "extra_forbidden" and where:
                text += _suggest_key(raw, where)
            problems.append(f"{path}: {text}" if path else text)
        raise ScenarioError(problems) from None


def load(
    path: str | Path, overrides: list[str] = (), seed: int | None = None, force: bool = False
) -> Scenario:
    """Read a scenario file (or a bundled scenario's name), apply ``--set`` overrides and
    ``--seed``, and validate."""
    from . import bundled

    path = bundled.resolve(path)  # a bundled scenario's name works wherever a file does
    if not path.is_file():
        guess = did_you_mean(str(path).removesuffix(".yaml"), bundled.names())
        also = "; " + guess.rstrip(", ") if guess else " (mhd-sim scenarios lists the bundled ones)"
        raise ScenarioError([f"{path}: no such scenario file or bundled scenario{also}"])
    try:
        raw = read_yaml(path)
    except ValueError as e:  # too large, not UTF-8, nested too deep, aliases that multiply
        raise ScenarioError([str(e)]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ScenarioError(
            [f"{path}: not valid YAML{where}: {' '.join(str(getattr(e, 'problem', e)).split())}"]
        ) from None
    raw = raw if raw is not None else {}
    if not isinstance(raw, dict):
        raise ScenarioError([f"{path}: expected a mapping of settings at the top level"])
    raw = apply_overrides(raw, list(overrides))
    if seed is not None:
        raw["seed"] = seed
    return validate(raw, force, path.parent.resolve())


def short_keys(keys: list[str]) -> dict[str, str]:
    """``network.topology.kind`` → ``kind`` where that stays unambiguous, else the whole key."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: s if last.count(s) == 1 else k for k, s in zip(keys, last)}


def did_you_mean(word: str, choices: list[str]) -> str:
    """``"did you mean X? "`` for the closest of ``choices`` (empty when none is close).

    >>> did_you_mean("stragler", ["straggler", "churn"])
    'did you mean straggler? '
    """
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]}? " if close else ""


def _suggest_key(raw: Any, where: tuple[str, ...]) -> str:
    """For an unknown key: the closest key of the section it is in (found by the keys beside
    it), as ``; did you mean ...?``."""
    section: Any = raw
    for part in where[:-1]:
        section = section.get(part) if isinstance(section, dict) else None
    others = set(section) - {where[-1]} if isinstance(section, dict) else set()
    keys = max(_sections(), key=lambda fields: len(others & fields), default=set())
    guess = did_you_mean(where[-1], sorted(keys if others & keys else _all_keys()))
    return "; " + guess.rstrip() if guess else ""


@functools.cache
def _sections() -> list[frozenset[str]]:
    """The keys of every section the schema has (every model's fields)."""
    defs = Scenario.model_json_schema()["$defs"].values()
    return [frozenset(d.get("properties", {})) for d in defs]


@functools.cache
def _all_keys() -> frozenset[str]:
    return frozenset().union(*_sections(), Scenario.model_fields)
