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
and printed as a table; `table(result)` renders stored JSON as Markdown.
Run it on an otherwise idle machine: a second process on the same cores
makes small steps many times slower (threads wait for each other), so the
load average at the start is recorded with the hardware.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler, Subset

from . import data as fmnist
from . import metrics, models, perf
from . import train as trainer
from .errors import AecoreError
from .results import atomic_save_json, code_version, results_root

IMAGES_PER_EPOCH = 60_000   # the seed loader's epoch; every time scales to it
TARGET_MSE = 0.0089   # TF "Intro to Autoencoders", dense model, 10 epochs
EVAL_EVERY = 50       # steps between validation checks (time to quality)
SEED = 0
SEED_BATCH = 64       # the assignment's batch size
# the designs timed per epoch (the residual model and the tutorial baselines
# are timed by their stored runs)
ARCHS = ("shallow", "deep", "conv", "vae")
COMPARED = ("shallow", "deep", "conv")   # time to quality, eval, bf16
DEFAULTS = trainer.TrainConfig()
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


def train_step(model, opt, X) -> torch.Tensor:
    """One step exactly as `train.fit` takes it (without the schedule)."""
    loss, _ = trainer.objective(model, X)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def new_model(arch: str, device):
    torch.manual_seed(SEED)
    model = models.build(arch).to(device)
    return model, trainer.make_optimizer(model, DEFAULTS.lr, device)


def warm_up(arch: str, X: torch.Tensor, device, steps=3) -> None:
    """A few untimed steps per batch size: one-time costs stay out."""
    model, opt = new_model(arch, device)
    for batch_size in (SEED_BATCH, DEFAULTS.batch_size):
        for _ in range(steps):
            train_step(model, opt, X[:batch_size])
    sync(device)


def train_epoch(arch: str, epoch, device) -> tuple[float, int]:
    """Seconds and images of one epoch of training a fresh model."""
    model, opt = new_model(arch, device)
    total = torch.zeros((), device=device)
    images = 0
    sync(device)
    start = time.perf_counter()
    for X in epoch():
        X = X.to(device)             # a no-op for aecore's batches
        total += train_step(model, opt, X) * len(X)
        images += len(X)
    total.item()                     # one sync per epoch, as in fit
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
                seconds, _ = train_epoch(arch, start, device)
                times[arch][name].append(seconds)
                log(f"repeat {r}/{s.repeats} {arch:8s} {name:11s} "
                    f"{seconds:8.2f} s ({images[name]} images)")
    per_arch = {}
    for arch in archs:
        model = models.build(arch)
        flops = models.forward_flops(model)
        rows = {name: summarize(times[arch][name], images[name], flops,
                                ceiling) for name in epoch}
        per_arch[arch] = {"params": models.n_params(model),
                          "flops_per_image": flops, "pipelines": rows,
                          "ratios": ratios(rows)}
    rows = {name: summarize(data_times[name], images[name])
            for name in epoch}
    return per_arch, {"pipelines": rows, "ratios": ratios(rows)}


# -- 4. time to quality ------------------------------------------------------

class Stopwatch:
    """Adds up the wall time between `start` and `stop`."""

    def __init__(self, device):
        self.device, self.total, self._start = device, 0.0, None

    def start(self):
        self._start = time.perf_counter()

    def stop(self):
        sync(self.device)
        self.total += time.perf_counter() - self._start
        self._start = None

    def peek(self) -> float:
        """The total so far, without waiting for the device."""
        running = 0.0
        if self._start is not None:
            running = time.perf_counter() - self._start
        return self.total + running


def val_mse(model, val: fmnist.Split) -> float:
    """Validation MSE on the [0, 1] scale (eval mode, inference mode)."""
    X_hat = metrics.reconstruct(model, val.X)
    return metrics.per_image_mse(X_hat, val.X).mean().item()


def time_to_quality(arch, data, device, s: Settings) -> dict:
    """Train as `train.fit` does (default config, one-cycle schedule)
    until the validation MSE reaches TARGET_MSE or the clock the cap."""
    cfg = trainer.TrainConfig(arch=arch).resolved()
    X = data.train.X[:s.max_images]
    torch.manual_seed(cfg.seed)
    model = models.build(arch, cfg.code_size, cfg.activation).to(device)
    opt = trainer.make_optimizer(model, cfg.lr, device)
    per_epoch = math.ceil(len(X) / cfg.batch_size)
    total_steps = cfg.epochs * per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=total_steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    batches = (xb for _ in range(cfg.epochs)
               for xb in fmnist.batches(X, cfg.batch_size, gen))
    watch, curve, mse, step = Stopwatch(device), [], math.inf, 0
    watch.start()
    for step, xb in enumerate(batches, 1):
        train_step(model, opt, xb)
        sched.step()
        over = watch.peek() > s.ttq_cap_s
        if step % EVAL_EVERY and step < total_steps and not over:
            continue
        watch.stop()                  # the evaluation is not timed
        mse = val_mse(model, data.val)
        curve.append([step, watch.total, mse])
        if mse <= TARGET_MSE or over:
            break
        watch.start()
    reached = mse <= TARGET_MSE and watch.total <= s.ttq_cap_s
    stopped = ("target" if reached
               else "cap" if watch.total > s.ttq_cap_s else "epochs")
    return {
        "reached": reached, "stopped": stopped,
        "seconds": watch.total if reached else None,
        "epochs": step / per_epoch if reached else None,
        "steps": step if reached else None,
        "val_mse": mse, "train_seconds": watch.total, "steps_run": step,
        "curve": curve,
    }


def time_to_quality_all(data, device, s: Settings) -> dict:
    out = {}
    for arch in COMPARED:
        out[arch] = time_to_quality(arch, data, device, s)
        log(f"time to quality {arch}: {out[arch]['stopped']} after "
            f"{out[arch]['train_seconds']:.1f} s")
    return {"target_val_mse": TARGET_MSE, "cap_s": s.ttq_cap_s,
            "eval_every": EVAL_EVERY, "batch_size": DEFAULTS.batch_size,
            "lr": DEFAULTS.lr, "epochs": DEFAULTS.epochs,
            "note": NOTES["time_to_quality"], "archs": out}


# -- 5. what the process settings buy ---------------------------------------

PROBE_ARCH = "conv"


def probe(steps: int, channels_last: bool) -> float:
    """Seconds per step of the conv model at the default batch size, in
    this process (whose allocator setting came from the environment)."""
    X = torch.randn(DEFAULTS.batch_size, 1, 28, 28).clamp(-1, 1)
    model, opt = new_model(PROBE_ARCH, torch.device("cpu"))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        X = X.contiguous(memory_format=torch.channels_last)
    for _ in range(3):
        train_step(model, opt, X)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, opt, X)
    return (time.perf_counter() - start) / steps


def settings_effect(s: Settings) -> dict:
    """Conv seconds per epoch with the allocator tuning off and on, and
    with channels-last memory off and on; each in a fresh process, since
    the allocator is set once per process."""
    steps = 3 if s.smoke else 40
    batches = math.ceil(IMAGES_PER_EPOCH / DEFAULTS.batch_size)
    out = {}
    for tuned in ("0", "1"):
        for cl in (False, True):
            code = ("import sys, aecore.bench as b; "
                    f"print(b.probe({steps}, {cl}))")
            env = {**os.environ, "AECORE_MALLOC_TUNING": tuned}
            done = subprocess.run([sys.executable, "-c", code], env=env,
                                  capture_output=True, text=True,
                                  check=True)
            key = (f"malloc_tuning={'on' if tuned == '1' else 'off'}, "
                   f"channels_last={'on' if cl else 'off'}")
            out[key] = float(done.stdout.split()[-1]) * batches
    log("settings: " + ", ".join(f"{k}: {v:.2f} s/epoch"
                                 for k, v in out.items()))
    return {"arch": PROBE_ARCH, "batch_size": DEFAULTS.batch_size,
            "steps": steps, "s_per_epoch": out}


# -- 6. evaluation overhead --------------------------------------------------


def timed_epoch(model, opt, sched, X, cfg, gen, device) -> float:
    """Seconds of one `train.train_epoch` over X."""
    sync(device)
    start = time.perf_counter()
    trainer.train_epoch(model, opt, sched, X, None, cfg, gen, device)
    sync(device)
    return time.perf_counter() - start


def eval_overhead(data, device, s: Settings) -> dict:
    """Per architecture: seconds of one epoch's training steps and of one
    per-epoch evaluation as `train.fit` runs it (two fixed subsets with
    the reference classifier), and their ratio."""
    from . import classifier as ref
    clf = ref.ReferenceCNN().to(device).eval().to(
        memory_format=torch.channels_last)
    n_eval = ref.eval_size(len(data.train))
    subsets = [data.train.head(n_eval), data.val.head(trainer.EVAL_SIZE)]
    X = data.train.X[:s.max_images] if s.max_images else data.train.X
    out = {}
    for arch in COMPARED:
        cfg = trainer.TrainConfig(arch=arch).resolved()
        model, opt = new_model(arch, device)
        sched = trainer.make_schedule(opt, cfg, 10 ** 6)
        gen = torch.Generator().manual_seed(SEED)
        warm_up(arch, X, device)
        train_s, eval_s = [], []
        for _ in range(s.repeats):
            train_s.append(timed_epoch(model, opt, sched, X, cfg, gen,
                                       device))
            start = time.perf_counter()
            for split in subsets:
                trainer.evaluate(model, split, clf)
            sync(device)
            eval_s.append(time.perf_counter() - start)
        t, e = statistics.median(train_s), statistics.median(eval_s)
        out[arch] = {"train_s": t, "eval_s": e, "ratio": e / t,
                     "images": len(X), "eval_images": sum(map(len, subsets))}
        log(f"{arch}: epoch {t:.2f} s, evaluation {e:.2f} s ({e / t:.0%})")
    return out


# -- 7. bf16 against fp32 ----------------------------------------------------

def precision_compare(data, device, s: Settings) -> dict:
    """Per architecture and precision: median seconds per training epoch
    and per evaluation of the validation split, and the validation MSE
    after the same epochs from the same seed (one-cycle schedule). The
    two precisions take turns epoch by epoch, so a machine whose speed
    drifts during the run (a shared host) slows both alike."""
    epochs_ = 1 if s.smoke else 2
    X = data.train.X[:s.max_images] if s.max_images else data.train.X
    out = {}
    for arch in COMPARED:
        state = {}
        for precision in trainer.PRECISIONS:
            cfg = trainer.TrainConfig(arch=arch, epochs=epochs_,
                                      precision=precision).resolved()
            torch.manual_seed(SEED)
            model = models.build(arch).to(device)
            opt = trainer.make_optimizer(model, cfg.lr, device)
            steps = math.ceil(len(X) / cfg.batch_size)
            sched = trainer.make_schedule(opt, cfg, steps)
            gen = torch.Generator().manual_seed(SEED)
            state[precision] = (cfg, model, opt, sched, gen, [])
        for _ in range(epochs_):
            for cfg, model, opt, sched, gen, train_s in state.values():
                train_s.append(timed_epoch(model, opt, sched, X, cfg, gen,
                                           device))
        out[arch] = {}
        for precision, (cfg, model, _, _, _, train_s) in state.items():
            start = time.perf_counter()
            with trainer.autocast(cfg, device):
                metrics_, _ = trainer.evaluate(model, data.val)
            sync(device)
            out[arch][precision] = {
                "s_per_epoch": statistics.median(train_s) * len(data.train)
                / len(X), "eval_s": time.perf_counter() - start,
                "val_mse": metrics_["mse"], "epochs": epochs_}
        f, b = out[arch]["fp32"], out[arch]["bf16"]
        log(f"{arch}: fp32 {f['s_per_epoch']:.2f} s/epoch, val MSE "
            f"{f['val_mse']:.5f}; bf16 {b['s_per_epoch']:.2f} s/epoch, "
            f"val MSE {b['val_mse']:.5f}")
    return out


# -- 8. start-up -----------------------------------------------------------

def import_times(repeats=3) -> dict:
    """Median wall seconds, each in a fresh process, of `import aecore`,
    `import torch`, and `python -m aecore --help`."""
    timer = ("import time; t = time.perf_counter(); import {m}; "
             "print(time.perf_counter() - t)")
    out = {}
    for name, module in (("import aecore", "aecore"),
                         ("import torch", "torch")):
        runs = [float(subprocess.run(
            [sys.executable, "-c", timer.format(m=module)],
            capture_output=True, text=True, check=True).stdout)
            for _ in range(repeats)]
        out[name] = statistics.median(runs)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "aecore", "--help"],
                       capture_output=True, check=True)
        runs.append(time.perf_counter() - start)
    out["python -m aecore --help"] = statistics.median(runs)
    log("start-up: " + ", ".join(f"{k} {v:.2f} s" for k, v in out.items()))
    return out


# -- 9. runs side by side (train-all --jobs) -------------------------------

def one_epoch(arch: str, images: int, threads: int, precision: str) -> float:
    """Seconds of one `train.train_epoch` of `arch`, scaled to a 60,000-
    image epoch, with `threads` CPU threads, in this process."""
    torch.set_num_threads(threads)
    cpu = torch.device("cpu")
    cfg = trainer.TrainConfig(arch=arch, precision=precision).resolved()
    torch.manual_seed(SEED)
    X = torch.rand(images, 1, 28, 28) * 2 - 1
    model, opt = new_model(arch, cpu)
    sched = trainer.make_schedule(opt, cfg, 10 ** 6)
    gen = torch.Generator().manual_seed(SEED)
    warm = X[:3 * cfg.batch_size]
    trainer.train_epoch(model, opt, sched, warm, None, cfg, gen, cpu)
    start = time.perf_counter()
    trainer.train_epoch(model, opt, sched, X, None, cfg, gen, cpu)
    return (time.perf_counter() - start) * IMAGES_PER_EPOCH / images


def _epochs_at_once(arch, images, threads, precision, n) -> list[float]:
    code = ("import aecore.bench as b; print(b.one_epoch("
            f"{arch!r}, {images}, {threads}, {precision!r}))")
    procs = [subprocess.Popen([sys.executable, "-c", code],
                              stdout=subprocess.PIPE, text=True)
             for _ in range(n)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise AecoreError(f"side-by-side probe of {arch} failed")
    return [float(o.split()[-1]) for o in outs]


def side_by_side(device, s: Settings, cores: int | None = None) -> dict:
    """What `train-all --jobs` buys on a CPU: per architecture, the
    seconds of a training epoch (the plan's precision) as one run with
    all the threads, and as one of `cores` runs with one thread each,
    started together, each in a fresh process. The two take turns, so a
    drifting machine slows both alike; the gain is the throughput ratio."""
    from . import plan
    cores = cores or torch.get_num_threads()
    images = 512 if s.smoke else 54_000
    out = {"cores": cores, "precision": plan.PRECISION, "archs": {}}
    for arch in COMPARED:
        solo, apart = [], []
        for _ in range(s.repeats):
            solo += _epochs_at_once(arch, images, cores, plan.PRECISION, 1)
            apart.append(statistics.mean(_epochs_at_once(
                arch, images, 1, plan.PRECISION, cores)))
        a, b = statistics.median(solo), statistics.median(apart)
        out["archs"][arch] = {"one_run_s": a, "each_of_n_s": b,
                              "gain": a * cores / b}
        log(f"{arch}: one run on {cores} threads {a:.2f} s/epoch; "
            f"{cores} runs on one thread each {b:.2f} s/epoch each "
            f"(throughput x{a * cores / b:.2f})")
    return out


# -- the whole run -----------------------------------------------------------

def run(data, root, device: torch.device, s: Settings) -> dict:
    """Every measurement; `data` is already on `device`."""
    result = {"smoke": s.smoke, "settings": asdict(s),
              "hardware": hardware(device), "notes": NOTES,
              "pipelines": PIPELINES}
    result["ceiling"] = matmul_ceiling(device, s)
    log(f"matmul ceiling {result['ceiling']['gflops']:.1f} GFLOP/s")
    per_arch, data_only = epochs(data, root, device, s,
                                 result["ceiling"]["gflops"])
    result["archs"], result["data_only"] = per_arch, data_only
    result["time_to_quality"] = time_to_quality_all(data, device, s)
    if device.type == "cpu":
        result["settings_effect"] = settings_effect(s)
    result["eval_overhead"] = eval_overhead(data, device, s)
    result["precision"] = precision_compare(data, device, s)
    if device.type == "cpu" and torch.get_num_threads() > 1:
        result["side_by_side"] = side_by_side(device, s)
    result["startup"] = import_times(1 if s.smoke else 3)
    return result


def output_path(args, device: torch.device) -> Path:
    if args.out:
        return Path(args.out)
    name = f"smoke-{device.type}" if args.smoke else device.type
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
    device = trainer.pick_device(args.device)
    out = output_path(args, device)
    check_output(out)
    data = fmnist.load(args.data, device)   # data errors before slow work
    result = run(data, args.data, device, Settings.from_args(args))
    atomic_save_json(out, result)
    print(report(result))
    print(f"\nwritten to {out}")
    return result


# -- tables ------------------------------------------------------------------

def fmt_num(x: float) -> str:
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}" if x >= 1 else f"{x:.3f}"


def fmt_epoch(row: dict) -> str:
    """Median seconds and the half-range in percent of it."""
    half = (row["s_per_epoch_max"] - row["s_per_epoch_min"]) / 2
    return (f"{fmt_num(row['s_per_epoch'])} "
            f"±{100 * half / row['s_per_epoch']:.0f}%")


def ratio_cells(ratios: dict, names: list[str]) -> list[str]:
    return [fmt_num(ratios[f"{names[0]}/{n}"]) for n in names[1:]]


def speed_rows(result: dict) -> list[list[str]]:
    """Header and one row per architecture, then the data-only row; the
    throughput columns are those of aecore's default pipeline."""
    names = list(result["pipelines"])
    main_pipe = names[-1]
    def show(n):          # "seed@64" -> "DataLoader, b64"
        who, batch = n.split("@")
        return f"{'DataLoader' if who == 'seed' else who}, b{batch}"

    header = ["arch", *(show(n) for n in names),
              *(f"speed-up, b{n.split('@')[-1]}" for n in names[1:]),
              "img/s", "GFLOP/s", "% ceiling"]
    rows = [header]
    for arch, r in result["archs"].items():
        p = r["pipelines"]
        rows.append([
            arch, *(fmt_epoch(p[n]) for n in names),
            *ratio_cells(r["ratios"], names),
            f"{p[main_pipe]['images_per_s']:,.0f}",
            f"{p[main_pipe]['gflops']:.1f}",
            f"{100 * p[main_pipe]['ceiling_fraction']:.1f}",
        ])
    d = result["data_only"]
    rows.append(["data only", *(fmt_epoch(d["pipelines"][n]) for n in names),
                 *ratio_cells(d["ratios"], names),
                 f"{d['pipelines'][main_pipe]['images_per_s']:,.0f}",
                 "–", "–"])
    return rows


def quality_rows(result: dict) -> list[list[str]]:
    ttq = result["time_to_quality"]
    rows = [["arch", f"s to {ttq['target_val_mse']}", "epochs", "steps",
             "last val MSE"]]
    for arch, r in ttq["archs"].items():
        if r["reached"]:
            cells = [fmt_num(r["seconds"]), f"{r['epochs']:.2f}",
                     str(r["steps"])]
        else:
            cells = [f"not reached ({r['stopped']})", "–", "–"]
        rows.append([arch, *cells, f"{r['val_mse']:.5f}"])
    return rows


def fixed_width(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join([row[0].ljust(widths[0]),
                   *(c.rjust(w) for c, w in zip(row[1:], widths[1:]))])
        for row in rows)


def markdown(rows: list[list[str]]) -> str:
    """The rows as a pipe table for the book (a wide one is set smaller
    in the PDF; see `text.fit_width`)."""
    from .text import markdown_table
    return markdown_table(rows[0], rows[1:]).data


def speed_caption(result: dict) -> str:
    names = list(result["pipelines"])
    return (f"Seconds per epoch of {IMAGES_PER_EPOCH:,} images, median "
            f"±half-range over {result['settings']['repeats']} repeat(s); "
            f"xN: {names[0]} time / aecore@N time; img/s, GFLOP/s and "
            f"% of the matmul ceiling for {names[-1]}.")


def quality_caption(result: dict) -> str:
    t = result["time_to_quality"]
    return (f"Training seconds until the validation MSE ([0, 1] scale) "
            f"first reaches {t['target_val_mse']} (checked every "
            f"{t['eval_every']} steps, evaluation time excluded), batch "
            f"{t['batch_size']}, lr {t['lr']}, one-cycle over "
            f"{t['epochs']} epochs, cap {t['cap_s']:g} s.")


def hardware_line(result: dict) -> str:
    h = result["hardware"]
    accelerator = f" ({h['accelerator']})" if h.get("accelerator") else ""
    bf = h.get("native_bf16", {})
    native = ", ".join(k for k, v in bf.items() if v) or "none"
    return (f"{h['date']}  {h['cpu']} (native bf16: {native}), "
            f"{h['threads']} threads, torch "
            f"{h['torch']}, device {h['device']}{accelerator}, malloc "
            f"tuning {'on' if h['malloc_tuned'] else 'off'}")


def ceiling_line(result: dict) -> str:
    c = result["ceiling"]
    return (f"matmul ceiling: {c['size']}×{c['size']} fp32, "
            f"{c['gflops']:.1f} GFLOP/s (best of {c['repeats']}; median "
            f"{c['gflops_median']:.1f}, min {c['gflops_min']:.1f})")


def report(result: dict) -> str:
    """The fixed-width report printed to the terminal."""
    smoke = "  [smoke run: numbers prove it runs, nothing more]"
    return "\n".join([
        hardware_line(result) + (smoke if result["smoke"] else ""),
        ceiling_line(result), "",
        speed_caption(result), fixed_width(speed_rows(result)), "",
        quality_caption(result), fixed_width(quality_rows(result)),
        "", *settings_lines(result), "",
        "per-epoch evaluation against the epoch's training steps:",
        fixed_width(overhead_rows(result)), "",
        "bf16 autocast against fp32 (same seed and epochs):",
        fixed_width(precision_rows(result)), "",
        *side_by_side_lines(result),
        "start-up, fresh processes: " + ", ".join(
            f"{k} {v:.2f} s" for k, v in result["startup"].items()),
    ])


def overhead_rows(result: dict) -> list[list[str]]:
    rows = [["arch", "train s/epoch", "eval s", "eval / train"]]
    for arch, r in result["eval_overhead"].items():
        rows.append([arch, fmt_num(r["train_s"]), fmt_num(r["eval_s"]),
                     f"{r['ratio']:.0%}"])
    return rows


def precision_rows(result: dict) -> list[list[str]]:
    from .text import signed
    rows = [["arch", "fp32 s/epoch", "bf16 s/epoch", "fp32/bf16",
             "fp32 eval s", "bf16 eval s", "fp32 val MSE", "bf16 val MSE",
             "MSE change"]]
    for arch, r in result["precision"].items():
        f, b = r["fp32"], r["bf16"]
        rows.append([arch, fmt_num(f["s_per_epoch"]),
                     fmt_num(b["s_per_epoch"]),
                     f"{f['s_per_epoch'] / b['s_per_epoch']:.2f}",
                     fmt_num(f["eval_s"]), fmt_num(b["eval_s"]),
                     f"{f['val_mse']:.5f}", f"{b['val_mse']:.5f}",
                     signed(b["val_mse"] / f["val_mse"] - 1, "+.1%")])
    return rows


def side_by_side_rows(result: dict) -> list[list[str]]:
    r = result["side_by_side"]
    n = r["cores"]
    rows = [["arch", f"1 run, {n} threads: s/epoch",
             f"{n} runs, 1 thread: s/epoch each", "throughput gain"]]
    for arch, a in r["archs"].items():
        rows.append([arch, fmt_num(a["one_run_s"]),
                     fmt_num(a["each_of_n_s"]), f"{a['gain']:.2f}"])
    return rows


def side_by_side_lines(result: dict) -> list[str]:
    if "side_by_side" not in result:
        return []
    return [f"runs side by side ({result['side_by_side']['precision']}, "
            "fresh processes, taking turns):",
            fixed_width(side_by_side_rows(result)), ""]


def settings_lines(result: dict) -> list[str]:
    effect = result.get("settings_effect")
    if not effect:
        return []
    return [f"{effect['arch']} at batch {effect['batch_size']}, s/epoch: "
            + "; ".join(f"{k}: {v:.2f}"
                        for k, v in effect["s_per_epoch"].items())]


def table(result: dict) -> str:
    """Stored benchmark JSON as Markdown: the speed table, then the
    time-to-quality table."""
    return "\n\n".join([markdown(speed_rows(result)),
                        markdown(quality_rows(result))])
