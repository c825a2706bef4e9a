"""Which CPU kernels torch runs, pinned so that every machine computes the same numbers.

torch picks its CPU kernels by the processor's instruction set: ATen's vectorised kernels
(softmax, reductions, elementwise maths) come in ``default``, ``avx2`` and ``avx512`` forms,
MKL's matrix products and oneDNN's convolutions choose their own code paths. The forms round
differently in the last bits, and training amplifies last-bit differences: the same scenario
and seed gave the demo's best head 0.695 on an AVX-512 machine and 0.724 on an AVX2 one.

So before torch runs its first kernel, mhd-sim caps all three at one level that nearly every
x86-64 processor of the last decade has (AVX2), through the environment variables each
library reads once: ``ATEN_CPU_CAPABILITY``, ``MKL_CBWR`` and ``DNNL_MAX_CPU_ISA``. MKL is
also asked for results that do not depend on its number of threads (``STRICT``): without it
a run with one torch thread and one with two differ too. A cap already set lower (an older
machine, emulated or real) is kept; a higher one is lowered. ``MHD_SIM_KERNELS=native``
leaves torch's own choice (results may then differ between machines and thread counts).
What ran is reported by :func:`in_use` and kept in ``summary.json`` (``kernels``); what the
pin costs: about 5% of the demo's time, measured on a quiet machine (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

# ATen's capability levels, lowest first, and the level every machine is capped at
LEVELS = ("default", "avx2", "avx512")
PORTABLE = "avx2"
# the levels of oneDNN and MKL up to the portable one (a cap set to one of these is kept)
_DNNL_UP_TO = ("SSE41", "AVX", "AVX2")
_MKL_UP_TO = ("COMPATIBLE", "SSE4_2", "AVX", "AVX2")


def mode() -> str:
    """``portable`` (the default) or ``native`` (``MHD_SIM_KERNELS=native``)."""
    return "native" if os.environ.get("MHD_SIM_KERNELS", "").lower() == "native" else "portable"


def pin() -> None:
    """Cap the three libraries at the portable level, unless ``MHD_SIM_KERNELS=native`` or a
    lower cap is already set. Only effective before torch runs its first kernel (each library
    reads its variable once): mhd-sim calls it when it is imported, and :func:`in_use` says
    whether it held."""
    if mode() == "native":
        return
    env = os.environ
    aten = env.get("ATEN_CPU_CAPABILITY", "").lower()
    if aten not in LEVELS or LEVELS.index(aten) > LEVELS.index(PORTABLE):
        env["ATEN_CPU_CAPABILITY"] = PORTABLE
    if env.get("DNNL_MAX_CPU_ISA", "").upper() not in _DNNL_UP_TO:
        env["DNNL_MAX_CPU_ISA"] = "AVX2"
    mkl = env.get("MKL_CBWR", "").upper().split(",")[0]
    env["MKL_CBWR"] = f"{mkl if mkl in _MKL_UP_TO else 'AVX2'},STRICT"


def in_use() -> dict[str, str]:
    """The kernels this process runs: the mode, ATen's level as torch reports it, and the
    oneDNN and MKL caps read from the environment (None where unset); ``held``: whether ATen
    runs the level mhd-sim pinned (false when torch had run a kernel before mhd-sim was
    imported, or on a processor below it)."""
    import torch

    level = torch.backends.cpu.get_cpu_capability().lower()
    out = {
        "mode": mode(),
        "aten": level,
        "onednn": os.environ.get("DNNL_MAX_CPU_ISA"),
        "mkl": os.environ.get("MKL_CBWR"),
    }
    if mode() == "portable":
        out["held"] = level == os.environ.get("ATEN_CPU_CAPABILITY", PORTABLE)
    return out


def warning() -> str | None:
    """One line when the pin did not hold in this process, else None."""
    if mode() == "native" or "torch" not in sys.modules:
        return None
    used = in_use()
    if used["held"]:
        return None
    want = os.environ.get("ATEN_CPU_CAPABILITY", PORTABLE)
    return (
        f"torch runs its {used['aten']} CPU kernels, not the {want} ones mhd-sim pins (torch "
        "ran a kernel before mhd_sim was imported, or this processor lacks them): this run's "
        "numbers may differ from other machines' (docs/system-model.md, Determinism)"
    )


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """torch on ``n`` threads for the block, then as the caller had it (a run must not leave
    its setting behind in a notebook or a test process)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
