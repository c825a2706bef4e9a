"""The run directory, written as the run goes so an interrupted run keeps what it had.

| file | content |
| --- | --- |
| scenario.yaml | the resolved scenario |
| metrics.csv | one row per evaluation × agent × head |
| events.csv | one row per event |
| summary.json | totals and final figures, written at the end (or on interruption) |
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml

METRIC_COLUMNS = ("time", "agent", "head", "step", "private_acc", "shared_acc", "bytes_sent", "bytes_received")
EVENT_COLUMNS = ("time", "event", "agent", "peer", "bytes", "staleness", "staleness_max", "reason")


class RunDirectory:
    """Appends metrics and events to CSV files; flushes them at every evaluation."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "plots").mkdir(exist_ok=True)
        self._files = []
        self._metrics = self._open("metrics.csv", METRIC_COLUMNS)
        self._events = self._open("events.csv", EVENT_COLUMNS)
        self.events = 0
        self._pending: list[tuple] = []  # event rows, written in batches

    def _open(self, name: str, columns: tuple[str, ...]):
        f = open(self.path / name, "w", newline="")
        self._files.append(f)
        writer = csv.writer(f)
        writer.writerow(columns)
        return writer

    def write_text(self, name: str, text: str) -> None:
        (self.path / name).write_text(text)

    def write_scenario(self, resolved: dict[str, Any]) -> None:
        (self.path / "scenario.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False, default_flow_style=None))

    def event(self, time: float, event: str, agent: int | None, peer: int | None = None, bytes: int | None = None,
              staleness: float | None = None, staleness_max: float | None = None, reason: str | None = None) -> None:
        self.events += 1  # csv writes None as an empty cell
        self._pending.append((time, event, agent, peer, bytes, staleness, staleness_max, reason))
        if len(self._pending) >= 65536:
            self._write_events()

    def _write_events(self) -> None:
        self._events.writerows(self._pending)
        self._pending.clear()

    def metric(self, time: float, agent: int, head: int, step: int, private_acc: float, shared_acc: float,
               bytes_sent: int, bytes_received: int) -> None:
        self._metrics.writerow((time, agent, head, step, private_acc, shared_acc, bytes_sent, bytes_received))

    def flush(self) -> None:
        self._write_events()
        for f in self._files:
            f.flush()

    def write_summary(self, summary: dict[str, Any]) -> None:
        tmp = self.path / "summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2))
        tmp.replace(self.path / "summary.json")

    def close(self) -> None:
        if self._files:
            self._write_events()
        for f in self._files:
            f.close()
        self._files = []
