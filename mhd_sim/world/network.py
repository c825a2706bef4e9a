"""The network: a FIFO uplink per agent with a finite buffer, lossy delayed links, optional
downlinks, and a datagram or reliable transport.

A message handed at time s to an uplink that frees at time q starts at ``max(s, q)``,
leaves at ``u = max(s, q) + bytes / min(uplink, link cap)``, reaches the receiver at
``u + latency`` and, with a downlink queue that frees at d, is delivered at
``max(u + latency, d) + bytes / downlink``. Queues are kept in closed form (when each
message starts and leaves is known when it is accepted), so there is no process per queue.

An uplink's buffer holds the messages that have not left it yet (the one being transmitted
included). With ``drop_tail`` a message that does not fit is dropped (``queue_full``); an
empty uplink always takes one message, however large. With ``replace`` a message to a
receiver that already has one waiting (not yet started, same size) takes its place; the old
one is ``superseded``. A downlink's buffer works the same way, keyed by sender.

A message is also dropped, with a reason, if the link loses it (``loss``), if its sender
goes offline before it has left the uplink (``sender_offline``), if its link is down at
arrival or went down while it was in flight (``link_down``), or if the receiver is offline
when it arrives or went offline while it was in flight (``offline``). With the reliable
transport a lost message is handed to the sender's uplink again when its retransmission
timeout expires. Each link draws its latencies and losses from its own random stream.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import simpy

from ..seeds import stream
from .links import Links
from .traffic import Traffic


@dataclass(slots=True)
class Message:
    sender: int
    receiver: int
    size: int  # bytes on the wire
    produced: float  # when the predictions inside were computed
    payload: Any
    sent: float = float("nan")  # when it was handed to the uplink
    tries: int = 1  # 2 and more: a retransmission


@dataclass(frozen=True)
class Link:
    """One directed link's properties."""

    latency: Callable[[np.random.Generator], float]
    loss: float = 0.0
    bandwidth: float = math.inf  # a cap below the sender's uplink (a thin wide-area hop)


@dataclass(frozen=True)
class Queueing:
    """The buffer of every uplink and downlink, and the transport."""

    policy: str = "drop_tail"  # drop_tail | replace | unbounded
    limit: int = 262_144  # bytes
    reliable: bool = False
    max_retries: int = 6
    min_rto: float = 0.2  # seconds


@dataclass(eq=False, slots=True)
class _Transmission:
    """A message in a queue: when it starts and leaves, the latency drawn for it, and whether
    it was dropped before leaving (its sender went offline)."""

    msg: Message
    starts: float
    leaves: float
    delay: float = 0.0
    dropped: bool = False


Log = Callable[..., None]  # RunDirectory.event(time, event, agent, peer, bytes, ..., reason)


class Network:
    """Uplink and downlink queues and lossy, delayed links; counts every byte and every drop."""

    def __init__(
        self,
        env: simpy.Environment,
        links: Links,
        *,
        uplink: list[float],
        downlink: list[float | None],
        link: Callable[[int, int], Link],
        seed: int,
        online: Callable[[int], bool],
        deliver: Callable[[Message], None],
        log: Log,
        queueing: Queueing = Queueing(),
    ) -> None:
        agents = len(uplink)
        self.env, self.links, self.seed = env, links, seed
        self.uplink, self.downlink, self.link = uplink, downlink, link
        self.online, self.deliver, self.log = online, deliver, log
        self.q = queueing
        # per uplink: whether its buffer is bounded (a server's is not: see unbounded_uplink)
        self.bounded = [queueing.policy != "unbounded"] * agents
        self.replace = queueing.policy == "replace"
        self.traffic = Traffic(agents)
        self.offline_at = [-math.inf] * agents  # when each agent last went offline
        self.uplink_free = [0.0] * agents
        self.on_uplink: list[deque[_Transmission]] = [deque() for _ in range(agents)]
        self.queued = [0] * agents  # bytes on each uplink that have not left it
        # what each uplink refused (a full buffer, or a replacement: it takes an existing slot)
        # and what it lost to its sender going offline; the rest of what it was offered has
        # left it or is still on it
        self.refused, self.refused_bytes = [0] * agents, [0] * agents
        self.gone, self.gone_bytes = [0] * agents, [0] * agents
        self.waiting: list[dict[int, _Transmission]] = [{} for _ in range(agents)]  # replace
        self.downlink_free = [0.0] * agents
        self.on_downlink: list[deque[_Transmission]] = [deque() for _ in range(agents)]
        self.down_queued = [0] * agents
        self.down_waiting: list[dict[int, _Transmission]] = [{} for _ in range(agents)]
        self.routes: dict[tuple[int, int], tuple[float, Link, np.random.Generator]] = {}

    # --- uplinks ------------------------------------------------------------------------

    def send(self, msg: Message) -> None:
        """Hand a message to its sender's uplink (the ``send`` event). If its buffer takes it,
        it leaves after the messages ahead of it, ``bytes / min(uplink, link cap)`` after it
        starts; its latency and fate are drawn now from the link's stream."""
        now, i, j, size = self.env.now, msg.sender, msg.receiver, msg.size
        msg.sent = now
        tr = self.traffic
        tr.offered[i] += 1
        tr.bytes_offered[i] += size
        if msg.tries == 1:
            self.log(now, "send", i, j, size)
        else:
            self.log(now, "send", i, j, size, reason="retransmit")
        pending = self.on_uplink[i]
        if pending:
            if pending[0].leaves <= now:
                self._settle(i, now)
            if pending and self.bounded[i] and self._full(i, msg, now):
                return
        route = self.routes.get((i, j))
        if route is None:
            route = self._route(i, j)
        rate, link, rng = route
        free = self.uplink_free[i]
        start = free if free > now else now
        duration = size / rate
        delay = link.latency(rng)
        lost = rng.random() < link.loss
        t = _Transmission(msg, start, start + duration, delay)
        self.uplink_free[i] = t.leaves
        pending.append(t)
        queued = self.queued[i] = self.queued[i] + size
        if queued > tr.peak_queue[i]:
            tr.peak_queue[i] = queued
        tr.busy[i] += duration
        tr.delays[i].append(start - now)
        tr.pending_bytes += size
        if self.replace:
            self.waiting[i][j] = t
        self.env.timeout(t.leaves + delay - now).callbacks.append(lambda _: self._arrive(t, lost))

    def _full(self, i: int, msg: Message, now: float) -> bool:
        """Apply the buffer's policy to a message for a busy uplink: True if it was dropped or
        took the place of a waiting one (then it needs no slot of its own)."""
        j, size = msg.receiver, msg.size
        if self.replace:
            t = self.waiting[i].get(j)
            if t is not None and t.starts > now and t.msg.size == size:
                old, t.msg = t.msg, msg
                self.refused[i] += 1
                self.refused_bytes[i] += size
                self.traffic.delays[i].append(t.starts - now)
                self.traffic.pending_bytes += size
                self._drop(old, "superseded", at=i, peer=j)
                return True
        if self.queued[i] + size > self.q.limit:
            self.refused[i] += 1
            self.refused_bytes[i] += size
            self._drop(msg, "queue_full", at=i, peer=j, accepted=False)
            return True
        return False

    def _settle(self, i: int, now: float) -> None:
        """Take the messages that have left agent i's uplink by ``now`` off it."""
        pending = self.on_uplink[i]
        while pending and pending[0].leaves <= now:
            self.queued[i] -= pending.popleft().msg.size

    def settle(self) -> None:
        """Bring every uplink up to now, and the traffic's ``sent`` and ``bytes_sent`` with it:
        what an uplink accepted, less what is still on it and what its offline sender lost."""
        now, tr = self.env.now, self.traffic
        for i, pending in enumerate(self.on_uplink):
            if pending and pending[0].leaves <= now:
                self._settle(i, now)
            tr.sent[i] = tr.offered[i] - self.refused[i] - self.gone[i] - len(pending)
            tr.bytes_sent[i] = (
                tr.bytes_offered[i] - self.refused_bytes[i] - self.gone_bytes[i] - self.queued[i]
            )

    def holding(self, agent: int) -> int:
        """Messages on the agent's uplink that have not left it yet."""
        self._settle(agent, self.env.now)
        return len(self.on_uplink[agent])

    def busy(self) -> np.ndarray:
        """Seconds each uplink has spent transmitting by now: all it accepted, less what is
        still ahead of it (an uplink never idles while it holds work)."""
        ahead = np.maximum(0.0, np.array(self.uplink_free) - self.env.now)
        return np.array(self.traffic.busy) - ahead

    def went_offline(self, agent: int) -> None:
        """Offline agents send nothing: whatever has not left the uplink yet is dropped now.
        Messages on their way to it will be dropped too, even if it is back by their arrival."""
        now = self.env.now
        self.offline_at[agent] = now
        self._settle(agent, now)
        for t in self.on_uplink[agent]:
            t.dropped = True
            self.gone[agent] += 1
            self.gone_bytes[agent] += t.msg.size
            self.traffic.busy[agent] -= t.leaves - max(t.starts, now)
            self._drop(t.msg, "sender_offline", at=agent, peer=t.msg.receiver)
        self.on_uplink[agent].clear()
        self.waiting[agent].clear()
        self.queued[agent] = 0
        self.uplink_free[agent] = now

    def _route(self, sender: int, receiver: int) -> tuple[float, Link, np.random.Generator]:
        """A link's sending rate, properties and random stream, made on its first message."""
        link = self.link(sender, receiver)
        rate = min(self.uplink[sender], link.bandwidth)
        route = (rate, link, stream(self.seed, "link", sender, receiver))
        self.routes[(sender, receiver)] = route
        return route

    # --- fates --------------------------------------------------------------------------

    def _drop(self, msg: Message, reason: str, at: int, peer: int, accepted: bool = True) -> None:
        """A ``drop`` event and the message's fate; ``accepted``: a buffer had taken it."""
        if accepted:
            self.traffic.pending_bytes -= msg.size
        self.traffic.drop(msg.sender, reason, msg.size)
        self.log(self.env.now, "drop", at, peer, msg.size, None, None, reason)

    def _reachable(self, msg: Message) -> bool:
        """Drop (and say why) a message whose link was cut or whose receiver is offline."""
        if not self.links.up_since(msg.sender, msg.receiver, msg.sent):
            self._drop(msg, "link_down", at=msg.receiver, peer=msg.sender)
        elif not self.online(msg.receiver) or self.offline_at[msg.receiver] > msg.sent:
            self._drop(msg, "offline", at=msg.receiver, peer=msg.sender)
        else:
            return True
        return False

    def _arrive(self, t: _Transmission, lost: bool) -> None:
        if t.dropped:
            return
        msg = t.msg
        if lost:
            self._drop(msg, "loss", at=msg.receiver, peer=msg.sender)
            if self.q.reliable and msg.tries <= self.q.max_retries:
                self._retransmit(t)
        elif self._reachable(msg):
            if self.downlink[msg.receiver]:
                self._to_downlink(msg)
            else:
                self._hand_over(msg)

    def _retransmit(self, t: _Transmission) -> None:
        """Hand the message to its sender's uplink again when the retransmission timeout
        expires: twice the try's transmission time plus latency (at least ``min_rto``),
        doubled for every earlier try. An offline sender gives it up."""
        msg = t.msg
        rto = max(self.q.min_rto, 2 * (t.leaves - t.starts + t.delay)) * 2 ** (msg.tries - 1)
        again = replace(msg, tries=msg.tries + 1)

        def resend(_: Any) -> None:
            if self.online(msg.sender):
                self.traffic.retransmitted += 1
                self.send(again)

        self.env.timeout(t.leaves + rto - self.env.now).callbacks.append(resend)

    def _to_downlink(self, msg: Message) -> None:
        """Queue an arrived message on the receiver's downlink (its buffer as an uplink's)."""
        now, j, size = self.env.now, msg.receiver, msg.size
        queue = self.on_downlink[j]
        while queue and queue[0].leaves <= now:
            self.down_queued[j] -= queue.popleft().msg.size
        if self.q.policy != "unbounded" and queue:
            if self.replace:
                e = self.down_waiting[j].get(msg.sender)
                if e is not None and e.starts > now and e.msg.size == size:
                    old, e.msg = e.msg, msg
                    self._drop(old, "superseded", at=j, peer=msg.sender)
                    return
            if self.down_queued[j] + size > self.q.limit:
                self._drop(msg, "queue_full", at=j, peer=msg.sender)
                return
        start = max(now, self.downlink_free[j])
        e = _Transmission(msg, start, start + size / self.downlink[j])
        self.downlink_free[j] = e.leaves
        queue.append(e)
        self.down_queued[j] += size
        if self.replace:
            self.down_waiting[j][msg.sender] = e
        self.env.timeout(e.leaves - now).callbacks.append(
            lambda _: self._reachable(e.msg) and self._hand_over(e.msg)
        )

    def _hand_over(self, msg: Message) -> None:
        now, tr = self.env.now, self.traffic
        tr.delivered += 1
        tr.bytes_received[msg.receiver] += msg.size
        tr.pending_bytes -= msg.size
        self.log(now, "deliver", msg.receiver, msg.sender, msg.size, now - msg.produced)
        self.deliver(msg)

    def summary(self) -> dict[str, Any]:
        """Bytes offered, sent and by fate, now (at the end of a run: every fate is final)."""
        self.settle()
        tr = self.traffic
        return {
            "bytes_offered": sum(tr.bytes_offered),
            "bytes_sent": sum(tr.bytes_sent),
            "bytes_by_fate": tr.fates(sum(self.queued)),
        }
