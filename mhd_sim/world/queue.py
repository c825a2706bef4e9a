"""One buffer in front of a link: an uplink's or a downlink's, as ns-3's queue discs are.

Messages leave a queue one after another, first in first out, at the link's rate. Times
are kept in closed form: when a message is accepted, the queue knows when it starts and
when it leaves, so no process runs per queue. The buffer holds the messages that have not
left yet (the one being transmitted included) and applies one named policy to a newcomer:

- ``drop_tail``: a message that does not fit in ``limit`` bytes is dropped (``queue_full``);
  an empty queue takes any message, however large;
- ``replace``: a message to a peer that already has one waiting (not started yet, same
  size) takes that one's slot, and the old one is ``superseded``; otherwise as drop_tail;
- ``unbounded``: every message is taken.

>>> q = Queue("drop_tail", limit=100)
>>> q.offer(Message(0, 1, 80, 0.0, None), peer=1, now=0.0).drop is None
True
>>> q.enqueue(Message(0, 1, 80, 0.0, None), peer=1, start=0.0, duration=1.0).leaves
1.0
>>> q.offer(Message(0, 1, 30, 0.0, None), peer=1, now=0.5).drop  # 80 + 30 do not fit
'queue_full'
>>> q.settle(1.0); q.held_bytes  # the first one has left
0
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

POLICIES = ("drop_tail", "replace", "unbounded")
# Linux's net.core.wmem_default, a UDP socket's send buffer: the one default every layer uses
DEFAULT_LIMIT = 212_992


@dataclass(slots=True)
class Message:
    sender: int
    receiver: int
    size: int  # bytes on the wire
    produced: float  # when the predictions inside were computed
    payload: Any
    offered_at: float = float("nan")  # when it was handed to the uplink
    tries: int = 1  # 2 and more: a retransmission
    resend_at: float = math.inf  # reliable transport: when the sender resends it, unacknowledged


@dataclass(eq=False, slots=True)
class Transmission:
    """A message in a queue: when it starts and leaves, the latency drawn for it, and whether
    it was dropped before leaving (its sender went offline)."""

    msg: Message
    starts: float
    leaves: float
    delay: float = 0.0
    dropped: bool = False


class Verdict(NamedTuple):
    """What a queue does with a message: ``drop`` is None (take it) or the drop's reason;
    for ``superseded``, ``slot`` is the transmission it took over and ``old`` the message
    that held it."""

    drop: str | None
    slot: Transmission | None = None
    old: Message | None = None


ACCEPT, FULL = Verdict(None), Verdict("queue_full")


class Queue:
    """A FIFO buffer of transmissions with a drop policy (see the module docstring)."""

    __slots__ = ("policy", "_bounded", "_replace", "limit", "held", "held_bytes", "free", "waiting")

    def __init__(self, policy: str = "drop_tail", limit: int = DEFAULT_LIMIT) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown queue policy {policy!r}; choose from {', '.join(POLICIES)}")
        self.policy, self.limit = policy, limit
        # the policy's two questions, answered once: offer() runs for every message
        self._bounded, self._replace = policy != "unbounded", policy == "replace"
        self.held: deque[Transmission] = deque()  # accepted, not left yet, in order
        self.held_bytes = 0
        self.free = 0.0  # when the last accepted message leaves
        self.waiting: dict[int, Transmission] = {}  # replace: the latest message per peer

    def __len__(self) -> int:
        """Messages accepted that have not left yet (as of the last ``settle``)."""
        return len(self.held)

    def settle(self, now: float) -> None:
        """Take the messages that have left by ``now`` off the queue."""
        held = self.held
        while held and held[0].leaves <= now:
            self.held_bytes -= held.popleft().msg.size

    def offer(self, msg: Message, peer: int, now: float) -> Verdict:
        """The policy's verdict on ``msg`` (after ``settle(now)``): ``ACCEPT`` (then
        ``enqueue`` it), ``FULL``, or ``superseded``: ``msg`` has taken the slot of the older
        message to ``peer`` that is still waiting, and that one is to be dropped."""
        if not self.held or not self._bounded:
            return ACCEPT
        if self._replace:
            t = self.waiting.get(peer)
            if t is not None and t.starts > now and t.msg.size == msg.size:
                old, t.msg = t.msg, msg
                return Verdict("superseded", t, old)
        if self.held_bytes + msg.size > self.limit:
            return FULL
        return ACCEPT

    def enqueue(self, msg: Message, peer: int, start: float, duration: float) -> Transmission:
        """Accept ``msg``: it starts at ``start`` (the caller's ``max(now, free)``) and leaves
        ``duration`` later."""
        t = Transmission(msg, start, start + duration)
        self.free = t.leaves
        self.held.append(t)
        self.held_bytes += msg.size
        if self._replace:
            self.waiting[peer] = t
        return t

    def clear(self, now: float) -> list[Transmission]:
        """Drop everything that has not left by ``now`` (its sender went offline); return it."""
        self.settle(now)
        dropped = list(self.held)
        for t in dropped:
            t.dropped = True
        self.held.clear()
        self.waiting.clear()
        self.held_bytes = 0
        self.free = now
        return dropped
