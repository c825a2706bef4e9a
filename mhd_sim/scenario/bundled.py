"""The scenarios shipped inside the package, found wherever mhd-sim is installed."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SCHEMA_FILE = "scenario.schema.json"  # beside the bundled scenarios, written by reference.py


def directory() -> Path:
    """The folder of bundled scenarios (package data, so wheels carry it)."""
    return Path(str(resources.files("mhd_sim") / "scenarios"))


def names() -> list[str]:
    """Bundled scenario names, e.g. ``straggler`` or ``teaching/hops``."""
    root = directory()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.glob("**/*.yaml"))


def about(name: str) -> str:
    """The first comment line of a bundled scenario: what it shows."""
    for line in (directory() / f"{name}.yaml").read_text().splitlines():
        if line.startswith("#") and "yaml-language-server" not in line:
            return line.lstrip("# ").strip()
        if line.strip() and not line.startswith("#"):
            break
    return ""


def resolve(name: str | Path) -> Path:
    """A path as given, or a bundled scenario's file when ``name`` is one of their names
    (``straggler`` → <package>/scenarios/straggler.yaml)."""
    path = Path(name)
    candidate = directory() / f"{name}.yaml"
    if not path.is_file() and candidate.is_file():
        return candidate
    return path
