"""mhd-sim sweep on a real two-node Ray cluster: nodes in network namespaces this test makes
(benchmarks/netns_cluster.py), every address inside them; points shared, a worker killed, the
driver killed, the head lost or missing, a node with another mhd-sim refused. Each test is
bounded in time; the cluster leaves no namespace and no process behind (checked)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmarks.netns_cluster import SUBNET, Cluster, why_not

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray-cluster")]
WHY = why_not()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    if WHY:
        pytest.skip(f"no multi-node Ray cluster here: {WHY}")
    c = Cluster().__enter__()
    try:
        c.add("head")
        c.add("w1")
        yield c
    finally:
        left = c.teardown()
        assert not left, f"the cluster left {left}"


@pytest.fixture(scope="module")
def tiny_file(cluster, tiny_for_module):
    """The tiny scenario at 40 simulated s: a point runs for a few seconds, long enough to be
    caught running."""
    tiny_for_module.update(duration=40.0, eval={"every": 10.0})
    f = cluster.root / "tiny.yaml"
    f.write_text(yaml.safe_dump(tiny_for_module))
    return f


def sweep(c: Cluster, node: str, out: Path, *args: str, start: bool = False, auto: bool = False):
    """``mhd-sim sweep`` run by a driver inside ``node``'s namespace, on the cluster (``auto``:
    ``--address auto`` with RAY_ADDRESS set, as ``ray job submit`` runs a driver)."""
    cmd = (sys.executable, "-m", "mhd_sim", "sweep", *args, "--out", str(out),
           "--backend", "ray", "--address", "auto" if auto else c.address)  # fmt: skip
    env = c.env(RAY_ADDRESS=c.address) if auto else c.env()
    if start:
        return c.exec(node, *cmd, cwd=c.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                      text=True, env=env)  # fmt: skip
    return c.run(node, *cmd, cwd=c.root, timeout=240, env=env)


def index(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "sweep.csv", keep_default_na=False)


def wait_for(check, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, f"waited {timeout:g} s for {what}"
        time.sleep(0.2)


def points_running(c: Cluster, node: str) -> list[int]:
    """Processes in ``node`` running a sweep point (``python -m mhd_sim run``)."""
    out = []
    for pid in c.pids(node):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mhd_sim" in cmd and b"run" in cmd:
            out.append(pid)
    return out


def test_two_nodes_share_a_sweep_at_namespace_addresses_with_the_local_files(
    cluster, tiny_file, tmp_path
):
    probe = (
        "import ray; ray.init(address='%s'); print([n['NodeManagerAddress'] for n in ray.nodes()])"
    )
    seen = cluster.run("head", sys.executable, "-c", probe % cluster.address, timeout=60)
    addresses = sorted(eval(seen.stdout.strip().splitlines()[-1]))
    assert addresses == [f"{SUBNET}.1", f"{SUBNET}.2"], seen.stderr[-500:]
    grid = (str(tiny_file), "--grid", "network.topology.kind=ring,complete", "--seeds", "2",
            "--set", "duration=6")  # fmt: skip
    ran = sweep(cluster, "head", tmp_path / "ray", *grid)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "on the cluster: 10.231.0.1 ran" in ran.stdout and "10.231.0.2 ran" in ran.stdout
    rows = index(tmp_path / "ray")
    assert set(rows.node) == set(addresses) and list(rows.retries) == [0] * 4  # both ran points
    local = subprocess.run([sys.executable, "-m", "mhd_sim", "sweep", *grid, "--quiet",
                            "--out", str(tmp_path / "local")], capture_output=True, text=True,
                           cwd=cluster.root, timeout=240)  # fmt: skip
    assert local.returncode == 0, local.stderr[-2000:]
    assert set(index(tmp_path / "local").node) == {"local"}
    for point in rows.point:
        for name in ("metrics.csv", "events.csv", "summary.json"):
            a, b = (tmp_path / d / "runs" / point / name for d in ("ray", "local"))
            if name == "summary.json":  # its wall time is the one field that may differ
                a, b = (pd.read_json(x, typ="series").drop("wall_time_s") for x in (a, b))
                assert a.to_json() == b.to_json()
            else:
                assert a.read_bytes() == b.read_bytes(), (point, name)


def test_a_worker_killed_mid_point_reruns_it_on_the_other_node(cluster, tiny_file, tmp_path):
    driver = sweep(cluster, "head", tmp_path / "sw", str(tiny_file), "--seeds", "3", start=True)
    try:
        wait_for(lambda: points_running(cluster, "w1"), 60, "a point running on the worker")
        time.sleep(1.0)
        assert cluster.kill("w1", only="raylet"), "no raylet to kill"
        stdout, stderr = driver.communicate(timeout=360)  # its points again, on a busy machine
    finally:
        driver.kill()
    assert driver.returncode == 0, stderr[-2000:]
    rows = index(tmp_path / "sw")
    assert list(rows.status) == ["done"] * 3 and rows.point.is_unique
    assert rows.retries.sum() == 1 and set(rows.node[rows.retries == 1]) == {f"{SUBNET}.1"}
    assert "lost with node 10.231.0.2" in stderr and "1 retried" in stdout
    cluster.stop("w1")
    cluster.add("w1")  # back for the next tests


def test_a_killed_driver_is_resumed_rerunning_only_unfinished_points(cluster, tiny_file, tmp_path):
    out = tmp_path / "sw"
    driver = sweep(cluster, "head", out, str(tiny_file), "--seeds", "4", start=True)
    try:
        wait_for(lambda: (out / "sweep.csv").exists() and "done" in set(index(out).status),
                 120, "a finished point")  # fmt: skip
        os.kill(driver.pid, signal.SIGKILL)  # ip netns exec execs the driver: its own pid
        driver.wait(timeout=30)
    finally:
        driver.kill()
    first = index(out)
    done = list(first.point[first.status == "done"])
    assert 1 <= len(done) < 4
    stamps = {p: (out / "runs" / p / "summary.json").stat().st_mtime_ns for p in done}
    # the killed driver's points die with its Ray job: none is left running on a node
    wait_for(lambda: not points_running(cluster, "head") + points_running(cluster, "w1"), 60,
             "the killed driver's points to stop")  # fmt: skip
    resumed = sweep(cluster, "head", out, "--resume", "--quiet", auto=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"4 points: {4 - len(done)} run, {len(done)} kept from before" in resumed.stdout
    rows = index(out)
    assert list(rows.status) == ["done"] * 4 and rows.point.is_unique
    assert set(rows.node) <= {f"{SUBNET}.1", f"{SUBNET}.2"}
    for p, stamp in stamps.items():
        assert (out / "runs" / p / "summary.json").stat().st_mtime_ns == stamp


def test_a_node_with_another_mhd_sim_is_refused_before_any_point_runs_there(
    cluster, tiny_file, tmp_path
):
    other = tmp_path / "other"
    shutil.copytree(ROOT / "mhd_sim", other / "mhd_sim",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))  # fmt: skip
    init = other / "mhd_sim" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9.'))
    cluster.stop("w1")
    cluster.add("w1", PYTHONPATH=str(other))
    try:
        ran = sweep(cluster, "head", tmp_path / "sw", str(tiny_file), "--seeds", "2",
                    "--set", "duration=6")  # fmt: skip
    finally:
        cluster.stop("w1")
        cluster.add("w1")
    assert ran.returncode == 0, ran.stderr[-2000:]
    refusals = [ln for ln in ran.stderr.splitlines() if ln.startswith("node 10.231.0.2 refused")]
    assert len(refusals) == 1 and "mhd-sim 9." in refusals[0], ran.stderr[-2000:]
    assert set(index(tmp_path / "sw").node) == {f"{SUBNET}.1"}


def test_a_head_that_does_not_answer_is_one_line_and_exit_2(cluster, tiny_file, tmp_path):
    start = time.monotonic()
    cmd = (sys.executable, "-m", "mhd_sim", "sweep", str(tiny_file), "--out", str(tmp_path / "s"),
           "--backend", "ray", "--address", f"{SUBNET}.99:6379")  # fmt: skip
    ran = cluster.run("w1", *cmd, cwd=cluster.root, timeout=60)
    assert ran.returncode == 2 and time.monotonic() - start < 30
    lines = [ln for ln in ran.stderr.splitlines() if ln.strip()]
    assert lines == [f"error: no Ray cluster answers at {SUBNET}.99:6379: start one there "
                     "(ray start --head) or give the head's address with --address"]  # fmt: skip


def test_the_head_lost_mid_sweep_is_one_line_exit_2_and_resumable(cluster, tiny_file, tmp_path):
    out = tmp_path / "sw"  # the driver on the worker node: it outlives the head
    driver = sweep(cluster, "w1", out, str(tiny_file), "--seeds", "4", start=True)
    try:
        wait_for(lambda: (out / "sweep.csv").exists() and "done" in set(index(out).status),
                 120, "a finished point")  # fmt: skip
        cluster.kill("head")
        _, stderr = driver.communicate(timeout=60)
    finally:
        driver.kill()
    assert driver.returncode == 2, stderr[-2000:]
    error = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(error) == 1 and f"lost the Ray cluster at {cluster.address}" in error[0]
    assert "the finished points are kept" in error[0] and "--resume" in error[0]
    done = list(index(out).point[index(out).status == "done"])
    assert done
    cluster.stop("w1")
    cluster.stop("head")
    cluster.add("head")
    cluster.add("w1")
    resumed = sweep(cluster, "head", out, "--resume", "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{len(done)} kept from before" in resumed.stdout
    assert list(index(out).status) == ["done"] * 4
