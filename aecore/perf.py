"""Process-level speed settings, applied once when aecore is imported.

glibc's malloc hands large blocks (activation buffers of a convolutional
batch are several MB) back to the system after every use and maps them
again on the next step. Raising its mmap and trim thresholds keeps them in
the heap (the benchmark measures what that buys: `settings_effect`).
The environment variables MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_
and MALLOC_TOP_PAD_ would do the same but only take effect at process
start, so aecore calls `mallopt` itself.

`--precision auto` is chosen by a timed probe per design and machine
(`auto_precision`), never by the CPU's feature flags; `--compile auto`
likewise (`auto_compile`), with the compile time counted against the
run's own number of steps.
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


def cache_path(kind: str = "precision") -> Path:
    """Where measured choices of `kind` are kept: one file per user and
    machine."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aecore" / f"{kind}.json"


def _read_cache(kind: str) -> dict:
    import json
    try:
        known = json.loads(cache_path(kind).read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return known if isinstance(known, dict) else {}


def _write_cache(kind: str, known: dict) -> None:
    import json
    path = cache_path(kind)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass                      # measured again next time


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


class _Probe:
    """Training steps of several configs on one random batch (CPU), for
    the timed probes below: `step(name, X)` times one step of config
    `name`, `medians(warmup, steps)` the configs taking turns."""

    def __init__(self, cfgs: dict, batch_size: int):
        import torch

        from . import train as trainer
        from .data import FashionMNIST, Split
        self.X = torch.rand(batch_size, 1, 28, 28) * 2 - 1
        split = Split(self.X, torch.zeros(batch_size, dtype=torch.long))
        data = FashionMNIST(split, split, split, "probe")
        self.cfgs = {k: c.resolved() for k, c in cfgs.items()}
        self.setups = {k: trainer.setup(c, data, "cpu")
                       for k, c in self.cfgs.items()}

    def step(self, name, X=None) -> float:
        import time

        from . import train as trainer
        X = self.X if X is None else X
        s, cfg = self.setups[name], self.cfgs[name]
        tick = time.perf_counter()
        # no schedule: a probe outlasts its one-batch data set's schedule
        trainer.train_step(s, cfg, X, X, schedule=False)
        return time.perf_counter() - tick

    def medians(self, warmup: int, steps: int) -> dict:
        times = {k: [] for k in self.setups}
        for i in range(warmup + steps):
            for k in self.setups:
                seconds = self.step(k)
                if i >= warmup:
                    times[k].append(seconds)
        return {k: sorted(t)[len(t) // 2] for k, t in times.items()}


def probe_precision(arch: str, batch_size: int, steps=PROBE_STEPS) -> dict:
    """Seconds per training step of `arch` at `batch_size` in fp32 and
    in bf16 autocast, taking turns, on random images (CPU)."""
    from .config import PRECISIONS, TrainConfig
    return _Probe({p: TrainConfig(arch=arch, precision=p,
                                  batch_size=batch_size) for p in PRECISIONS},
                  batch_size).medians(3, steps)


def auto_precision(device, arch: str = "conv", batch_size: int = 256,
                   log=None) -> str:
    """The CLI's `--precision auto`: on a CPU, what a short timed probe
    of this design at this batch size shows to be faster (bf16 only when
    at least `PROBE_MARGIN` times faster), measured once per machine and
    kept in `cache_path()`; fp32 on an accelerator. The book's fp32 plan
    shows both give the same test MSE within 1 % there."""
    if str(device).split(":")[0] != "cpu":
        return "fp32"
    tag = f"{machine_tag()} | {arch} | b{batch_size}"
    known = _read_cache("precision")
    if known.get(tag) not in ("fp32", "bf16"):
        seconds = probe_precision(arch, batch_size)
        known[tag] = ("bf16" if seconds["fp32"]
                      >= PROBE_MARGIN * seconds["bf16"] else "fp32")
        if log:
            log(f"precision probe, {arch} at batch {batch_size}: fp32 "
                f"{seconds['fp32'] * 1e3:.1f} ms/step, bf16 "
                f"{seconds['bf16'] * 1e3:.1f} ms/step: {known[tag]} "
                f"(kept in {cache_path('precision')})")
        _write_cache("precision", known)
    return known[tag]


def measured_precisions() -> dict:
    """Every choice `auto_precision` measured on this machine."""
    return _this_machine("precision")


def _this_machine(kind: str) -> dict:
    """The entries of cache `kind` measured on this machine, keyed by
    what follows the machine's tag."""
    tag, known = machine_tag(), _read_cache(kind)
    return {k.split(" | ", 3)[3]: v for k, v in known.items()
            if isinstance(k, str) and k.startswith(tag + " | ")}


COMPILE_PROBE_STEPS = 8   # timed steps each, eager and compiled


def probe_compile(arch: str, batch_size: int, precision: str = "fp32",
                  steps=COMPILE_PROBE_STEPS) -> dict:
    """What `torch.compile` costs and buys for `arch` at `batch_size` and
    `precision` (CPU, random images): `compile_s`, the seconds of the
    first compiled steps beyond an eager step's, at the batch size and at
    a second one (the epoch's last, smaller batch compiles again); then
    `eager_s` and `compiled_s`, the median seconds of a training step,
    taking turns. Where compiling fails (no C++ compiler, say), the
    answer is `{"error": message}`."""
    from .config import TrainConfig
    probe = _Probe({c: TrainConfig(arch=arch, precision=precision, compile=c,
                                   batch_size=batch_size)
                    for c in (False, True)}, batch_size)
    try:
        first = [probe.step(True),
                 probe.step(True, probe.X[:max(1, batch_size // 2 - 1)])]
    except Exception as e:        # noqa: BLE001 - any backend failure
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0]}"
                if str(e) else type(e).__name__}
    seconds = probe.medians(2, steps)
    eager, compiled = seconds[False], seconds[True]
    return {"compile_s": sum(first) - 2 * eager, "eager_s": eager,
            "compiled_s": compiled}


def pays_after(probe: dict) -> float | None:
    """The training steps after which a compiled run finishes sooner by
    `PROBE_MARGIN` (as for precision), its compile time counted; None
    when it never does (a failed compile, or compiled steps not faster
    by the margin)."""
    if "error" in probe:
        return None
    gain = probe["eager_s"] - PROBE_MARGIN * probe["compiled_s"]
    return PROBE_MARGIN * probe["compile_s"] / gain if gain > 0 else None


def compile_pays(probe: dict, steps: int) -> bool:
    """Whether a run of `steps` training steps is faster compiled."""
    after = pays_after(probe)
    return after is not None and steps >= after


def auto_compile(device, arch: str, batch_size: int, precision: str,
                 steps: int, log=None) -> bool:
    """The CLI's `--compile auto`: on a CPU, compile when `probe_compile`
    (measured once per machine, design, batch size and precision, kept
    in `cache_path("compile")`) shows that a run of `steps` training
    steps finishes sooner so; never on an accelerator (not measured)."""
    if str(device).split(":")[0] != "cpu":
        return False
    tag = f"{machine_tag()} | {arch} | b{batch_size} | {precision}"
    known = _read_cache("compile")
    probe = known.get(tag)
    if not (isinstance(probe, dict) and ("error" in probe or all(
            isinstance(probe.get(k), (int, float))
            for k in ("compile_s", "eager_s", "compiled_s")))):
        probe = known[tag] = probe_compile(arch, batch_size, precision)
        _write_cache("compile", known)
        if log:
            log(f"compile probe, {arch} at batch {batch_size}, {precision}: "
                + describe_compile(probe) + f" (kept in "
                f"{cache_path('compile')})")
    choice = compile_pays(probe, steps)
    if log:
        log(f"compile auto: {'on' if choice else 'off'} for {steps} steps")
    return choice


def describe_compile(probe: dict) -> str:
    if "error" in probe:
        return f"compiling failed ({probe['error']})"
    return (f"compile {probe['compile_s']:.1f} s, then "
            f"{probe['compiled_s'] * 1e3:.1f} ms/step against "
            f"{probe['eager_s'] * 1e3:.1f} eager")


def measured_compiles() -> dict:
    """Every probe `auto_compile` measured on this machine:
    "design | bN | precision" -> the probe."""
    return {k: v for k, v in _this_machine("compile").items()
            if isinstance(v, dict)}
