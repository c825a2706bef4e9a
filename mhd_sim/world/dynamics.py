"""Scheduled changes of who can reach whom: link failures, partitions that heal, topology
switches. Messages in flight over a link that goes down are dropped (see ``network.py``)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any


def log_links(sim: Any, change: tuple[list, list]) -> None:
    """One ``link_down`` or ``link_up`` event per graph edge that changed."""
    lost, regained = change
    for event, pairs in (("link_down", lost), ("link_up", regained)):
        for a, b in pairs:
            sim.record.event(sim.env.now, event, a, b)


def network_change(sim: Any, k: int, ev: Any) -> Generator:
    """The process of schedule entry ``k``: apply it at ``ev.at``, undo it at ``ev.until``."""
    yield sim.env.timeout(ev.at)
    now, links = sim.env.now, sim.links
    if ev.kind == "switch":
        sim.record.event(now, "switch", None)
        log_links(sim, links.switch(sim.switches[k], now))
        return
    if ev.kind == "link_down":
        pairs = ev.pairs()
        log_links(sim, links.fail(pairs, now))
    else:
        sim.record.event(now, "partition", None)
        log_links(sim, links.partition(k, ev.labels(sim.sc.agents.count), now))
    if ev.until is None:
        return
    yield sim.env.timeout(ev.until - now)
    if ev.kind == "link_down":
        log_links(sim, links.restore(pairs, sim.env.now))
    else:
        sim.record.event(sim.env.now, "heal", None)
        log_links(sim, links.heal(k, sim.env.now))
