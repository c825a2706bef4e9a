"""Named pieces (datasets, partitions, models, topologies, algorithms) found by name.

A scenario names a piece by ``kind`` and passes it keyword parameters. Each piece is a
function whose keyword-only parameters *are* its scenario settings: their type
hints and defaults become a pydantic model, so a new piece needs no schema code.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

import pydantic


class Settings(pydantic.BaseModel):
    """A piece's own settings model, for pieces that are classes (algorithms): strict, frozen,
    each field documented by the docstring under it."""

    model_config = pydantic.ConfigDict(
        extra="forbid", frozen=True, validate_default=True, use_attribute_docstrings=True
    )


@dataclass(frozen=True)
class Lazy:
    """An entry imported when a run first needs it (``module:attribute``); its settings model
    is known without the import, so a scenario is checked without loading torch."""

    target: str
    settings: type[pydantic.BaseModel]

    def load(self) -> Any:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


class Registry:
    """A name → callable table for one kind of piece.

    >>> shapes = Registry("shape")
    >>> @shapes.register("square")
    ... def square(n: int, *, side: float = 1.0) -> float:
    ...     return side * side
    >>> shapes.get("square")(0, side=2.0)
    4.0
    """

    def __init__(self, what: str, tag: str = "kind") -> None:
        self.what = what
        self.tag = tag
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def add(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._entries[name] = fn
            return fn

        return add

    def lazy(self, name: str, target: str, settings: type[pydantic.BaseModel]) -> None:
        """Register ``module:attribute`` under ``name``, imported when first asked for."""
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._entries[name] = Lazy(target, settings)

    def get(self, name: str) -> Callable[..., Any]:
        try:
            entry = self._entries[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.what} {name!r}; choose from {', '.join(self.names())}"
            ) from None
        if isinstance(entry, Lazy):
            entry = self._entries[name] = entry.load()
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def params_model(self, name: str) -> type[pydantic.BaseModel]:
        """A pydantic model of ``name``'s settings: its own ``Settings`` model where it has one
        (a class), else the tag plus its keyword-only parameters."""
        entry = self._entries.get(name) or self.get(name)
        own = entry.settings if isinstance(entry, Lazy) else getattr(entry, "Settings", None)
        if isinstance(own, type) and issubclass(own, pydantic.BaseModel):
            return own
        fn = entry
        fields: dict[str, Any] = {self.tag: (Literal[name], ...)}
        for p in inspect.signature(fn).parameters.values():
            if p.kind is p.KEYWORD_ONLY:  # only these annotations are read: the return
                # type may name what is imported lazily (torch's nn.Module)
                hint = p.annotation
                if isinstance(hint, str):
                    hint = eval(hint, fn.__globals__)
                default = ... if p.default is p.empty else p.default
                fields[p.name] = (hint, default)
        doc = (inspect.getdoc(fn) or "").split("\n")[0]
        return pydantic.create_model(
            f"{self.what}:{name}",
            __config__=pydantic.ConfigDict(extra="forbid", frozen=True),
            __doc__=doc,
            **fields,
        )

    def union(self) -> Any:
        """The tagged union of every entry's settings model, discriminated by the tag field."""
        models = tuple(self.params_model(n) for n in self.names())
        if len(models) == 1:
            return models[0]
        return Annotated[Union[models], pydantic.Field(discriminator=self.tag)]  # noqa: UP007


def settings(spec: pydantic.BaseModel, tag: str = "kind") -> dict[str, Any]:
    """The keyword arguments a spec passes to its registered piece (everything but its tag)."""
    return {k: getattr(spec, k) for k in type(spec).model_fields if k != tag}
