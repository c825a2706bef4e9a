"""The run directory, written as the run goes so an interrupted run keeps what it had.

| file | content |
| --- | --- |
| scenario.yaml | the resolved scenario |
| metrics.csv | one row per evaluation × agent × head |
| events.csv | one row per event |
| network.csv | per sample × agent: its uplink's queue, utilization and bytes |
| reach.csv | per evaluation × agent × head × hop distance: accuracy on those agents' data |
| teachers.csv | per evaluation × agent × student head: how often its chosen teachers were right |
| summary.json | totals and final figures, written at the end (or on interruption) |
| status.json | running, done, interrupted or failed, written first (``status.py``) |
"""

from __future__ import annotations

import csv
import fcntl
import json
import pickle
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from . import status

METRIC_COLUMNS = (
    "time",
    "agent",
    "head",
    "step",
    "private_acc",
    "shared_acc",
    "bytes_sent",
    "bytes_received",
    "bytes_offered",
)
NETWORK_COLUMNS = (
    "time",
    "agent",
    "queued_bytes",
    "utilization",
    "bytes_offered",
    "bytes_sent",
)
REACH_COLUMNS = ("time", "agent", "head", "hops", "acc")
TEACHER_COLUMNS = (  # learning/distillation/diagnostics.py says what each means
    "time",
    "agent",
    "head",
    "steps",
    "samples",
    "teacher_acc",
    "own_head",
    "own_class",
    "conf_right",
    "conf_wrong",
)
EVENT_COLUMNS = ("time", "event", "agent", "peer", "bytes", "staleness", "staleness_max", "reason")


# A large run makes millions of event rows, and formatting them as CSV took a fifth of a
# timing-only run. Past the first batch, a writer process on another core formats them:
# the simulation only pickles each batch (5x cheaper) into a pipe. It never sees Ctrl-C
# (the run closes it, and it writes all it was given), and it ends at end of input, so a
# killed run still has every row it handed over.
_WRITER = """
import csv, pickle, signal, sys
class Rows(pickle.Unpickler):  # lists of tuples of numbers and strings: no global is needed
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refused {module}.{name}")
signal.signal(signal.SIGINT, signal.SIG_IGN)
with open(sys.argv[1], "a", newline="") as f:
    writer = csv.writer(f)
    while True:
        try:
            rows = Rows(sys.stdin.buffer).load()
        except EOFError:
            break
        if rows is None:  # the run flushes: say when all it sent is in the file
            f.flush()
            sys.stdout.buffer.write(b".")
            sys.stdout.buffer.flush()
        else:
            writer.writerows(rows)
"""
BATCH = 16384  # rows per batch: its pickle (~0.5 MB) fits the 1 MB pipe, so the run rarely waits


RUN_FILES = (  # what a run writes: removed before a run takes the directory over
    "status.json",
    "summary.json",
    "scenario.yaml",
    "topology.edges",
    "metrics.csv",
    "events.csv",
    "network.csv",
    "reach.csv",
    "teachers.csv",
    "report.html",
    "animation.gif",
)


class RunDirectory:
    """Appends metrics and events to CSV files; flushes them at every evaluation. Its status
    (``status.json``) says ``running`` from the first moment."""

    def __init__(self, path: str | Path, duration: float | None = None) -> None:
        self.path = Path(path)
        self._made = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:  # a run taking the directory over: nothing of the last one stays
            (self.path / name).unlink(missing_ok=True)
        if (self.path / "plots").is_dir():
            for old in (self.path / "plots").glob("*.png"):
                old.unlink()
        status.start(self.path, duration)
        (self.path / "plots").mkdir(exist_ok=True)
        self._files = []
        self._metrics = self._open("metrics.csv", METRIC_COLUMNS)
        self._events = self._open("events.csv", EVENT_COLUMNS)
        self._network = self._open("network.csv", NETWORK_COLUMNS)
        self._reach = self._open("reach.csv", REACH_COLUMNS)
        self._teachers = self._open("teachers.csv", TEACHER_COLUMNS)
        self.events = 0
        self._pending: list[tuple] = []  # event rows, written in batches
        self._writer: subprocess.Popen | None = None  # formats events.csv once the run is large

    def _open(self, name: str, columns: tuple[str, ...]):
        f = open(self.path / name, "w", newline="")
        self._files.append(f)
        writer = csv.writer(f)
        writer.writerow(columns)
        return writer

    def write_text(self, name: str, text: str) -> None:
        (self.path / name).write_text(text)

    def write_scenario(self, resolved: dict[str, Any]) -> None:
        (self.path / "scenario.yaml").write_text(
            yaml.safe_dump(resolved, sort_keys=False, default_flow_style=None)
        )

    def event(
        self,
        time: float,
        event: str,
        agent: int | None,
        peer: int | None = None,
        bytes: int | None = None,
        staleness: float | None = None,
        staleness_max: float | None = None,
        reason: str | None = None,
    ) -> None:
        self.events += 1  # csv writes None as an empty cell
        self._pending.append((time, event, agent, peer, bytes, staleness, staleness_max, reason))
        if len(self._pending) >= BATCH:
            if self._writer is None:
                self._start_writer()
            self._write_events()

    def _start_writer(self) -> None:
        for f in self._files:  # the header and earlier rows come first; the writer appends
            f.flush()
        self._writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(self.path / "events.csv")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            # F_SETPIPE_SZ: room for a batch
            fcntl.fcntl(self._writer.stdin.fileno(), 1031, 1 << 20)
        except OSError:
            pass  # a smaller pipe only means the run waits for the writer more often

    def _write_events(self) -> None:
        if not self._pending:
            return
        if self._writer is None:
            self._events.writerows(self._pending)
        else:
            self._send(self._pending)
        self._pending.clear()

    def _send(self, rows: list[tuple] | None) -> None:
        try:
            self._writer.stdin.write(pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL))
        except BrokenPipeError:
            self._writer_failed()

    def _writer_failed(self) -> None:
        error = self._writer.stderr.read().decode(errors="replace").strip().splitlines()
        raise OSError(
            f"writing {self.path / 'events.csv'} failed: "
            f"{error[-1] if error else 'writer process died'}"
        )

    def metrics(self, rows: Iterable[tuple]) -> None:
        """Rows of ``metrics.csv``, one per agent and head of an evaluation, in its columns'
        order (its header)."""
        self._metrics.writerows(rows)

    def reach(self, rows: Iterable[tuple]) -> None:
        """Rows of ``reach.csv``: one evaluation's accuracies by hop distance."""
        self._reach.writerows(rows)

    def teachers(self, rows: Iterable[tuple]) -> None:
        """Rows of ``teachers.csv``: one evaluation's teacher diagnostics."""
        self._teachers.writerows(rows)

    def network(self, rows: Iterable[tuple]) -> None:
        """Rows of ``network.csv``: the network's state at one sample time."""
        self._network.writerows(rows)

    def flush(self, now: float | None = None) -> None:
        """Everything recorded so far is in the files (the run calls this at every evaluation,
        with the simulated time it has reached)."""
        if now is not None:
            status.write(self.path, "running", sim_time=now)
        self._write_events()
        if self._writer is not None:
            self._send(None)
            self._writer.stdin.flush()
            if self._writer.stdout.read(1) != b".":
                self._writer_failed()
        for f in self._files:
            f.flush()

    def write_summary(self, summary: dict[str, Any]) -> None:
        tmp = self.path / "summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2))
        tmp.replace(self.path / "summary.json")

    def finish(self, state: str, **info: Any) -> None:
        """The run's final status: ``done``, ``interrupted`` or ``failed`` (with ``error``)."""
        status.write(self.path, state, **info)

    def discard(self) -> None:
        """Remove what this run wrote (a run refused before it started: its ``--out`` stays
        free), and the directory itself if the run made it and nothing else is in it."""
        self.close()
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        for folder in (self.path / "plots", self.path):
            if folder == self.path and not self._made:
                break
            try:
                folder.rmdir()
            except OSError:
                break  # not empty: someone else's files

    def close(self) -> None:
        """Write what is pending and wait for the writer: then events.csv is complete."""
        if self._files:
            self._write_events()
        try:
            if self._writer is not None:
                try:
                    self._writer.stdin.close()
                except BrokenPipeError:
                    pass
                if self._writer.wait() != 0:
                    self._writer_failed()
        finally:
            self._writer = None
            for f in self._files:
                f.close()
            self._files = []
