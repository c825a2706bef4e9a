"""The same files on every machine: torch's CPU kernels are pinned (``learning/kernels.py``), so a
run's files do not depend on the instruction set torch would pick, nor on its thread count."""

import json
import os
import subprocess
import sys

import pytest

FILES = ("metrics.csv", "events.csv", "teachers.csv", "reach.csv")
# each library's own variable, as a machine of that level would leave it to choose
MACHINES = {
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": "AVX512",
               "DNNL_MAX_CPU_ISA": "AVX512_CORE"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"},
    "this machine": {},
}  # fmt: skip
PINS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "DNNL_MAX_CPU_ISA", "MHD_SIM_KERNELS")


def run(out, env: dict[str, str], *args: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in PINS}
    cmd = [sys.executable, "-m", "mhd_sim", "run", "straggler", "--out", str(out), "-q",
           "--no-plots", "--set", "duration=12", "--set", "eval.every=4", *args]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**base, **env})
    assert done.returncode == 0, done.stderr
    return json.loads((out / "summary.json").read_text())


def native_level() -> str:
    code = "import torch; print(torch.backends.cpu.get_cpu_capability().lower())"
    env = {k: v for k, v in os.environ.items() if k not in PINS}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120).stdout.strip()  # fmt: skip


@pytest.mark.slow  # seven short MHD runs in processes of their own
def test_a_run_gives_the_same_files_at_every_instruction_set_level_and_thread_count(tmp_path):
    """A short MHD run of the straggler scenario, in processes whose torch would pick AVX-512,
    AVX2 or this machine's kernels, per agent on one torch thread (and on two for AVX-512)
    and under ``auto``: every file byte-identical, and ``summary.json`` says which kernels
    ran. With the pin off (``MHD_SIM_KERNELS=native``), generic and AVX2 kernels give other
    files: the check sees a difference where there is one."""
    if native_level() == "default":
        pytest.skip("this processor has no AVX2: its kernels are the generic ones")
    ref = tmp_path / "ref"
    summary = run(ref, {}, "--set", "engine=per_agent")
    assert summary["kernels"] == {"mode": "portable", "aten": "avx2", "onednn": "AVX2",
                                  "mkl": "AVX2,STRICT", "held": True}  # fmt: skip
    runs = {f"{m}, per agent": (env, ["--set", "engine=per_agent"])
            for m, env in MACHINES.items() if m != "this machine"}  # fmt: skip
    two = ["--set", "engine=per_agent", "--threads", "2"]
    runs["avx512, per agent, 2 threads"] = (MACHINES["avx512"], two)
    runs["this machine, auto"] = ({}, ["--threads", "2"])
    for name, (env, args) in runs.items():
        out = tmp_path / name.replace(" ", "_").replace(",", "")
        assert run(out, env, *args)["kernels"]["aten"] == "avx2", name
        for f in FILES:
            assert (out / f).read_bytes() == (ref / f).read_bytes(), (name, f)
    native = {}
    for level in ("default", "avx2"):
        native[level] = tmp_path / f"native-{level}"
        env = {"MHD_SIM_KERNELS": "native", "ATEN_CPU_CAPABILITY": level}
        assert run(native[level], env, "--set", "engine=per_agent")["kernels"]["aten"] == level
    metrics = [(p / "metrics.csv").read_bytes() for p in native.values()]
    assert metrics[0] != metrics[1]


def test_a_run_says_so_when_the_pin_did_not_hold(tmp_path):
    """torch ran a kernel before mhd_sim was imported: the kernels are the machine's own, and
    ``ms.simulate`` warns in one line, and ``summary.json`` says so, where they differ from the
    pinned ones (on an AVX2 processor they are the same, and nothing is said)."""
    code = (
        "import sys, torch; torch.ones(3).softmax(0)\n"
        "import mhd_sim as ms\n"
        f"r = ms.simulate(ms.load('straggler', set={{'duration': 2}}), {str(tmp_path)!r},"
        " progress=False, plots=False, overwrite=True)\n"
        "print('HELD', r.summary['kernels']['held'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in PINS}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    level = native_level()
    warned = [ln for ln in done.stdout.splitlines() if ln.startswith("warning: torch runs")]
    assert (f"HELD {level == 'avx2'}" in done.stdout) and (len(warned) == (level != "avx2"))
    if warned:
        assert f"its {level} CPU kernels, not the avx2 ones mhd-sim pins" in warned[0]
