"""Named experiment plans for `python -m aecore train-all`.

The "book" plan is every run the book reads; "smoke" is a tiny stand-in
that proves the machinery end to end in seconds. The whole book plan is
budgeted at 30 minutes on a 2-core CPU, so epochs are few and equal
within each comparison. `keep()` names the runs whose weights the book
loads; the others keep only their record (config, history, test metrics).

The book's runs train under bf16 autocast (`PRECISION`); the "fp32"
plan holds the main comparison again in fp32, the evidence that the
test MSE stays within 1 % (the Performance appendix shows both, and the
benchmark's speed-up). The two tutorial baselines keep fp32, as the
tutorial does.
"""

from __future__ import annotations

from dataclasses import replace

from .errors import ConfigError
from .train import TrainConfig

SEEDS = (0, 1, 2)
EPOCHS = 10                                  # every compared run
ARCHS = ("shallow", "deep", "conv")          # the three compared designs
PAIR = ("relu", "gelu")                      # each trained with both
STRONG = "resconv"                           # capacity in the convolutions
ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu")  # deep-MLP study
CODE_SIZES = (2, 16, 64)                     # conv code-size study
NOISE_LEVELS = (0.1, 0.2, 0.3, 0.5)          # denoising, [0, 1] scale
DENOISE_EPOCHS = 4
ONE_CLASS_EPOCHS = 8
VAE_BETAS = (1.0, 0.1)
PRECISION = "bf16"                           # see the module docstring
DEFAULT_ACT = {"shallow": "relu", "deep": "relu", "conv": "gelu",
               "resconv": "gelu"}


def main_runs(precision=PRECISION) -> dict[tuple[str, str],
                                           list[TrainConfig]]:
    """(architecture, activation) -> three seeds: the controlled
    comparison. Same code size, linear code, epochs, batch, schedule."""
    return {(arch, act): [TrainConfig(arch=arch, activation=act,
                                      epochs=EPOCHS, seed=s,
                                      precision=precision) for s in SEEDS]
            for arch in ARCHS for act in PAIR}


def selected(arch="conv") -> TrainConfig:
    """Seed 0 of an architecture at its own activation."""
    return TrainConfig(arch=arch, activation=DEFAULT_ACT[arch],
                       epochs=EPOCHS, precision=PRECISION)


def strong_run() -> TrainConfig:
    return TrainConfig(arch=STRONG, epochs=EPOCHS, precision=PRECISION)


def batch64_runs() -> dict[str, TrainConfig]:
    """The assignment's batch size, seed 0 of each architecture."""
    return {arch: replace(selected(arch), batch_size=64) for arch in ARCHS}


def activation_runs() -> dict[str, TrainConfig]:
    return {act: TrainConfig(arch="deep", activation=act, epochs=EPOCHS,
                             precision=PRECISION) for act in ACTIVATIONS}


def code_size_runs() -> dict[int, TrainConfig]:
    return {z: replace(selected("conv"), code_size=z) for z in CODE_SIZES}


def tutorial_dense() -> TrainConfig:
    """The TensorFlow tutorial's dense model at its own settings."""
    return TrainConfig(arch="tf-dense", epochs=10, batch_size=32, lr=1e-3,
                       schedule="constant")


def tutorial_denoiser() -> TrainConfig:
    """The tutorial's denoiser: one noisy copy at sigma 0.2."""
    return TrainConfig(arch="tf-denoiser", epochs=10, batch_size=32,
                       lr=1e-3, schedule="constant", noise=0.2,
                       fresh_noise=False)


def denoiser_runs() -> dict[float, TrainConfig]:
    """The conv design as a denoiser, fresh noise every batch."""
    return {s: replace(selected("conv"), noise=s, epochs=DENOISE_EPOCHS)
            for s in NOISE_LEVELS}


def one_class_runs() -> dict[int, TrainConfig]:
    """One model per class, trained on that class only (anomaly
    detection on the one-class protocol)."""
    return {c: replace(selected("conv"), normal_class=c,
                       epochs=ONE_CLASS_EPOCHS) for c in range(10)}


def vae_runs() -> dict[float, TrainConfig]:
    return {b: TrainConfig(arch="vae", epochs=EPOCHS, beta=b,
                           precision=PRECISION) for b in VAE_BETAS}


def keep() -> list[TrainConfig]:
    """Runs whose weights the book loads."""
    return [selected(a) for a in ARCHS] + [
        strong_run(), code_size_runs()[2], code_size_runs()[16],
        denoiser_runs()[0.2], tutorial_denoiser(), *vae_runs().values()]


def book() -> list[TrainConfig]:
    runs = [c for cfgs in main_runs().values() for c in cfgs]
    runs += [strong_run(), tutorial_dense(), tutorial_denoiser()]
    runs += list(batch64_runs().values())
    runs += list(activation_runs().values())
    runs += list(code_size_runs().values())
    runs += list(vae_runs().values())
    runs += list(denoiser_runs().values())
    runs += list(one_class_runs().values())
    unique = {c.name: c for c in runs}   # e.g. deep-relu s0 appears twice
    return list(unique.values())


def fp32() -> list[TrainConfig]:
    """The main comparison in fp32: what the choice of bf16 rests on."""
    return [c for cfgs in main_runs("fp32").values() for c in cfgs]


def smoke() -> list[TrainConfig]:
    return [replace(c, epochs=1) for c in
            (TrainConfig(arch=a) for a in ("shallow", "deep", "conv", "vae"))]


PLANS = {"book": book, "fp32": fp32, "smoke": smoke}


def get(name: str) -> list[TrainConfig]:
    if name not in PLANS:
        raise ConfigError(f"unknown plan {name!r}; choose from "
                          f"{', '.join(PLANS)}")
    return PLANS[name]()


def keeps_weights(cfg: TrainConfig, plan: str) -> bool:
    """Whether train-all stores `cfg`'s weights: the book plan keeps only
    those the book loads, the fp32 plan none, the others all."""
    if plan == "fp32":
        return False
    if plan != "book":
        return True
    return cfg.name in {c.name for c in keep()}


def estimated_seconds(cfg: TrainConfig) -> float:
    """A rough relative cost of training `cfg`, used only to order runs
    when no earlier record gives its time: forward FLOPs per image times
    images seen, with a per-batch overhead that favours large batches."""
    from . import models
    model = models.build(cfg.arch, cfg.code_size, cfg.activation)
    images = 6000 if cfg.normal_class is not None else 54000
    per_image = models.forward_flops(model) + 2e5 * 256 / cfg.batch_size
    return cfg.epochs * images * per_image / 1e9


def schedule(costs: dict[str, float], jobs: int) -> tuple[list[str], float]:
    """What `train-all --jobs` does with runs of these costs (seconds):
    longest first, each worker taking the next run as soon as it is free.
    Returns that order and the makespan (the wall time it predicts)."""
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    order = sorted(costs, key=lambda n: (-costs[n], n))
    busy = [0.0] * jobs
    for name in order:
        i = busy.index(min(busy))
        busy[i] += costs[name]
    return order, max(busy)
