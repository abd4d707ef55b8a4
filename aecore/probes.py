"""The benchmark's probes (sections 4 to 9 of `bench`): time to
quality, the process settings, the per-epoch evaluation, bf16 against
fp32, start-up, and runs side by side."""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import time

import torch

from . import data as fmnist
from . import metrics
from . import train as trainer
from .bench import (
    COMPARED,
    DEFAULTS,
    EVAL_EVERY,
    NOTES,
    SEED,
    TARGET_MSE,
    Settings,
    fresh,
    log,
    sync,
    warm_up,
)
from .benchtables import IMAGES_PER_EPOCH
from .config import PRECISIONS
from .errors import AecoreError

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
    X = data.train.X[:s.max_images]
    cfg, run = fresh(arch, X, device)
    total_steps = cfg.epochs * run.steps
    batches = (xb for _ in range(cfg.epochs)
               for xb in fmnist.batches(X, cfg.batch_size, run.gen))
    watch, curve, mse, step = Stopwatch(device), [], math.inf, 0
    watch.start()
    for step, xb in enumerate(batches, 1):
        trainer.train_step(run, cfg, xb, xb)
        over = watch.peek() > s.ttq_cap_s
        if step % EVAL_EVERY and step < total_steps and not over:
            continue
        watch.stop()                  # the evaluation is not timed
        mse = val_mse(run.model, data.val)
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
        "epochs": step / run.steps if reached else None,
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
    cfg, run = fresh(PROBE_ARCH, X, torch.device("cpu"))
    if channels_last:
        run.model = run.model.to(memory_format=torch.channels_last)
        X = X.contiguous(memory_format=torch.channels_last)
    for _ in range(3):
        trainer.train_step(run, cfg, X, X)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(run, cfg, X, X)
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
            code = ("import sys, aecore.probes as b; "
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


def timed_epoch(run: trainer.Setup, cfg, X, device) -> float:
    """Seconds of one `train.train_epoch` over X."""
    sync(device)
    start = time.perf_counter()
    trainer.train_epoch(run, cfg, X, device)
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
        cfg, run = fresh(arch, X, device, epochs=10 ** 4)
        warm_up(arch, X, device)
        train_s, eval_s = [], []
        for _ in range(s.repeats):
            train_s.append(timed_epoch(run, cfg, X, device))
            start = time.perf_counter()
            for split in subsets:
                trainer.evaluate(run.model, split, clf)
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
        state = {p: (*fresh(arch, X, device, epochs=epochs_,
                              precision=p), [])
                 for p in PRECISIONS}
        for _ in range(epochs_):
            for cfg, run, train_s in state.values():
                train_s.append(timed_epoch(run, cfg, X, device))
        out[arch] = {}
        for precision, (cfg, run, train_s) in state.items():
            start = time.perf_counter()
            with trainer.autocast(cfg, device):
                metrics_, _ = trainer.evaluate(run.model, data.val)
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
    torch.manual_seed(SEED)
    X = torch.rand(images, 1, 28, 28) * 2 - 1
    cfg, run = fresh(arch, X, cpu, precision=precision, epochs=10 ** 4)
    trainer.train_epoch(run, cfg, X[:3 * cfg.batch_size], cpu)   # warm
    start = time.perf_counter()
    trainer.train_epoch(run, cfg, X, cpu)
    return (time.perf_counter() - start) * IMAGES_PER_EPOCH / images


def _epochs_at_once(arch, images, threads, precision, n) -> list[float]:
    code = ("import aecore.probes as b; print(b.one_epoch("
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


