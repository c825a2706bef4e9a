"""A run directory's own word on its state: ``status.json``, written first and replaced
atomically as the run goes.

| state | meaning |
| --- | --- |
| ``running`` | a process (``pid`` on ``host``) is writing it; that process gone: killed |
| ``done`` | the run ended and drew its figures |
| ``interrupted`` | stopped by the user (Ctrl-C): ``summary.json`` says what it had |
| ``failed`` | stopped by an error, named in ``error`` |

Every tool that reads a run reads this first (``read``): a run killed by ``kill -9`` or by
the machine still says ``running``, and its process is gone; that reads as ``killed``.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..untrusted import read_json

FILE = "status.json"
STATES = ("running", "done", "interrupted", "failed")


def start(run: Path, duration: float) -> None:
    """A new run in ``run``, by this process: whatever status was there is replaced."""
    _replace(run, {"state": "running", "sim_time": 0.0, "duration": duration, "pid": os.getpid(),
                   "host": socket.gethostname(), "started": _now(), "updated": _now()})  # fmt: skip


def write(run: Path, state: str, **info: Any) -> None:
    """Update the run's status (atomically: a reader sees the old one or the new one)."""
    _replace(run, {**(_load(run) or {}), **info, "state": state, "updated": _now()})


def _replace(run: Path, data: dict[str, Any]) -> None:
    tmp = run / f"{FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(run / FILE)


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def _load(run: Path) -> dict[str, Any] | None:
    try:
        data = read_json(run / FILE)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class Status:
    """What a reader makes of a run directory: ``state`` is one of ``STATES``, ``killed``
    (running, its process gone) or ``unknown`` (no status: not a run directory, or one made
    before run directories said so); ``sim_time`` how far it got, of ``duration``."""

    state: str
    sim_time: float | None = None
    duration: float | None = None
    error: str | None = None

    @property
    def partial(self) -> bool:
        """It holds less than a whole run: killed, interrupted, failed or still running."""
        return self.state in ("running", "killed", "interrupted", "failed")

    def describe(self, run: Path) -> str:
        """One line for a user: what state it is in and how far it got."""
        at = ""
        if self.sim_time is not None:
            of = f" of {self.duration:g}" if self.duration else ""
            at = f" at t≈{self.sim_time:.4g} s{of}"
        return {
            "done": f"{run}: done",
            "running": f"{run}: still running{at}",
            "killed": f"{run}: the run was killed{at} (its process is gone)",
            "interrupted": f"{run}: interrupted{at}",
            "failed": f"{run}: failed{at}: {self.error}",
            "unknown": f"{run}: not a run directory, or one that does not say its status",
        }[self.state]


def read(run: Path) -> Status:
    """The state of the run in ``run`` (a run directory of before status files: ``done`` if
    its summary says it ended, else ``unknown``)."""
    data = _load(run)
    if data is None:
        return _legacy(run)
    state = data.get("state", "unknown")
    if state == "running" and data.get("host") == socket.gethostname() and not _alive(data):
        state = "killed"
    return Status(state, data.get("sim_time"), data.get("duration"), data.get("error"))


def _legacy(run: Path) -> Status:
    try:
        summary = read_json(run / "summary.json")
    except (OSError, ValueError):
        return Status("unknown")
    state = "interrupted" if summary.get("interrupted") else "done"
    return Status(state, summary.get("sim_time"))


def _alive(data: dict[str, Any]) -> bool:
    try:
        os.kill(int(data["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True  # another user's process, or no pid to check: assume it lives
    return True
