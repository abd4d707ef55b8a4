"""`python -m aecore bench`: how fast aecore trains, measured in one run.

Everything is measured on the same machine in the same process:

1. the hardware and software it ran on;
2. a ceiling: the best GFLOP/s of a square fp32 matrix product;
3. for every architecture, one full training epoch through
   * the seed pipeline: the assignment's torchvision `DataLoader`
     (`ToTensor` + `Normalize`, batch 64), as `data.seed_loader` builds it,
   * aecore's pipeline (the preloaded tensor cut by `data.batches`) at
     batch 64, the same batch size as the seed pipeline,
   * aecore's pipeline at its default batch size (`TrainConfig`);
   and, once per repeat, the same pipelines without training (data only);
4. time to quality: wall seconds of training with the default settings
   until the validation MSE first reaches 0.0089;
5. what the process settings buy (allocator, channels-last; CPU only);
6. the per-epoch evaluation's cost against the epoch's training steps,
   as `train.fit` runs both;
7. bf16 autocast against fp32: seconds per epoch and validation MSE after
   the same epochs from the same seed, for training and for evaluation;
8. start-up: the import time of aecore, of torch alone, and of
   `python -m aecore --help`, each in a fresh process.

The hardware line names the CPU model and whether it has native bf16
(AVX-512 BF16 or AMX); absolute times vary from machine to machine, only
the ratios measured side by side in one run compare.

Seconds per epoch are normalised to 60,000 images (time per image x
60,000): the seed loader covers the 60,000 training images, aecore's
training split 54,000. Achieved GFLOP/s count a training step as three
forward passes (forward, and backward at twice the forward's cost).

The result is written as JSON (`results/bench/<device>.json` by default)
and printed as a table (`benchtables` renders it, for the book too).
Run it on an otherwise idle machine: a second process on the same cores
makes small steps many times slower (threads wait for each other), so the
load average at the start is recorded with the hardware.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler, Subset

from . import data as fmnist
from . import describe, models, perf
from . import train as trainer
from .baselines import TF_TUTORIAL
from .benchtables import IMAGES_PER_EPOCH
from .config import TrainConfig
from .errors import AecoreError
from .files import results_root
from .results import atomic_save_json, code_version
from .runtime import pick_device

TARGET_MSE = TF_TUTORIAL["mse"]   # the tutorial's dense model, 10 epochs
EVAL_EVERY = 50       # steps between validation checks (time to quality)
SEED = 0
SEED_BATCH = 64       # the assignment's batch size
# the designs timed per epoch (the residual model and the tutorial baselines
# are timed by their stored runs)
ARCHS = ("shallow", "deep", "conv", "vae")
COMPARED = ("shallow", "deep", "conv")   # time to quality, eval, bf16
DEFAULTS = TrainConfig()
SEED_PIPE = f"seed@{SEED_BATCH}"
PIPELINES = {
    SEED_PIPE: "torchvision DataLoader, ToTensor + Normalize, batch "
               f"{SEED_BATCH}, shuffled (data.seed_loader)",
    f"aecore@{SEED_BATCH}": "preloaded tensor on the device, "
                            f"data.batches, batch {SEED_BATCH}",
    f"aecore@{DEFAULTS.batch_size}": "preloaded tensor on the device, "
                                     "data.batches, batch "
                                     f"{DEFAULTS.batch_size} (default)",
}
NOTES = {
    "s_per_epoch": "seconds per epoch normalised to 60,000 images "
                   "(seconds per image x 60,000); median, min and max "
                   "over the repeats",
    "gflops": "3 x forward FLOPs per image x images per second",
    "ratios": "seed pipeline's s_per_epoch / this pipeline's",
    "time_to_quality": "wall seconds of training only: the validation "
                       f"evaluations (every {EVAL_EVERY} steps, after the "
                       "last step and at the cap) are excluded from the "
                       "clock; curve rows are [step, seconds, val MSE]",
}


@dataclass(frozen=True)
class Settings:
    repeats: int = 3
    max_images: int | None = None   # None: whole training set
    matmul_size: int = 2048
    matmul_repeats: int = 9
    matmul_min_s: float = 0.25      # least time of one matmul measurement
    ttq_cap_s: float = 180.0
    smoke: bool = False

    @classmethod
    def from_args(cls, args) -> Settings:
        if args.smoke:
            return cls(repeats=1, max_images=1024, matmul_size=512,
                       matmul_repeats=3, matmul_min_s=0.02, ttq_cap_s=5.0,
                       smoke=True)
        return cls(repeats=args.repeats)


def log(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    """Wait for queued device work, so the clock sees all of it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# -- 1. hardware -------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):   # Windows
        return None


def hardware(device: torch.device) -> dict:
    accelerator = None
    if device.type == "cuda":
        accelerator = torch.cuda.get_device_name(device)
    return {
        "cpu": cpu_model(),
        "native_bf16": perf.native_bf16(),
        "precision_auto": perf.measured_precisions(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "accelerator": accelerator,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "malloc_tuned": perf.tune_allocator(),
        "load_average_1min": load_average(),
        "code_version": code_version(),
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


# -- 2. matmul ceiling -------------------------------------------------------

def matmul_ceiling(device: torch.device, s: Settings) -> dict:
    """Best GFLOP/s of `a @ b` over repeats, square fp32, after warm-up."""
    n = s.matmul_size
    g = torch.Generator().manual_seed(SEED)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)

    def timed(iters: int) -> float:
        sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            a @ b
        sync(device)
        return time.perf_counter() - start

    timed(3)                                      # warm-up
    iters = max(1, math.ceil(s.matmul_min_s / timed(1)))
    rates = [2 * n**3 * iters / timed(iters) / 1e9
             for _ in range(s.matmul_repeats)]
    # The ceiling is the best repeat: what the machine can do, not what it
    # did on average while something else was running.
    return {"size": n, "iters": iters, "repeats": s.matmul_repeats,
            "gflops": max(rates), "gflops_median": statistics.median(rates),
            "gflops_min": min(rates), "gflops_max": max(rates)}


# -- 3. epochs through each pipeline -----------------------------------------

def seed_pipeline(root, max_images: int | None) -> DataLoader:
    """The seed loader, or the same loader over its first `max_images`."""
    loader = fmnist.seed_loader(root, train=True, batch_size=SEED_BATCH)
    if max_images is None or max_images >= len(loader.dataset):
        return loader
    return DataLoader(
        Subset(loader.dataset, range(max_images)),
        batch_size=loader.batch_size,
        shuffle=isinstance(loader.sampler, RandomSampler),
        num_workers=loader.num_workers, pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
    )


def pipelines(loader: DataLoader, X: torch.Tensor) -> dict:
    """Pipeline name -> a function that starts one epoch of batches."""
    def seed():
        return (images for images, _labels in loader)

    def aecore(batch_size):
        def epoch():
            gen = torch.Generator().manual_seed(SEED)
            return fmnist.batches(X, batch_size, gen)
        return epoch

    names = list(PIPELINES)
    return {names[0]: seed, names[1]: aecore(SEED_BATCH),
            names[2]: aecore(DEFAULTS.batch_size)}


def fresh(arch: str, X: torch.Tensor, device, **options):
    """(config, `train.Setup`) of a new run of `arch` with `options` on
    the images `X`, built exactly as `train.fit` builds it."""
    cfg = TrainConfig(arch=arch, **options).resolved()
    split = fmnist.Split(X, torch.zeros(len(X), dtype=torch.long))
    data = fmnist.FashionMNIST(split, split, split, "bench")
    return cfg, trainer.setup(cfg, data, device)


def warm_up(arch: str, X: torch.Tensor, device, steps=3) -> None:
    """A few untimed steps per batch size: one-time costs stay out."""
    cfg, s = fresh(arch, X, device)
    for batch_size in (SEED_BATCH, DEFAULTS.batch_size):
        for _ in range(steps):
            trainer.train_step(s, cfg, X[:batch_size], X[:batch_size])
    sync(device)


def pipeline_epoch(arch: str, X, epoch, device) -> tuple[float, int]:
    """Seconds and images of one epoch of training a fresh model on the
    batches `epoch()` yields."""
    cfg, s = fresh(arch, X, device)
    total = torch.zeros((), device=device)
    images = 0
    sync(device)
    start = time.perf_counter()
    for xb in epoch():
        xb = xb.to(device)             # a no-op for aecore's batches
        total += trainer.train_step(s, cfg, xb, xb) * len(xb)
        images += len(xb)
    total.item()                       # one sync per epoch, as in fit
    sync(device)
    return time.perf_counter() - start, images


def data_epoch(epoch, device) -> tuple[float, int]:
    """Seconds and images of one epoch of batches, without training."""
    images = 0
    sync(device)
    start = time.perf_counter()
    for X in epoch():
        X = X.to(device)
        images += len(X)
    sync(device)
    return time.perf_counter() - start, images


def summarize(seconds: list[float], images: int, flops=None,
              ceiling=None) -> dict:
    per_epoch = [t / images * IMAGES_PER_EPOCH for t in seconds]
    median = statistics.median(per_epoch)
    row = {"images": images, "seconds": seconds, "s_per_epoch": median,
           "s_per_epoch_min": min(per_epoch),
           "s_per_epoch_max": max(per_epoch),
           "images_per_s": IMAGES_PER_EPOCH / median}
    if flops is not None:
        row["gflops"] = 3 * flops * row["images_per_s"] / 1e9
        row["ceiling_fraction"] = row["gflops"] / ceiling
    return row


def ratios(rows: dict) -> dict:
    seed = rows[SEED_PIPE]["s_per_epoch"]
    return {f"{SEED_PIPE}/{name}": seed / row["s_per_epoch"]
            for name, row in rows.items() if name != SEED_PIPE}


def epochs(data, root, device, s: Settings, ceiling: float) -> tuple:
    """Per-architecture rows and the data-only row."""
    X = data.train.X[:s.max_images]
    epoch = pipelines(seed_pipeline(root, s.max_images), X)
    archs = list(ARCHS)
    times = {a: {p: [] for p in epoch} for a in archs}
    data_times = {p: [] for p in epoch}
    images = {}
    for arch in archs:
        warm_up(arch, X, device)
    for r in range(1, s.repeats + 1):
        for name, start in epoch.items():
            seconds, images[name] = data_epoch(start, device)
            data_times[name].append(seconds)
        for arch in archs:
            for name, start in epoch.items():
                seconds, _ = pipeline_epoch(arch, X, start, device)
                times[arch][name].append(seconds)
                log(f"repeat {r}/{s.repeats} {arch:8s} {name:11s} "
                    f"{seconds:8.2f} s ({images[name]} images)")
    per_arch = {}
    for arch in archs:
        model = models.build(arch)
        flops = describe.forward_flops(model)
        rows = {name: summarize(times[arch][name], images[name], flops,
                                ceiling) for name in epoch}
        per_arch[arch] = {"params": describe.n_params(model),
                          "flops_per_image": flops, "pipelines": rows,
                          "ratios": ratios(rows)}
    rows = {name: summarize(data_times[name], images[name])
            for name in epoch}
    return per_arch, {"pipelines": rows, "ratios": ratios(rows)}


# -- the whole run -----------------------------------------------------------

def run(data, root, device: torch.device, s: Settings) -> dict:
    """Every measurement; `data` is already on `device`."""
    from . import probes
    result = {"smoke": s.smoke, "settings": asdict(s),
              "hardware": hardware(device), "notes": NOTES,
              "pipelines": PIPELINES}
    result["ceiling"] = matmul_ceiling(device, s)
    log(f"matmul ceiling {result['ceiling']['gflops']:.1f} GFLOP/s")
    per_arch, data_only = epochs(data, root, device, s,
                                 result["ceiling"]["gflops"])
    result["archs"], result["data_only"] = per_arch, data_only
    result["time_to_quality"] = probes.time_to_quality_all(data, device, s)
    if device.type == "cpu":
        result["settings_effect"] = probes.settings_effect(s)
    result["eval_overhead"] = probes.eval_overhead(data, device, s)
    result["precision"] = probes.precision_compare(data, device, s)
    if device.type == "cpu" and torch.get_num_threads() > 1:
        result["side_by_side"] = probes.side_by_side(device, s)
    result["startup"] = probes.import_times(1 if s.smoke else 3)
    return result


def output_path(args, device: torch.device) -> Path:
    if args.out:
        return Path(args.out)
    name = f"smoke-{device.type}" if args.smoke else device.type
    if getattr(args, "peer", False):
        name = f"peer-{name}"
    elif getattr(args, "compile", False):
        name = f"compile-{name}"
    return results_root(args.results) / "bench" / f"{name}.json"


def check_output(out: Path) -> None:
    """Fail in one line, before minutes of measuring, when the result
    could not be written."""
    if out.is_dir():
        raise AecoreError(f"--out {out} is a folder; name a JSON file")
    folder = out.parent
    while not folder.exists():      # the nearest folder that exists
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise AecoreError(f"cannot write {out}: {folder} is not a "
                          "writable folder")
    if out.exists() and not os.access(out, os.W_OK):
        raise AecoreError(f"cannot write {out}: permission denied")


def main(args) -> dict:
    device = pick_device(args.device)
    out = output_path(args, device)
    check_output(out)
    if getattr(args, "peer", False):
        return peer_main(args, device, out)
    if getattr(args, "compile", False):
        return compile_main(args, device, out)
    data = fmnist.load(args.data, device)   # data errors before slow work
    result = run(data, args.data, device, Settings.from_args(args))
    atomic_save_json(out, result)
    from .benchtables import report
    print(report(result))
    print(f"\nwritten to {out}")
    return result


def peer_main(args, device: torch.device, out: Path) -> dict:
    """`bench --peer`: TensorFlow's tutorial models beside aecore's
    rebuilds (`peer.measure`); `--smoke` makes it one short setting."""
    from . import peer
    from .benchtables import peer_report
    if device.type != "cpu":
        raise AecoreError("bench --peer compares CPU training; run it "
                          "with --device cpu")
    fmnist.load(args.data)                   # data errors before slow work
    options = (dict(batches=(256,), threads=[1], images=1000, epochs=2,
                    repeats=1, load=False) if args.smoke
               else dict(repeats=args.repeats))
    result = peer.measure(args.data, log=log, **options)
    result["hardware"] = hardware(device)
    if "skipped" not in result:
        atomic_save_json(out, result)
    print(peer_report(result))
    if "skipped" not in result:
        print(f"\nwritten to {out}")
    return result


COMPILE_CASES = tuple((arch, batch) for arch in ("shallow", "deep", "conv")
                      for batch in (256, 64))
_PROBE = ("import json, sys, torch; torch.set_num_threads(1); "
          "from aecore import perf; "
          "print(json.dumps(perf.probe_compile(*json.loads(sys.argv[1]))))")


def compile_main(args, device: torch.device, out: Path) -> dict:
    """`bench --compile`: `perf.probe_compile` for the three compared
    designs at batch 256 and 64 and the plans' precision, on one thread
    as `train-all` runs them, each in a fresh process with an empty
    compile cache (what a first run on a machine pays); `--smoke`
    probes the shallow design at batch 64 only."""
    import json
    import subprocess
    import tempfile

    from .benchtables import compile_report
    from .plan import PRECISION
    if device.type != "cpu":
        raise AecoreError("bench --compile probes CPU training; run it "
                          "with --device cpu")
    rows = []
    for arch, batch in COMPILE_CASES[1:2] if args.smoke else COMPILE_CASES:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache,
                   "OMP_NUM_THREADS": "1"}
            done = subprocess.run(
                [sys.executable, "-c", _PROBE,
                 json.dumps([arch, batch, PRECISION])],
                capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise AecoreError(f"the compile probe of {arch} failed: "
                              + (done.stderr.strip().splitlines() or
                                 ["no message"])[-1])
        probe = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append({"arch": arch, "batch": batch, **probe})
        log(f"{arch} at batch {batch}: {perf.describe_compile(probe)}")
    result = {"precision": PRECISION, "threads": 1, "rows": rows,
              "hardware": hardware(device)}
    atomic_save_json(out, result)
    print(compile_report(result))
    print(f"\nwritten to {out}")
    return result
