"""Named experiment plans for `python -m aecore train-all`.

* "report": what the submitted report (the PDF) reads: the three designs
  compared at equal epochs, the assignment's batch size, and the
  selected model trained the assignment's way (`final`).
* "beyond": what the HTML part "Beyond the assignment" adds to the
  report's runs (which it also reads): the extra architectures, the
  tutorial baselines, the studies and applications.
* "book": both; "fp32": the main comparison again in fp32 (the evidence
  for bf16); "smoke": a tiny stand-in that proves the machinery end to
  end in seconds.

Each of "report" and "beyond" is budgeted at 20 minutes on a 2-core CPU,
so epochs are few and equal within each comparison. `keep()` names the
runs whose weights the book loads; the others keep only their record
(config, history, test metrics).

The book's runs train under bf16 autocast (`PRECISION`); the tutorial
baselines keep fp32, as the tutorial does.
"""

from __future__ import annotations

from dataclasses import replace

from .config import DEFAULT_ACTIVATION, TrainConfig
from .errors import ConfigError

SEEDS = (0, 1, 2)
EPOCHS = 10                                  # every compared run
ARCHS = ("shallow", "deep", "conv")          # the three compared designs
PAIR = ("relu", "gelu")                      # each trained with both
STRONG = "resconv"                           # capacity in the convolutions
ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu")  # deep-MLP study
CODE_SIZES = (2, 16, 64)                     # conv code-size study
NOISE_LEVELS = (0.1, 0.2, 0.3, 0.5)          # denoising, [0, 1] scale
DENOISE_EPOCHS = 3                           # the conv AE as a denoiser
WIDE_NOISE = (0.1, 0.2, 0.5)                 # the wide denoiser's levels
WIDE_EPOCHS = 3
ASSIGNMENT_BATCH = 64                        # the assignment's DataLoader
FINAL_EPOCHS = 30                            # the selected model, at 64
ONE_CLASS_EPOCHS = 10
VAE_BETAS = (1.0, 0.1)
PRECISION = "bf16"                           # see the module docstring
DEFAULT_ACT = DEFAULT_ACTIVATION


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


def selected_runs() -> dict[str, list[TrainConfig]]:
    """Each design of the main comparison at its own activation."""
    main = main_runs()
    return {a: main[(a, DEFAULT_ACT[a])] for a in ARCHS}


def strong_run() -> TrainConfig:
    return TrainConfig(arch=STRONG, epochs=EPOCHS, precision=PRECISION)


def batch64_runs(act: str | None = None) -> dict[str, TrainConfig]:
    """The assignment's batch size, seed 0 of each architecture, at
    `act` (by default each design's own activation)."""
    return {arch: replace(selected(arch), activation=act or DEFAULT_ACT[arch],
                          batch_size=ASSIGNMENT_BATCH) for arch in ARCHS}


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


def final() -> TrainConfig:
    """The selected design trained the assignment's way: batch 64, and
    epochs enough for its validation MSE to flatten."""
    return replace(selected("conv"), batch_size=ASSIGNMENT_BATCH,
                   epochs=FINAL_EPOCHS)


def loader_twin() -> TrainConfig:
    """The selected design's batch-64 run (`batch64_runs`) fed by the
    assignment's own torchvision DataLoader, which serves the same
    batches as the preloaded tensors: the same model, or a bug."""
    return replace(batch64_runs()["conv"], loader="torchvision")


def tutorial_denoisers() -> dict[int, TrainConfig]:
    """The tutorial's denoiser, three seeds (one seed is not enough to
    compare it with the tutorial's figure)."""
    return {s: replace(tutorial_denoiser(), seed=s) for s in SEEDS}


def wide_denoisers() -> dict[float, TrainConfig]:
    """The wide convolutional denoiser (no narrow code) at each level."""
    return {s: TrainConfig(arch="denoiser", noise=s, epochs=WIDE_EPOCHS,
                           batch_size=ASSIGNMENT_BATCH, precision=PRECISION)
            for s in WIDE_NOISE}


def keep() -> list[TrainConfig]:
    """Runs whose weights the book loads."""
    return [selected(a) for a in ARCHS] + [
        final(), strong_run(), code_size_runs()[2], code_size_runs()[16],
        denoiser_runs()[0.2], tutorial_denoiser(), wide_denoisers()[0.2],
        *vae_runs().values()]


def _unique(runs) -> list[TrainConfig]:
    return list({c.name: c for c in runs}.values())


def report() -> list[TrainConfig]:
    runs = [c for cfgs in main_runs().values() for c in cfgs]
    runs += [final(), loader_twin()]
    runs += list(batch64_runs().values())
    return _unique(runs)


def beyond() -> list[TrainConfig]:
    runs = [strong_run(), tutorial_dense(), *tutorial_denoisers().values()]
    runs += list(activation_runs().values())
    runs += list(code_size_runs().values())
    runs += list(vae_runs().values())
    runs += list(denoiser_runs().values())
    runs += list(wide_denoisers().values())
    runs += list(one_class_runs().values())
    in_report = {c.name for c in report()}
    return [c for c in _unique(runs) if c.name not in in_report]


def book() -> list[TrainConfig]:
    return _unique(report() + beyond())


def fp32() -> list[TrainConfig]:
    """The main comparison in fp32: what the choice of bf16 rests on."""
    return [c for cfgs in main_runs("fp32").values() for c in cfgs]


def smoke() -> list[TrainConfig]:
    return [replace(c, epochs=1) for c in
            (TrainConfig(arch=a) for a in ("shallow", "deep", "conv", "vae"))]


PLANS = {"report": report, "beyond": beyond, "book": book, "fp32": fp32,
         "smoke": smoke}


def get(name: str) -> list[TrainConfig]:
    if name not in PLANS:
        raise ConfigError(f"unknown plan {name!r}; choose from "
                          f"{', '.join(PLANS)}")
    return PLANS[name]()


def keeps_weights(cfg: TrainConfig, plan: str) -> bool:
    """Whether train-all stores `cfg`'s weights: the book's plans keep
    only those the book loads, the fp32 plan none, the others all."""
    if plan == "fp32":
        return False
    if plan not in ("report", "beyond", "book"):
        return True
    return cfg.name in {c.name for c in keep()}


def estimated_seconds(cfg: TrainConfig) -> float:
    """A rough relative cost of training `cfg`, used only to order runs
    when no earlier record gives its time: forward FLOPs per image times
    images seen, with a per-batch overhead that favours large batches."""
    from . import describe, models
    model = models.build(cfg.arch, cfg.code_size, cfg.activation)
    images = 6000 if cfg.normal_class is not None else 54000
    per_image = describe.forward_flops(model) + 2e5 * 256 / cfg.batch_size
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
