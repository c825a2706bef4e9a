"""Batched learning across agents: many agents' steps as one vmapped computation.

The schedule (when steps start and end, which messages go where, how big they are) never
depends on weights or predictions, so the world can run ahead while the tensor work waits.
Each agent gets a proxy learner that does the schedule part of every call at once (the
batches drawn, which cached predictions are fresh, message sizes: the learner's
``Plan.step`` and ``Plan.store``) and queues the rest as an op: ``train`` (teachers from
the cache, forward, backward, SGD), ``message`` (predictions on a public chunk), ``absorb``
(store a peer's predictions). Queues run in waves when results are needed (evaluations) or
grow long: every wave applies each agent's ready absorbs in one scatter, then the head
``train`` ops of all agents that share an architecture as one ``vmap(grad(...))`` over
stacked parameters, then their ``message`` ops as one vmapped forward. An agent's ops run
in its own order, and an absorb waits until its message is computed, so every agent sees
exactly the inputs it would see executing alone; the results equal per-agent execution up
to floating-point rounding (a test compares them).

A train op whose step has not ended stops its agent's queue: an evaluation at time t sees
the weights of the steps ended by t, as in per-agent execution. A step abandoned when its
agent went offline is dropped when that agent starts its next one.
"""

from .engine import Engine

__all__ = ["Engine"]
