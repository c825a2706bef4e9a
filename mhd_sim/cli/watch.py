"""``watch``: a live page of a run directory, and the one ``run --watch`` starts beside a run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from .common import PortOption, _fail, app, err, out


@app.command()
def watch(
    run_dir: Annotated[Path, typer.Argument(help="A run directory: running, finished or not.")],
    port: PortOption = 0,
    wait: Annotated[
        bool, typer.Option("--wait", help="Serve even before the run directory exists.")
    ] = False,
    with_parent: Annotated[bool, typer.Option("--with-parent", hidden=True)] = False,
) -> None:
    """Serve a live page of a run (running, finished or killed) on 127.0.0.1.

    Topology, accuracy, bytes, staleness and teachers as the run goes, and a time slider to
    replay it. Ctrl-C stops it."""
    from ..record import status
    from ..record.live.server import serve

    if not wait:
        if not run_dir.is_dir():
            raise _fail(f"{run_dir}: no such run directory", 2)
        if status.read(run_dir).state == "unknown":
            raise _fail(status.read(run_dir).describe(run_dir), 2)

    if with_parent:  # started by `run --watch`: stop when that process is gone, however it went
        threading.Thread(target=_stop_at_eof, name="watch-parent", daemon=True).start()

    def ready(address: str) -> None:
        print(f"watching {run_dir} at {address} (Ctrl-C stops)", flush=True)  # one line

    try:
        serve(run_dir, port, ready)
    except OSError as e:  # the port taken, most often
        raise _fail(f"cannot serve on 127.0.0.1:{port}: {e.strerror or e}", 2) from None
    out.print("stopped", highlight=False)


def _stop_at_eof() -> None:
    sys.stdin.read()  # returns at end of file: the process holding the other end has ended
    os.kill(os.getpid(), signal.SIGTERM)  # what serve() stops on (SIGINT may be ignored)


@contextlib.contextmanager
def beside(run_dir: Path, port: int) -> Iterator[subprocess.Popen]:
    """A ``watch`` process for the run about to write ``run_dir``; its address is printed
    before the run starts. It runs in a session of its own (the terminal's Ctrl-C stops the
    run, not the page) and is stopped when the block ends, or when this process dies."""
    command = ["watch", str(run_dir), "--port", str(port), "--wait", "--with-parent"]
    page = subprocess.Popen(
        [sys.executable, "-m", "mhd_sim", *command],
        stdin=subprocess.PIPE,  # closed when this process ends, even by SIGKILL
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        line = page.stdout.readline().strip()
        if page.poll() is not None and not line.startswith("watching"):
            raise _fail(f"--watch: the page could not start: {line or 'no output'}", 2)
        err.print(line.replace(" (Ctrl-C stops)", ""), highlight=False, soft_wrap=True)
        yield page
    finally:
        if page.poll() is None:
            page.terminate()
            try:
                page.wait(10)
            except subprocess.TimeoutExpired:
                page.kill()


def keep_serving(page: subprocess.Popen) -> None:
    """After the run: the page stays until Ctrl-C."""
    err.print("the run is over; the page stays for replay until Ctrl-C", highlight=False)
    with contextlib.suppress(KeyboardInterrupt):
        page.wait()
