"""Named experiment plans for `python -m aecore train-all`.

The "book" plan is every run the book reads; "smoke" is a tiny stand-in
that proves the machinery end to end in seconds.
"""

from __future__ import annotations

from dataclasses import replace

from .errors import ConfigError
from .train import TrainConfig

SEEDS = (0, 1, 2)
EPOCHS = 30
ARCHS = ("shallow", "deep", "conv")          # the three compared designs
ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu")  # deep-MLP study
CODE_SIZES = (2, 8, 16, 32, 64, 128)         # conv code-size study
CODE_SIZE_EPOCHS = 10                        # shorter: a trend, not a race


def main_runs(epochs=EPOCHS) -> dict[str, list[TrainConfig]]:
    """Each compared architecture over three seeds."""
    return {arch: [TrainConfig(arch=arch, epochs=epochs, seed=s)
                   for s in SEEDS] for arch in ARCHS}


def activation_runs(epochs=EPOCHS) -> dict[str, TrainConfig]:
    return {act: TrainConfig(arch="deep", activation=act, epochs=epochs)
            for act in ACTIVATIONS}


def code_size_runs(epochs=CODE_SIZE_EPOCHS) -> dict[int, TrainConfig]:
    return {z: TrainConfig(arch="conv", code_size=z, epochs=epochs)
            for z in CODE_SIZES}


VAE_EPOCHS = 20                              # for sampling, not the race


def vae_run(epochs=VAE_EPOCHS) -> TrainConfig:
    return TrainConfig(arch="vae", epochs=epochs)


def book() -> list[TrainConfig]:
    runs = [c for cfgs in main_runs().values() for c in cfgs]
    runs += list(activation_runs().values())
    runs += list(code_size_runs().values())
    runs.append(vae_run())
    unique = {c.name: c for c in runs}   # e.g. deep-relu s0 appears twice
    return list(unique.values())


def smoke() -> list[TrainConfig]:
    return [replace(c, epochs=1) for c in
            (TrainConfig(arch=a) for a in ("shallow", "deep", "conv", "vae"))]


PLANS = {"book": book, "smoke": smoke}


def get(name: str) -> list[TrainConfig]:
    if name not in PLANS:
        raise ConfigError(f"unknown plan {name!r}; choose from "
                          f"{', '.join(PLANS)}")
    return PLANS[name]()
