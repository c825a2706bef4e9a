"""Field types every section of the scenario schema shares, and how a registered piece
(named by ``kind``, or ``dist`` for distributions) becomes a field."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from ..registry import Registry
from ..seeds import DISTRIBUTIONS

TAGS = ("kind", "dist")  # the fields that name a registered piece


def piece(registry: Registry, number: str | None = None) -> Any:
    """A registry's settings union. ``dataset: mnist1d`` stands for ``{kind: mnist1d}``, and
    with ``number`` set, ``latency: 0.05`` for ``{dist: <number>, value: 0.05}``."""

    def expand(v: Any) -> Any:
        if number and isinstance(v, str):
            try:
                v = float(v)  # YAML reads `3.0e8` (no sign in the exponent) as a string
            except ValueError:
                pass
        if isinstance(v, str):
            return {registry.tag: v}
        if number and isinstance(v, (int, float)) and not isinstance(v, bool):
            return {registry.tag: number, "value": v}
        return v

    return Annotated[registry.union(), pydantic.BeforeValidator(expand)]


Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=1)]
Rate = Annotated[float, Field(ge=1)]  # bytes/s: below one byte a second nothing moves
Sigma = Annotated[float, Field(ge=0, le=2)]  # a lognormal's sigma: wider is a clock that stops
Agent = Annotated[int, Field(ge=0)]
# a number, or {dist: lognormal, median: ...}
Distribution = piece(DISTRIBUTIONS, number="constant")


class Strict(BaseModel):
    # a field's docstring is its description: in the JSON Schema and the scenario reference
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, use_attribute_docstrings=True
    )
