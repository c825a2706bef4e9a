"""Isolated training: no communication, the lower reference line."""

from __future__ import annotations

from .learner import Learner


class Isolated(Learner):
    """No communication: the lower reference line."""
