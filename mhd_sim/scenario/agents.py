"""The ``agents`` section: how many, their models and speeds, named groups, and churn."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic
from pydantic import Field

from ..learning.models.backbones import BACKBONES
from ..seeds import sampler, stream
from ..untrusted import UserPath
from ..world.traces import offline_spans, read_availability, read_steps
from .fields import Agent, Count, Distribution, NonNegative, Positive, Rate, Sigma, Strict, piece


class MarkovChurn(Strict):
    """Two-state Markov churn: exponential up and down times with these means (seconds).

    Long-run fraction of time online: up_mean / (up_mean + down_mean).
    """

    kind: Literal["markov"] = "markov"
    up_mean: Positive
    """Mean time online, seconds (exponential)."""
    down_mean: Positive
    """Mean time offline, seconds (exponential)."""
    agents: list[Agent] | None = None
    """Which agents churn (default: all)."""


class ScheduledChurn(Strict):
    """Explicit offline intervals per agent: ``{3: [[100, 160]], 5: [[0, 30], [200, 260]]}``."""

    kind: Literal["schedule"]
    offline: dict[Agent, list[tuple[NonNegative, NonNegative]]]
    """Per agent, its offline intervals `[start, end]` in seconds."""

    @pydantic.field_validator("offline")
    @classmethod
    def _intervals(
        cls, v: dict[int, list[tuple[float, float]]]
    ) -> dict[int, list[tuple[float, float]]]:
        for agent, spans in v.items():
            ordered = sorted(spans)
            for (a, b), nxt in zip(ordered, ordered[1:] + [(float("inf"), 0)]):
                if not a < b:
                    raise ValueError(
                        f"agent {agent}: offline interval [{a:g}, {b:g}] must end after it starts"
                    )
                if b > nxt[0]:
                    raise ValueError(f"agent {agent}: offline intervals overlap at t={nxt[0]:g}")
        return {a: sorted(spans) for a, spans in v.items()}

    def spans(self, duration: float) -> dict[int, list[tuple[float, float]]]:
        """Per agent named, its offline spans (``duration``: the run's, which a schedule
        does not need)."""
        return self.offline

    @property
    def agents(self) -> list[int]:
        return list(self.offline)


class TraceChurn(Strict):
    """Availability from a CSV trace: rows `agent,start,end`, the intervals an agent is online.

    Agents the file names are offline outside their intervals (seconds); agents it does not
    name are always online. Details and the file format: ``world/traces.py``."""

    kind: Literal["trace"]
    path: UserPath
    """The CSV file (a relative path: beside the scenario file, else the working directory)."""
    period: Positive | None = None
    """How long the trace lasts, seconds (default: its last `end`)."""
    repeat: bool = False
    """Start the trace again every period; without it, every agent is online once it is over."""
    offset: dict[Agent, NonNegative] | None = None
    """Per agent, seconds by which its trace starts later (wrapped around the period with
    `repeat`; online until it begins without)."""
    _online: dict[int, list[tuple[float, float]]] = pydantic.PrivateAttr(default_factory=dict)
    _period: float = pydantic.PrivateAttr(default=1.0)

    @pydantic.model_validator(mode="after")
    def _read(self) -> TraceChurn:
        self._online = read_availability(self.path)
        last = max((spans[-1][1] for spans in self._online.values()), default=0.0)
        if self.period is not None and last > self.period:
            raise ValueError(f"{self.path}: an interval ends at {last:g}, after the period")
        self._period = self.period or last or 1.0
        return self

    def spans(self, duration: float) -> dict[int, list[tuple[float, float]]]:
        """Per agent the trace names, its offline spans in a run of ``duration`` seconds."""
        shift = self.offset or {}
        return {
            a: offline_spans(spans, self._period, duration, self.repeat, shift.get(a, 0.0))
            for a, spans in self._online.items()
        }

    @property
    def agents(self) -> list[int]:
        return sorted({*self._online, *(self.offset or {})})


def _churn_kind(v: Any) -> Any:
    return {"kind": "markov", **v} if isinstance(v, dict) and "kind" not in v else v


Churn = Annotated[
    Annotated[MarkovChurn | ScheduledChurn | TraceChurn, Field(discriminator="kind")],
    pydantic.BeforeValidator(_churn_kind),
]


class Group(Strict):
    """Overrides for a named subset of agents (a straggler is just a slow group)."""

    name: str
    """The group's name, shown in summary.json and plots."""
    agents: list[Agent]
    """The agents in the group (ids from 0)."""
    speed: Distribution | None = None
    """This group's compute speed, FLOP/s (or a distribution)."""
    jitter: Sigma | None = None
    """This group's compute-time jitter (lognormal sigma)."""
    model: piece(BACKBONES) | None = None
    """This group's backbone."""
    bandwidth: Rate | None = None
    """This group's uplink, bytes/s."""
    downlink: Rate | None = None
    """This group's downlink, bytes/s."""


class AgentSettings(Strict):
    """One agent's resolved settings, after its group overrides and speed draw."""

    group: str
    speed: float
    jitter: float
    model: Any
    bandwidth: float | None  # uplink; None = network.bandwidth
    downlink: float | None  # None = network.downlink


class AgentsSpec(Strict):
    count: Count = 8
    """Number of agents."""
    model: piece(BACKBONES) = "mlp"
    """Every agent's backbone, unless its group says otherwise."""
    speed: Distribution = 2.0e9
    """Compute speed in FLOP/s, or a distribution each agent draws its speed from."""
    jitter: Sigma = 0.1
    """Sigma of the mean-one lognormal factor on every step's duration (at most 2)."""
    groups: list[Group] = []
    """Overrides for named subsets of agents (a straggler is a slow group)."""
    speed_trace: UserPath | None = None
    """A CSV `agent,time,flops`: from each time on, that agent's FLOP/s (until its next row;
    `speed` before its first and for agents it does not name)."""
    _speeds: dict[int, tuple[list[float], list[float]]] = pydantic.PrivateAttr(default_factory=dict)
    churn: Churn | None = None
    """Agents going offline: `{up_mean, down_mean}` (Markov), `{kind: schedule, offline: ...}`
    or `{kind: trace, path: ...}` (an availability trace)."""

    @pydantic.model_validator(mode="after")
    def _groups_exist(self) -> AgentsSpec:
        seen: dict[int, str] = {}
        for g in self.groups:
            for a in g.agents:
                if a >= self.count:
                    raise ValueError(
                        f"group {g.name!r} names agent {a}, but agents are 0..{self.count - 1}"
                    )
                if a in seen:
                    raise ValueError(f"agent {a} is in groups {seen[a]!r} and {g.name!r}")
                seen[a] = g.name
        churn = self.churn
        named = (churn.agents or []) if churn else []
        if self.speed_trace is not None:
            self._speeds = read_steps(self.speed_trace, "speed trace", "flops", "FLOP/s")
            if self._speeds and max(self._speeds) >= self.count:
                raise ValueError(
                    f"{self.speed_trace}: the speed trace names agent {max(self._speeds)}, "
                    f"but agents are 0..{self.count - 1}"
                )
        if any(a >= self.count for a in named):
            where = f"{churn.path}: the trace" if isinstance(churn, TraceChurn) else "churn"
            raise ValueError(
                f"{where} names agent {max(named)}, but agents are 0..{self.count - 1}"
            )
        return self

    @property
    def speed_changes(self) -> dict[int, tuple[list[float], list[float]]]:
        """Per agent the speed trace names: the times its speed changes, the FLOP/s after."""
        return self._speeds

    def per_agent(self, seed: int) -> list[AgentSettings]:
        """Every agent's settings; speeds drawn from each agent's own stream."""
        group = {a: g for g in self.groups for a in g.agents}
        out = []
        for i in range(self.count):
            g = group.get(i)

            def pick(field: str, g: Group | None = g) -> Any:
                value = getattr(g, field) if g is not None else None
                return value if value is not None else getattr(self, field, None)

            speed = sampler(pick("speed"))(stream(seed, "speed", i))
            if not speed > 0:
                raise ValueError(
                    f"agent {i} drew a compute speed of {speed:g} FLOP/s; speeds must be > 0"
                )
            out.append(
                AgentSettings(
                    group=g.name if g else "default",
                    speed=speed,
                    jitter=pick("jitter"),
                    model=pick("model"),
                    bandwidth=pick("bandwidth"),
                    downlink=pick("downlink"),
                )
            )
        return out
