"""The ``network`` section: topology, link properties and overrides, changes over time."""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic
from pydantic import Field

from ..untrusted import UserPath
from ..world.queue import DEFAULT_LIMIT, POLICIES
from ..world.topology import TOPOLOGIES
from ..world.traces import Changes, read_latency_matrix, read_steps
from .fields import Agent, Count, Distribution, NonNegative, Rate, Strict, piece

Loss = Annotated[float, Field(ge=0, lt=1)]
Pair = tuple[Agent, Agent]


class LinkSet(Strict):
    """A set of links: ``links: [[a, b], ...]``, or every pair ``between: [[A...], [B...]]``."""

    links: list[Pair] = []
    """Explicit links `[[a, b], ...]`."""
    between: tuple[list[Agent], list[Agent]] | None = None
    """Every link between two groups of agents: `[[A...], [B...]]`."""

    def pairs(self) -> list[tuple[int, int]]:
        out = {tuple(sorted(p)) for p in self.links}
        if self.between is not None:
            out |= {
                tuple(sorted((a, b))) for a in self.between[0] for b in self.between[1] if a != b
            }
        return sorted(out)

    def agents(self) -> set[int]:
        return {a for p in self.links for a in p} | {
            a for side in (self.between or ()) for a in side
        }


class LinkOverride(LinkSet):
    """Own latency, bandwidth cap or loss for some links (a slow wide-area hop between islands)."""

    latency: Distribution | None = None
    """These links' latency (seconds, or a distribution)."""
    bandwidth: Rate | None = None
    """A cap on these links' sending rate, bytes/s."""
    loss: Loss | None = None
    """These links' loss probability per message."""


class LinkFailure(LinkSet):
    """Links down from ``at`` until ``until`` (never back if null)."""

    kind: Literal["link_down"]
    at: NonNegative
    """When the links go down, seconds."""
    until: NonNegative | None = None
    """When they come back (never if null)."""


class Partition(Strict):
    """Agents split into groups that cannot reach each other from ``at`` until ``until``.

    Agents not listed form one more group.
    """

    kind: Literal["partition"]
    at: NonNegative
    """When the partition starts, seconds."""
    until: NonNegative | None = None
    """When it heals (never if null)."""
    groups: list[list[Agent]]
    """The groups that cannot reach each other; unlisted agents form one more."""

    def labels(self, agents: int) -> list[int]:
        label = [len(self.groups)] * agents
        for k, members in enumerate(self.groups):
            for a in members:
                label[a] = k
        return label

    def agents(self) -> set[int]:
        return {a for g in self.groups for a in g}


class Switch(Strict):
    """The whole topology replaced at ``at``."""

    kind: Literal["switch"]
    at: NonNegative
    """When the topology is replaced, seconds."""
    topology: piece(TOPOLOGIES)
    """The new topology."""

    def agents(self) -> set[int]:
        return set()


NetworkEvent = Annotated[LinkFailure | Partition | Switch, Field(discriminator="kind")]


class QueueSpec(Strict):
    """The buffer of every uplink (and downlink, where one is set), as a host's socket has."""

    policy: Literal[POLICIES] = "drop_tail"
    """drop_tail: a message that does not fit is dropped; replace: a newer message to the same
    receiver takes the place of one still waiting; unbounded: no limit."""
    limit: Annotated[int, Field(ge=1)] = DEFAULT_LIMIT
    """Bytes a buffer holds, the message being transmitted included (default: Linux's
    net.core.wmem_default, a UDP socket's send buffer). An empty buffer takes any message."""


class TransportSpec(Strict):
    """What happens to a message the link loses."""

    kind: Literal["datagram", "reliable"] = "datagram"
    """datagram: it is gone; reliable: it is sent again when its retransmission timeout
    expires."""
    max_retries: Annotated[int, Field(ge=0, le=64)] = 6
    """reliable: how many times a message is sent again before it is given up."""
    min_rto: Annotated[float, Field(ge=1e-6)] = 0.2
    """reliable: the shortest retransmission timeout, seconds."""


def _transport_kind(v: object) -> object:
    return {"kind": v} if isinstance(v, str) else v


Transport = Annotated[TransportSpec, pydantic.BeforeValidator(_transport_kind)]


class NetworkSpec(Strict):
    topology: piece(TOPOLOGIES) = "ring"
    """The graph of who can send to whom."""
    latency: Distribution = 0.05
    """Seconds added after transmission: a number or a distribution."""
    bandwidth: Rate = 1.0e6
    """Each agent's uplink, bytes/s."""
    downlink: Rate | None = None
    """Each agent's downlink, bytes/s (null: no downlink queue)."""
    loss: Loss = 0.0
    """Probability that a link loses a message."""
    fanout: Count | None = None
    """Each share goes to this many neighbours drawn at random (null: all)."""
    queue: QueueSpec = QueueSpec()
    """The buffers of uplinks and downlinks."""
    transport: Transport = TransportSpec()
    """datagram or reliable (or `{kind: reliable, max_retries, min_rto}`)."""
    backpressure: Count | None = None
    """An agent whose uplink still holds this many messages skips making the next one
    (no forward pass, no bytes; counted as skipped). Null: it always sends."""
    links: list[LinkOverride] = []
    """Per-link overrides of latency, bandwidth cap or loss."""
    schedule: list[NetworkEvent] = []
    """Changes over time: link failures, partitions that heal, topology switches."""
    bandwidth_trace: UserPath | None = None
    """A CSV `agent,time,bandwidth`: from each time on, that agent's uplink in bytes/s (until
    its next row; its `bandwidth` before its first row and for agents it does not name). A
    message being sent when the rate changes sends the rest of its bytes at the new rate."""
    link_bandwidth_trace: UserPath | None = None
    """A CSV `src,dst,time,bandwidth`: from each time on, a cap in bytes/s on what src sends
    to dst (until the pair's next row): a message is sent at the smaller of its uplink's rate
    and this one."""
    latency_trace: UserPath | None = None
    """A CSV `src,dst,time,latency`: from each time on, the seconds a message that leaves
    src's uplink for dst takes (until the pair's next row; the other latencies before)."""
    latency_matrix: UserPath | None = None
    """An n×n matrix of seconds (a CSV without a header, or .npy): row i, column j is the
    latency from agent i to agent j; it replaces `latency` (a `links` override still wins)."""
    _bandwidths: Changes = pydantic.PrivateAttr(default_factory=dict)
    _latencies: Changes = pydantic.PrivateAttr(default_factory=dict)
    _link_bandwidths: Changes = pydantic.PrivateAttr(default_factory=dict)
    _matrix: list[list[float]] | None = pydantic.PrivateAttr(default=None)

    @pydantic.model_validator(mode="after")
    def _windows(self) -> NetworkSpec:
        for k, ev in enumerate(self.schedule):
            until = getattr(ev, "until", None)
            if until is not None and until <= ev.at:
                raise ValueError(f"schedule.{k}: until ({until:g}) must be after at ({ev.at:g})")
        if self.bandwidth_trace is not None:
            self._bandwidths = read_steps(
                self.bandwidth_trace, "bandwidth trace", "bandwidth", "bytes/s"
            )
        if self.link_bandwidth_trace is not None:
            self._link_bandwidths = read_steps(
                self.link_bandwidth_trace, "link bandwidth trace", "bandwidth", "bytes/s",
                ids=("src", "dst"),
            )  # fmt: skip
        if self.latency_trace is not None:
            self._latencies = read_steps(
                self.latency_trace, "latency trace", "latency", None, ids=("src", "dst")
            )
        return self

    def read_traces(self, agents: int) -> None:
        """Check the traces against the number of agents (which this section does not know)
        and read the latency matrix, whose shape depends on it."""
        for path, named in (
            (self.bandwidth_trace, set(self._bandwidths)),
            (self.latency_trace, {a for pair in self._latencies for a in pair}),
            (self.link_bandwidth_trace, {a for pair in self._link_bandwidths for a in pair}),
        ):
            if named and max(named) >= agents:
                raise ValueError(
                    f"{path}: the trace names agent {max(named)}, but agents are 0..{agents - 1}"
                )
        if self.latency_matrix is not None:
            self._matrix = read_latency_matrix(self.latency_matrix, agents)

    @property
    def uplink_changes(self) -> Changes:
        """Per agent the bandwidth trace names: when its uplink's rate changes, bytes/s after."""
        return self._bandwidths

    @property
    def link_bandwidth_changes(self) -> Changes:
        """Per ``(src, dst)`` the link bandwidth trace names: its cap's changes, bytes/s."""
        return self._link_bandwidths

    @property
    def latency_changes(self) -> Changes:
        """Per ``(src, dst)`` the latency trace names: when its latency changes, seconds after."""
        return self._latencies

    @property
    def matrix(self) -> list[list[float]] | None:
        """The latency matrix, seconds from row to column (after ``read_traces``)."""
        return self._matrix
