"""A real multi-node Ray cluster on this machine, kept off its network interface.

Each node is a network namespace of its own (``ip netns``), joined to the others by a veth
pair into a bridge that lives in one more namespace: its address (10.231.0.x) exists only
inside those namespaces, so nothing it runs can reach or bind the machine's interface
address. Each node is started with Ray's own command line (``ray start``), one CPU, its own
temporary directory and a home of its own (a ``~/.ray`` token from another Ray cannot
interfere). Processes are found and killed by namespace (``ip netns pids``), never by name:
``ray stop`` would kill every Ray on the machine.

Used by ``tests/test_cluster.py`` and ``benchmarks/ray_overhead.py``; needs root and iproute2
(``why_not()`` says why not, in one line).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.231.0"
PORT = 6379
BIN = Path(sys.executable).parent


def why_not() -> str:
    """Empty when namespaces can be made here, else why not (one line)."""
    if os.name != "posix" or os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "no `ip` command (Debian's iproute2)"
    if not (BIN / "ray").exists():
        return "Ray is not installed (pip install 'mhd-sim[ray]')"
    probe = f"mhdprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Cluster:
    """``with Cluster() as c: c.add("head"); c.add("w1")``; the first node added is the head."""

    tag: str = field(default_factory=lambda: f"mhd{os.getpid()}")
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mhd-cluster-")))
    nodes: dict[str, str] = field(default_factory=dict)  # node name -> its address

    @property
    def bridge(self) -> str:
        return f"{self.tag}-net"

    def ns(self, node: str) -> str:
        return f"{self.tag}-{node}"

    @property
    def address(self) -> str:
        return f"{SUBNET}.1:{PORT}"

    def __enter__(self) -> Cluster:
        ip("netns", "add", self.bridge)
        ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        ip("-n", self.bridge, "link", "set", "br0", "up")
        (self.root / "home").mkdir(exist_ok=True)
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()

    def env(self, **more: str) -> dict[str, str]:
        """The environment of a Ray process or driver here: its own home, no usage stats, and
        (read by the head) a lost node noticed within seconds, not the default 15."""
        return {
            **os.environ,
            "HOME": str(self.root / "home"),
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_health_check_period_ms": "500",
            "RAY_health_check_failure_threshold": "4",
            **more,
        }

    def exec(self, node: str, *cmd: str, **kw) -> subprocess.Popen:
        """Start ``cmd`` inside ``node``'s namespace."""
        kw.setdefault("env", self.env())
        return subprocess.Popen(["ip", "netns", "exec", self.ns(node), *cmd], **kw)

    def run(self, node: str, *cmd: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("env", self.env())
        return subprocess.run(
            ["ip", "netns", "exec", self.ns(node), *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            **kw,
        )

    def add(self, node: str, cpus: int = 1, **env: str) -> str:
        """A namespace joined to the bridge and a Ray node started in it; its address."""
        k = len(self.nodes) + 1
        ns, addr = self.ns(node), f"{SUBNET}.{k}"
        if node not in self.nodes:
            ip("netns", "add", ns)
            ip("-n", self.bridge, "link", "add", f"p{k}", "type", "veth", "peer", "name", "eth0",
               "netns", ns)  # fmt: skip
            ip("-n", self.bridge, "link", "set", f"p{k}", "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
        else:
            addr = self.nodes[node]
        is_head = not self.nodes or node == next(iter(self.nodes))
        role = (
            ["--head", f"--port={PORT}", "--include-dashboard=false"]
            if is_head
            else [f"--address={self.address}"]
        )
        started = self.run(
            node,
            str(BIN / "ray"),
            "start",
            *role,
            f"--node-ip-address={addr}",
            f"--num-cpus={cpus}",
            f"--temp-dir={self.root / node}",
            "--object-store-memory=100000000",
            "--disable-usage-stats",
            env=self.env(**env),
        )
        if started.returncode:
            raise RuntimeError(f"ray start on {node}: {started.stderr.strip()[-600:]}")
        self.nodes[node] = addr
        return addr

    def pids(self, node: str) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.ns(node)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def kill(self, node: str, only: str | None = None) -> list[int]:
        """SIGKILL the node's processes (``only``: those whose command name starts so)."""
        killed = []
        for pid in self.pids(node):
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
                if only is None or name.startswith(only):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            except OSError:  # gone already
                pass
        return killed

    def stop(self, node: str, timeout: float = 20) -> None:
        """Kill every process of the node and wait until none is left."""
        end = time.monotonic() + timeout
        while self.pids(node) and time.monotonic() < end:
            self.kill(node)
            time.sleep(0.2)

    def inodes(self) -> dict[int, str]:
        """Each namespace of this cluster by its inode (what /proc/PID/ns/net links to)."""
        out = {}
        for name in [self.bridge, *map(self.ns, self.nodes)]:
            try:
                out[os.stat(f"/run/netns/{name}").st_ino] = name
            except OSError:
                pass
        return out

    def teardown(self) -> list[str]:
        """Stop every node, remove every namespace and the temporary directory; what is left
        (namespaces, and processes still inside them, found by namespace inode)."""
        inodes = self.inodes()
        for node in self.nodes:
            self.stop(node)
        for name in inodes.values():
            for _ in range(25):  # busy for a moment while the last process exits
                if not subprocess.run(["ip", "netns", "del", name], capture_output=True).returncode:
                    break
                time.sleep(0.2)
        shutil.rmtree(self.root, ignore_errors=True)
        left = [f"namespace {n}" for n in inodes.values() if Path(f"/run/netns/{n}").exists()]
        for proc in Path("/proc").iterdir():
            try:
                ino = int(os.readlink(proc / "ns/net").split("[")[1].rstrip("]"))
            except (OSError, ValueError, IndexError):
                continue
            if ino in inodes:
                left.append(f"process {proc.name} ({(proc / 'comm').read_text().strip()}) "
                            f"in {inodes[ino]}")  # fmt: skip
        return left
