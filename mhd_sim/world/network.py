"""The network: a FIFO uplink per agent with a finite buffer, lossy delayed links, optional
downlinks, and a datagram or reliable transport.

A message handed at time s to an uplink that frees at time q starts at ``max(s, q)``,
leaves at ``u = max(s, q) + bytes / min(uplink, link cap)``, reaches the receiver at
``u + latency`` and, with a downlink queue that frees at d, is delivered at
``max(u + latency, d) + bytes / downlink``. With a bandwidth trace (the uplink's, a link's),
``bytes / rate`` becomes the time the bytes need at the rates from the start on, integrated
over their changes; with a latency trace, the latency is the link's at ``u``. Queues are
kept in closed form (when each message starts and leaves is known when it is accepted), so
there is no process per queue.

An uplink's buffer holds the messages that have not left it yet (the one being transmitted
included). With ``drop_tail`` a message that does not fit is dropped (``queue_full``); an
empty uplink always takes one message, however large. With ``replace`` a message to a
receiver that already has one waiting (not yet started, same size) takes its place; the old
one is ``superseded``. A downlink's buffer works the same way, keyed by sender.

A message is also dropped, with a reason, if the link loses it (``loss``), if its sender
goes offline before it has left the uplink (``sender_offline``), if its link is down at
arrival or went down while it was in flight (``link_down``), or if the receiver is offline
when it arrives or went offline while it was in flight (``offline``). Each link draws its
latencies and losses from its own random stream.

With the reliable transport, a message dropped after it left the sender's uplink (lost,
its link down, its receiver offline, no room on the receiver's downlink) is handed to the
sender's uplink again when its retransmission timeout expires: a sender waiting for an
acknowledgement cannot tell these apart. The timeout runs from the moment the message left
the uplink: ``max(min_rto, 2·(transmission + latency))``, doubled for every earlier try; a
drop found after it expired (a long downlink queue) is resent at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import simpy

from ..seeds import stream
from .links import Links
from .queue import DEFAULT_LIMIT, Message, Queue, Transmission
from .traces import Steps
from .traffic import Traffic

__all__ = ["Link", "Message", "Network", "Queueing"]


@dataclass(frozen=True)
class Link:
    """One directed link's properties."""

    latency: Callable[[np.random.Generator], float]
    loss: float = 0.0
    bandwidth: float = math.inf  # a cap below the sender's uplink (a thin wide-area hop)
    latency_trace: Steps | None = None  # from its first change on, the latency at departure
    bandwidth_trace: Steps | None = None  # a cap over time (its base: ``bandwidth``)


@dataclass(frozen=True)
class Queueing:
    """The buffer of every uplink and downlink, and the transport."""

    policy: str = "drop_tail"  # one of queue.POLICIES
    limit: int = DEFAULT_LIMIT  # bytes
    reliable: bool = False
    max_retries: int = 6
    min_rto: float = 0.2  # seconds


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
        unbounded: tuple[int, ...] = (),
        uplink_trace: dict[int, Steps] | None = None,
    ) -> None:
        """``uplink`` and ``downlink``: each node's rates in bytes/s (None: no downlink queue);
        ``unbounded``: nodes whose uplink never drops (a server's connection per client);
        ``uplink_trace``: nodes whose uplink's rate changes over time (bytes/s)."""
        nodes = len(uplink)
        self.env, self.links, self.seed = env, links, seed
        self.uplink, self.downlink, self.link = uplink, downlink, link
        self.uplink_trace = uplink_trace or {}
        self.online, self.deliver, self.log = online, deliver, log
        self.queueing = queueing
        self.traffic = Traffic(nodes)
        self.offline_at = [-math.inf] * nodes  # when each node last went offline
        self.uplinks = [
            Queue("unbounded" if i in unbounded else queueing.policy, queueing.limit)
            for i in range(nodes)
        ]
        self.downlinks = [Queue(queueing.policy, queueing.limit) for _ in range(nodes)]
        # what each uplink refused (a full buffer, or a replacement: it takes an existing slot)
        # and what it abandoned when its sender went offline; the rest of what it was offered
        # has left it or is still on it
        self.refused, self.refused_bytes = [0] * nodes, [0] * nodes
        self.abandoned, self.abandoned_bytes = [0] * nodes, [0] * nodes
        self.routes: dict[tuple[int, int], tuple[float | Steps, Link, np.random.Generator]] = {}

    # --- uplinks ------------------------------------------------------------------------

    def send(self, msg: Message) -> None:
        """Hand a message to its sender's uplink (the ``send`` event). If its buffer takes it,
        it leaves after the messages ahead of it, ``bytes / min(uplink, link cap)`` after it
        starts; its latency and fate are drawn now from the link's stream."""
        now, i, j, size = self.env.now, msg.sender, msg.receiver, msg.size
        msg.offered_at = now
        tr = self.traffic
        tr.offered[i] += 1
        tr.bytes_offered[i] += size
        if msg.tries == 1:
            self.log(now, "send", i, j, size)
        else:
            self.log(now, "send", i, j, size, reason="retransmit")
        up = self.uplinks[i]
        if len(up):
            up.settle(now)
            verdict = up.offer(msg, j, now)
            if verdict.drop is not None:
                self.refused[i] += 1
                self.refused_bytes[i] += size
                if verdict.slot is not None:  # it took a waiting message's place
                    tr.delays[i].append(verdict.slot.starts - now)
                    tr.pending_bytes += size
                    self._time_out(verdict.slot)
                    self._drop(verdict.old, verdict.drop, at=i, peer=j)
                else:
                    self._drop(msg, verdict.drop, at=i, peer=j, accepted=False)
                return
        route = self.routes.get((i, j))
        if route is None:
            route = self._route(i, j)
        rate, link, rng = route
        start = up.free if up.free > now else now
        # a traced uplink: the bytes integrated over its rate, exact across a change
        duration = size / rate if rate.__class__ is not Steps else rate.seconds(start, size)
        delay = link.latency(rng)
        lost = rng.random() < link.loss
        t = up.enqueue(msg, j, start, duration)
        trace = link.latency_trace
        if trace is not None and t.leaves >= trace.times[0]:
            delay = trace.at(t.leaves)
        t.delay = delay
        if up.held_bytes > tr.peak_queue[i]:
            tr.peak_queue[i] = up.held_bytes
        tr.busy[i] += duration
        tr.delays[i].append(start - now)
        tr.pending_bytes += size
        self._time_out(t)
        self.env.timeout(t.leaves + delay - now).callbacks.append(lambda _: self._arrive(t, lost))

    def _time_out(self, t: Transmission) -> None:
        """Reliable transport: when the sender resends the message in ``t`` if no
        acknowledgement comes, counted from when it leaves the uplink."""
        q = self.queueing
        if q.reliable:
            rto = max(q.min_rto, 2 * (t.leaves - t.starts + t.delay)) * 2 ** (t.msg.tries - 1)
            t.msg.resend_at = t.leaves + rto

    def settle(self) -> None:
        """Bring every uplink up to now, and the traffic's ``sent`` and ``bytes_sent`` with it:
        what an uplink accepted, less what is still on it and what its offline sender lost."""
        now, tr = self.env.now, self.traffic
        for i, up in enumerate(self.uplinks):
            up.settle(now)
            tr.sent[i] = tr.offered[i] - self.refused[i] - self.abandoned[i] - len(up)
            tr.bytes_sent[i] = (
                tr.bytes_offered[i]
                - self.refused_bytes[i]
                - self.abandoned_bytes[i]
                - up.held_bytes
            )

    def holding(self, node: int) -> int:
        """Messages on the node's uplink that have not left it yet."""
        self.uplinks[node].settle(self.env.now)
        return len(self.uplinks[node])

    def queued_bytes(self) -> list[int]:
        """Bytes on each uplink that have not left it (as of the last ``settle``)."""
        return [up.held_bytes for up in self.uplinks]

    def busy(self) -> np.ndarray:
        """Seconds each uplink has spent transmitting by now: all it accepted, less what is
        still ahead of it (an uplink never idles while it holds work)."""
        ahead = np.maximum(0.0, np.array([up.free for up in self.uplinks]) - self.env.now)
        return np.array(self.traffic.busy) - ahead

    def went_offline(self, node: int) -> None:
        """Offline nodes send nothing: whatever has not left the uplink yet is dropped now.
        Messages on their way to it will be dropped too, even if it is back by their arrival."""
        now = self.env.now
        self.offline_at[node] = now
        for t in self.uplinks[node].clear(now):
            self.abandoned[node] += 1
            self.abandoned_bytes[node] += t.msg.size
            self.traffic.busy[node] -= t.leaves - max(t.starts, now)
            self._drop(t.msg, "sender_offline", at=node, peer=t.msg.receiver)

    def _route(self, sender: int, receiver: int) -> tuple[float | Steps, Link, np.random.Generator]:
        """A link's sending rate (or rates over time), properties and random stream, made on
        its first message."""
        link = self.link(sender, receiver)
        trace, cap = self.uplink_trace.get(sender), link.bandwidth_trace
        if trace is None and cap is None:
            rate: float | Steps = min(self.uplink[sender], link.bandwidth)
        else:  # the smaller of the uplink's and the link's rate at every moment
            up = trace or Steps(self.uplink[sender], [], [])
            rate = up.minimum(cap or Steps(link.bandwidth, [], []))
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

    def _undelivered(self, msg: Message, reason: str) -> None:
        """A message dropped after it left its sender's uplink: the reliable transport resends
        it when its timeout expires, up to ``max_retries`` times."""
        self._drop(msg, reason, at=msg.receiver, peer=msg.sender)
        q = self.queueing
        if q.reliable and msg.tries <= q.max_retries:
            again = replace(msg, tries=msg.tries + 1)

            def resend(_: Any) -> None:
                if self.online(msg.sender):
                    self.traffic.retransmitted += 1
                    self.send(again)

            wait = msg.resend_at - self.env.now
            self.env.timeout(wait if wait > 0 else 0.0).callbacks.append(resend)

    def _reachable(self, msg: Message) -> bool:
        """Drop (and say why) a message whose link was cut or whose receiver is offline."""
        if not self.links.up_since(msg.sender, msg.receiver, msg.offered_at):
            self._undelivered(msg, "link_down")
        elif not self.online(msg.receiver) or self.offline_at[msg.receiver] > msg.offered_at:
            self._undelivered(msg, "offline")
        else:
            return True
        return False

    def _arrive(self, t: Transmission, lost: bool) -> None:
        if t.dropped:
            return
        msg = t.msg
        if lost:
            self._undelivered(msg, "loss")
        elif self._reachable(msg):
            if self.downlink[msg.receiver]:
                self._to_downlink(msg)
            else:
                self._hand_over(msg)

    def _to_downlink(self, msg: Message) -> None:
        """Queue an arrived message on the receiver's downlink (its buffer as an uplink's)."""
        now, j = self.env.now, msg.receiver
        down = self.downlinks[j]
        down.settle(now)
        verdict = down.offer(msg, msg.sender, now)
        if verdict.drop == "superseded":  # a newer one from the same sender: nothing to resend
            self._drop(verdict.old, verdict.drop, at=j, peer=msg.sender)
            return
        if verdict.drop is not None:
            self._undelivered(msg, verdict.drop)
            return
        e = down.enqueue(msg, msg.sender, max(now, down.free), msg.size / self.downlink[j])
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
            "bytes_by_fate": tr.fates(sum(self.queued_bytes())),
        }
