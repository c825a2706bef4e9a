"""What the network did with every byte: counters per agent, the fate of every offered byte,
and the load each uplink carried.

A byte *offered* was handed to an uplink; it was *sent* once it had left the uplink. Every
offered byte ends in exactly one fate (``FATES``): a test checks that they sum to the bytes
offered on every bundled scenario.
"""

from __future__ import annotations

from array import array
from collections import Counter
from typing import Any

import numpy as np

from ..wording import id_ranges

# why a message was dropped (the ``reason`` of a ``drop`` event)
DROP_REASONS = (
    "loss",
    "queue_full",
    "superseded",
    "offline",
    "link_down",
    "sender_offline",
)
FATES = (
    "delivered",
    "lost",
    "queue_full",
    "superseded",
    "offline",
    "link_down",
    "sender_offline",
    "queued_at_end",
    "in_flight_at_end",
)
FATE_OF = {"loss": "lost"}  # a drop reason's fate, where the names differ


class Traffic:
    """Counters the network keeps as it goes (plain lists: cheaper per message than numpy)."""

    def __init__(self, agents: int) -> None:
        self.offered = [0] * agents  # messages handed to each uplink
        self.bytes_offered = [0] * agents
        self.sent = [0] * agents  # messages that left each uplink (as of Network.settle)
        self.bytes_sent = [0] * agents
        self.bytes_received = [0] * agents
        self.delivered = 0
        self.retransmitted = 0
        self.skipped = [0] * agents  # messages not made: the uplink was full (backpressure)
        self.dropped: Counter[str] = Counter()
        self.drops_from = [Counter() for _ in range(agents)]  # per sender, by reason
        self.fate_bytes: Counter[str] = Counter()
        self.pending_bytes = 0  # accepted by an uplink, fate not known yet
        self.busy = [0.0] * agents  # transmission time accepted on each uplink
        self.peak_queue = [0] * agents  # most bytes an uplink held at once
        # per uplink, each accepted message's wait from being handed to its transmission
        self.delays = [array("d") for _ in range(agents)]

    def drop(self, sender: int, reason: str, size: int) -> None:
        self.dropped[reason] += 1
        self.drops_from[sender][reason] += 1
        self.fate_bytes[FATE_OF.get(reason, reason)] += size

    def fates(self, queued: int) -> dict[str, int]:
        """Bytes per fate now, given the bytes still on uplinks (``queued``)."""
        out = {f: int(self.fate_bytes[f]) for f in FATES}
        out["delivered"] = sum(self.bytes_received)  # every received byte was delivered
        out["queued_at_end"] = int(queued)
        out["in_flight_at_end"] = int(self.pending_bytes - queued)
        return out

    def per_agent(self, i: int, now: float, busy: float, rate: float) -> dict[str, Any]:
        """Agent i's uplink, ``busy`` seconds of which were spent transmitting: utilization,
        offered load, queueing, drops."""
        delays = np.asarray(self.delays[i])
        p50, p90 = np.percentile(delays, [50, 90]).tolist() if len(delays) else (None, None)
        return {
            "utilization": busy / now if now > 0 else 0.0,
            "offered_load": self.bytes_offered[i] / (rate * now) if now > 0 else 0.0,
            "peak_queue_bytes": int(self.peak_queue[i]),
            "queueing_delay_p50": p50,
            "queueing_delay_p90": p90,
            "drops_by_reason": {r: int(c) for r, c in sorted(self.drops_from[i].items())},
        }


def overload_warnings(agents: list[dict[str, Any]], offered: list[int], most: int = 3) -> list[str]:
    """One line per uplink offered more than it can carry, the worst first (at most ``most``,
    then a count of the rest): what a user needs to know before trusting the figures."""
    over = sorted(
        (a for a in agents if a["uplink"]["offered_load"] > 1.0),
        key=lambda a: -a["uplink"]["offered_load"],
    )
    lines = []
    for a in over[:most]:
        up, i = a["uplink"], a["agent"]
        drops = up["drops_by_reason"]
        dropped = sum(drops.values())
        share = dropped / offered[i] if offered[i] else 0.0
        worst = max(drops, key=drops.get) if drops else None
        line = (
            f"agent {i}'s uplink was busy {up['utilization']:.0%} of the time; "
            f"offered {up['offered_load']:.1f}× its capacity"
        )
        if dropped:
            line += f"; {share:.0%} of its messages dropped ({worst})"
        if up["queueing_delay_p90"] is not None:
            line += f"; queueing delay p90 {up['queueing_delay_p90']:.2g} s"
        lines.append(line)
    if len(over) > most:
        lines.append(f"... and {len(over) - most} more agents whose uplinks were overloaded")
    return lines


def burst_warnings(agents: list[dict[str, Any]], offered: list[int]) -> list[str]:
    """Drops that come from bursts, not load: uplinks offered less than they carry whose
    buffers still dropped messages (a share to every peer at once is larger than the buffer,
    and the peers last in line lose every time), and agents that heard nobody at all."""
    lines = []
    bursty = [
        a for a in agents
        if a["uplink"]["offered_load"] <= 1.0
        and a["uplink"]["drops_by_reason"].get("queue_full", 0) > 0.05 * offered[a["agent"]]
    ]  # fmt: skip
    if bursty:
        share = {a["agent"]: a["uplink"]["drops_by_reason"]["queue_full"] / offered[a["agent"]]
                 for a in bursty}  # fmt: skip
        worst = max(share, key=share.get)
        load = max(a["uplink"]["offered_load"] for a in bursty)
        lines.append(
            f"{len(bursty)} of {len(agents)} uplinks dropped messages at a full buffer though "
            f"offered at most {load:.0%} of what they carry (agent {worst}: {share[worst]:.0%} "
            "of its messages): a share to every peer at once is larger than the buffer; raise "
            "network.queue.limit, or set network.fanout or network.backpressure"
        )
    deaf = [a["agent"] for a in agents if a["bytes_received"] == 0]
    if deaf and sum(offered):
        lines.append(
            f"{len(deaf)} of {len(agents)} agents received no message in the whole run "
            f"(agents {id_ranges(deaf)}): they learnt from nobody"
        )
    return lines
