"""The live page as a user meets it: ``mhd-sim run --watch`` and ``mhd-sim watch``, a real
browser following a real run, and the server refusing what is not the run's."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mhd_sim.record.live.state import LiveState

CONSOLE = re.compile(r"mhd-sim watch: t=([0-9.]+) state=(\w+) evals=(\d+)")


def _chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip(
            "no chromium: `make test` installs Debian's chromium package; it could not here"
        )
    return browser


def _browser_args(profile: Path) -> list[str]:
    return [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-proxy-server",
        f"--user-data-dir={profile}",
    ]  # fmt: skip


def _mhd_sim(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mhd_sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Ctrl-C as a terminal sends it, even where the suite runs with SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _address(proc: subprocess.Popen) -> tuple[str, int]:
    """The page's address from the first line that names one."""
    for line in proc.stdout:
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if found:
            return found.group(0), int(found.group(1))
    raise AssertionError(f"no address printed; exit {proc.wait()}")


def _get(port: int, path: str, host: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": host or f"127.0.0.1:{port}"})
    response = conn.getresponse()
    return response.status, response.read()


def _lines(stream, into: list[str]) -> threading.Thread:
    reader = threading.Thread(target=lambda: into.extend(stream), daemon=True)
    reader.start()
    return reader


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("watch") / "run"
    cmd = ["run", "churn", "--out", str(out), "--set", "duration=20", "--timing-only", "-q"]
    done = subprocess.run([sys.executable, "-m", "mhd_sim", *cmd], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.slow  # a 90 s run watched in Chromium: CI's lane (make test-all)
def test_a_browser_follows_a_run_as_it_goes(tmp_path):
    """`run --watch`: the page in headless Chromium is sent new states while the run goes
    (its simulated time grows), raises no script error, ends at "done"; the page stays until
    Ctrl-C, which ends both cleanly."""
    browser = _browser_args(tmp_path / "profile")
    run = _mhd_sim(
        "run", "churn", "--out", str(tmp_path / "run"), "--set", "duration=90",
        "--watch", "--port", "0", "-q",
    )  # fmt: skip
    try:
        url, port = _address(run)
        output: list[str] = []
        _lines(run.stdout, output)
        page = subprocess.Popen(
            [*browser, "--enable-logging=stderr", "--v=0", url + "?stream"],  # the pushed states
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        console: list[str] = []
        _lines(page.stderr, console)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not any("state=done" in c for c in console):
            time.sleep(0.5)
        page.kill()
        page.wait()
        seen = [(float(t), s, int(e)) for t, s, e in CONSOLE.findall("\n".join(console))]
        assert seen and seen[-1][1] == "done", console[-20:]
        running = {t for t, s, _ in seen if s == "running"}
        assert len(running) >= 2, seen  # the page was sent the run as it went, not only its end
        assert [t for t, _, _ in seen] == sorted(t for t, _, _ in seen)
        assert seen[-1][0] == pytest.approx(90.0) and seen[-1][2] > seen[0][2]
        assert not [c for c in console if "Uncaught" in c or ":ERROR:CONSOLE" in c], console
        # a picture of the finished run at the plain address, as a user takes one: with the
        # page settled (headless, it polls) and at once (its first state is in the page)
        for settle in (["--virtual-time-budget=8000"], []):
            shot = tmp_path / "watch.png"
            shot.unlink(missing_ok=True)
            subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1280,900", *settle,
                            url], capture_output=True, timeout=120)  # fmt: skip
            assert shot.is_file() and shot.stat().st_size > 20_000
            dom = subprocess.run([*browser, "--dump-dom", *settle, url], capture_output=True,
                                 text=True, timeout=120).stdout  # fmt: skip
            assert 'data-state="done"' in dom and 'data-sim-time="90.000"' in dom, dom[:300]
        run.send_signal(signal.SIGINT)
        assert run.wait(30) == 0, output
        with pytest.raises(OSError):  # the page went with it
            _get(port, "/state.json")
    finally:
        run.kill()


def test_watch_serves_the_run_and_nothing_else(finished):
    """A finished run, watched later: its state, its files; no path outside it, no other Host
    (DNS rebinding); SIGTERM stops it with exit 0."""
    watch = _mhd_sim("watch", str(finished), "--port", "0")
    try:
        url, port = _address(watch)
        status, body = _get(port, "/state.json")
        state = json.loads(body)
        assert status == 200 and state["status"]["state"] == "done"
        assert state["sim_time"] == pytest.approx(20.0)
        assert (
            state["algorithm"] == "mhd" and state["n"] == len(state["pos"]) > 0 and state["edges"]
        )
        status, body = _get(port, "/files/summary.json")
        assert status == 200 and json.loads(body) == json.loads(
            (finished / "summary.json").read_text()
        )
        status, page = _get(port, "/")
        assert status == 200 and b"mhd-sim" in page
        secret = finished.parent / "secret.txt"
        secret.write_text("not the run's")
        for path in (
            "/files/../secret.txt",
            "/files/%2e%2e/secret.txt",
            "/files/%2E%2E%2Fsecret.txt",
        ):
            status, body = _get(port, path)
            assert status == 403 and b"not the run" not in body, path
        assert _get(port, "/files/no-such.csv")[0] == 404
        assert _get(port, "/state.json", host="attacker.example:80")[0] == 403
        watch.send_signal(signal.SIGTERM)
        assert watch.wait(30) == 0
        assert "stopped" in watch.stdout.read()
    finally:
        watch.kill()


def test_watch_refuses_what_is_not_a_run_in_one_line(tmp_path):
    for target in (tmp_path / "missing", tmp_path):
        done = subprocess.run(
            [sys.executable, "-m", "mhd_sim", "watch", str(target)], capture_output=True, text=True
        )
        assert done.returncode == 2
        lines = (done.stdout + done.stderr).strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in lines[0], lines


def test_a_killed_run_takes_its_page_along_and_reads_as_killed(tmp_path):
    """`kill -9` of a run with --watch: the page process goes too (nothing left listening),
    and the run directory, watched again, says killed and shows what the run wrote."""
    out = tmp_path / "run"
    run = _mhd_sim("run", "churn", "--out", str(out), "--watch", "--port", "0", "-q")
    try:
        _, port = _address(run)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = json.loads(_get(port, "/state.json")[1])
            if state["sim_time"] > 0 and state["counts"].get("send"):
                break
            time.sleep(0.3)
        assert state["status"]["state"] == "running"
        run.kill()
        run.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                _get(port, "/state.json")
            except OSError:
                break
            time.sleep(0.2)
        with pytest.raises(OSError):
            _get(port, "/state.json")
    finally:
        run.kill()
    killed = LiveState(out)
    killed.update()
    snapshot = killed.snapshot()
    assert snapshot["status"]["state"] == "killed"
    assert snapshot["counts"]["send"] > 0 and 0 < snapshot["sim_time"] < 400
