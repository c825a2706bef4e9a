"""The scenario layer: schema, defaults, overrides, validation errors and bundled scenarios."""

from __future__ import annotations

from .loading import ScenarioError, apply_overrides, load, validate
from .schema import Scenario

__all__ = ["Scenario", "ScenarioError", "apply_overrides", "load", "validate"]
