"""The scenario layer: schema, defaults, overrides, validation errors and bundled scenarios."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loading import ScenarioError, apply_overrides, load, validate
    from .schema import Scenario

__all__ = ["Scenario", "ScenarioError", "apply_overrides", "load", "validate"]


def __getattr__(name: str) -> Any:
    """Imported when first used: ``bundled`` (the scenario names) needs none of the schema."""
    if name not in __all__:
        raise AttributeError(f"module 'mhd_sim.scenario' has no attribute {name!r}")
    home = ".schema" if name == "Scenario" else ".loading"
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value
