"""Process-level speed settings, applied once when aecore is imported.

glibc's malloc hands large blocks (activation buffers of a convolutional
batch are several MB) back to the system after every use and maps them
again on the next step. Raising its mmap and trim thresholds keeps them in
the heap (the benchmark measures what that buys: `settings_effect`).
The environment variables MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_
and MALLOC_TOP_PAD_ would do the same but only take effect at process
start, so aecore calls `mallopt` itself.

`--precision auto` is chosen by a timed probe per design and machine
(`auto_precision`), never by the CPU's feature flags.
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
    for line in _cpuinfo():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16() -> dict:
    """Which native bf16 instructions the CPU reports (Linux)."""
    flags = cpu_flags()
    return {"avx512_bf16": "avx512_bf16" in flags,
            "amx_bf16": "amx_bf16" in flags}


PROBE_STEPS = 12          # timed steps per precision (after 3 untimed)
PROBE_MARGIN = 1.05       # bf16 must be this much faster to be chosen


def cache_path() -> Path:
    """Where measured choices are kept: one file per user and machine."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aecore" / "precision.json"


def machine_tag() -> str:
    """What a measured choice holds for: CPU model, threads, torch."""
    import torch
    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo()
                  if line.startswith("model name")), "unknown cpu")
    return f"{model} | {torch.get_num_threads()} threads | " \
           f"torch {torch.__version__}"


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def probe_precision(arch: str, batch_size: int, steps=PROBE_STEPS) -> dict:
    """Seconds per training step of `arch` at `batch_size` in fp32 and
    in bf16 autocast, taking turns, on random images (CPU)."""
    import time

    import torch

    from . import train as trainer
    from .config import PRECISIONS, TrainConfig
    from .data import FashionMNIST, Split
    X = torch.rand(batch_size, 1, 28, 28) * 2 - 1
    split = Split(X, torch.zeros(batch_size, dtype=torch.long))
    data = FashionMNIST(split, split, split, "probe")
    setups = {p: trainer.setup(TrainConfig(arch=arch, precision=p,
                                           batch_size=batch_size).resolved(),
                               data, "cpu") for p in PRECISIONS}
    times = {p: [] for p in PRECISIONS}
    for i in range(3 + steps):
        for p, s in setups.items():
            cfg = TrainConfig(arch=arch, precision=p)
            tick = time.perf_counter()
            with trainer.autocast(cfg, "cpu"):
                loss, _ = trainer.objective(s.model, X, X, cfg.beta)
            s.opt.zero_grad(set_to_none=True)
            loss.backward()
            s.opt.step()
            if i >= 3:
                times[p].append(time.perf_counter() - tick)
    return {p: sorted(t)[len(t) // 2] for p, t in times.items()}


def auto_precision(device, arch: str = "conv", batch_size: int = 256,
                   log=None) -> str:
    """The CLI's `--precision auto`: on a CPU, what a short timed probe
    of this design at this batch size shows to be faster (bf16 only when
    at least `PROBE_MARGIN` times faster), measured once per machine and
    kept in `cache_path()`; fp32 on an accelerator. The book's fp32 plan
    shows both give the same test MSE within 1 % there."""
    import json
    if str(device).split(":")[0] != "cpu":
        return "fp32"
    path, tag = cache_path(), f"{machine_tag()} | {arch} | b{batch_size}"
    try:
        known = json.loads(path.read_text())
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError, RecursionError):
        known = {}
    if known.get(tag) not in ("fp32", "bf16"):
        seconds = probe_precision(arch, batch_size)
        known[tag] = ("bf16" if seconds["fp32"]
                      >= PROBE_MARGIN * seconds["bf16"] else "fp32")
        if log:
            log(f"precision probe, {arch} at batch {batch_size}: fp32 "
                f"{seconds['fp32'] * 1e3:.1f} ms/step, bf16 "
                f"{seconds['bf16'] * 1e3:.1f} ms/step: {known[tag]} "
                f"(kept in {path})")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known, indent=1))
            os.replace(tmp, path)
        except OSError:
            pass                  # measured again next time
    return known[tag]


def measured_precisions() -> dict:
    """Every choice `auto_precision` measured on this machine."""
    import json
    try:
        known = json.loads(cache_path().read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    tag = machine_tag()
    return {k.split(" | ", 3)[3]: v for k, v in known.items()
            if isinstance(k, str) and k.startswith(tag + " | ")} \
        if isinstance(known, dict) else {}
