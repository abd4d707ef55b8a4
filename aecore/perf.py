"""Process-level speed settings, applied once when aecore is imported.

glibc's malloc hands large blocks (activation buffers of a convolutional
batch are several MB) back to the system after every use and maps them
again on the next step. Raising its mmap and trim thresholds keeps them in
the heap; on a 2-core CPU this alone roughly halves a conv epoch (see the
Performance appendix). The environment variables MALLOC_MMAP_THRESHOLD_,
MALLOC_TRIM_THRESHOLD_ and MALLOC_TOP_PAD_ would do the same but only take
effect at process start, so aecore calls `mallopt` itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = {
    M_MMAP_THRESHOLD: 32 * 2**20,  # glibc's maximum on 64-bit systems
    M_TRIM_THRESHOLD: 2**30,
    M_TOP_PAD: 256 * 2**20,
}
_applied: bool | None = None


def tune_allocator() -> bool:
    """Apply the malloc settings (glibc only). Returns True if applied.

    Set AECORE_MALLOC_TUNING=0 to leave the allocator alone (the benchmark
    does this in a subprocess to measure what the setting buys).
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("AECORE_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (macOS, musl, Windows)
        return False
    _applied = all(mallopt(k, v) == 1 for k, v in SETTINGS.items())
    return _applied


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16() -> dict:
    """Which native bf16 instructions the CPU reports (Linux)."""
    flags = cpu_flags()
    return {"avx512_bf16": "avx512_bf16" in flags,
            "amx_bf16": "amx_bf16" in flags}


def auto_precision(device: str) -> str:
    """"bf16" on a CPU with native bf16 instructions, else "fp32" (also
    on an accelerator): the CLI's `--precision auto`."""
    cpu = str(device).split(":")[0] == "cpu"
    return "bf16" if cpu and any(native_bf16().values()) else "fp32"
