"""What a training run is: `TrainConfig`, its names, defaults and checks.

The one source of these facts, and free of torch: the command line, the
plans, the models and the stored-result checks all import them from here.
A run's config is part of its key (`results.make_key`) by value, so this
module is not: editing a message or a check never invalidates a result.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace

from .errors import ConfigError

# name -> the class in `models` that builds it
ARCHS = {"shallow": "ShallowMLP", "deep": "DeepMLP", "conv": "ConvAE",
         "resconv": "ResConvAE", "vae": "ConvVAE", "denoiser": "WideDenoiser",
         "tf-dense": "TFDense", "tf-denoiser": "TFDenoiser"}
# name -> the torch.nn module that computes it
ACTIVATIONS = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh",
               "gelu": "GELU", "silu": "SiLU"}
DEFAULT_ACTIVATION = {"shallow": "relu", "deep": "relu", "conv": "gelu",
                      "resconv": "gelu", "vae": "gelu", "denoiser": "gelu",
                      "tf-dense": "relu", "tf-denoiser": "relu"}
DEFAULT_CODE_SIZE = {"shallow": 64, "deep": 64, "conv": 64, "resconv": 64,
                     "vae": 16, "denoiser": 6272, "tf-dense": 64,
                     "tf-denoiser": 392}
# Convolutional codes whose size is their feature map: not a choice.
FIXED_CODE_SIZE = {"denoiser": 6272, "tf-denoiser": 392}
MAX_CODE_SIZE = 8192
PRECISIONS = ("fp32", "bf16")
SCHEDULES = ("onecycle", "constant")
# "tensor": the checked uint8 files, normalised once, batches cut by
# indexing (`data.load`); "torchvision": the assignment's own pipeline,
# `datasets.FashionMNIST` + ToTensor + Normalize in a shuffled DataLoader.
LOADERS = ("tensor", "torchvision")
N_CLASSES = 10
SEED_MAX = 2**32 - 1     # torch keeps 32 bits of a seed: larger ones alias
# Fields added after results were first keyed: at their default they are
# left out of the key and the name, so adding one retrains nothing.
ADDED_LATER = ("loader", "compile")


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "conv"
    epochs: int = 20
    batch_size: int = 256
    lr: float = 3e-3
    code_size: int | None = None     # None: the architecture's default
    activation: str | None = None    # None: the architecture's default
    seed: int = 0
    beta: float = 1.0                # KL weight, VAE only
    noise: float = 0.0               # denoising: sigma on the [0, 1] scale
    fresh_noise: bool = True         # False: one noisy copy (the tutorial)
    normal_class: int | None = None  # one-class: train on this class only
    precision: str = "fp32"          # "bf16": autocast
    schedule: str = "onecycle"       # or "constant" (the tutorials)
    loader: str = "tensor"           # or "torchvision" (see LOADERS)
    compile: bool = False            # torch.compile the training step

    def resolved(self) -> TrainConfig:
        """Defaults filled in and every value checked; a value that would
        be ignored is refused, so two names never mean one run."""
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown architecture {self.arch!r}; choose "
                              f"from {', '.join(ARCHS)}")
        cfg = replace(
            self,
            code_size=DEFAULT_CODE_SIZE[self.arch]
            if self.code_size is None else self.code_size,
            activation=DEFAULT_ACTIVATION[self.arch]
            if self.activation is None else self.activation)
        for name in ("epochs", "batch_size", "code_size"):
            value = getattr(cfg, name)
            if not (isinstance(value, int) and not isinstance(value, bool)
                    and value >= 1):
                raise ConfigError(f"{name} must be a positive integer, got "
                                  f"{value!r}")
        if cfg.code_size > MAX_CODE_SIZE:
            raise ConfigError(f"code_size must be at most {MAX_CODE_SIZE} "
                              f"(an image has 784 pixels), got "
                              f"{cfg.code_size}")
        fixed = FIXED_CODE_SIZE.get(cfg.arch)
        if fixed is not None and cfg.code_size != fixed:
            raise ConfigError(f"{cfg.arch} has a fixed code of {fixed} "
                              f"numbers; leave code_size out")
        if not (isinstance(cfg.seed, int) and 0 <= cfg.seed <= SEED_MAX):
            raise ConfigError(f"seed must be between 0 and 2**32 - 1, got "
                              f"{cfg.seed!r}")
        _number(cfg.lr, "lr", low=0, strict=True, high=10)
        _number(cfg.beta, "beta", low=0, high=1e4)
        _number(cfg.noise, "noise", low=0, high=1,
                unit=" (a standard deviation on the [0, 1] scale)")
        if cfg.arch != "vae" and cfg.beta != TrainConfig.beta:
            raise ConfigError(f"beta weights the VAE's KL term; {cfg.arch} "
                              "has none")
        if not cfg.fresh_noise and not cfg.noise:
            raise ConfigError("fixed noise needs a noise level above 0")
        if cfg.normal_class is not None and not (
                isinstance(cfg.normal_class, int)
                and 0 <= cfg.normal_class < N_CLASSES):
            raise ConfigError(f"normal_class must be a class 0-9, got "
                              f"{cfg.normal_class!r}")
        for name, allowed in (("activation", ACTIVATIONS),
                              ("precision", PRECISIONS),
                              ("schedule", SCHEDULES),
                              ("loader", LOADERS)):
            if getattr(cfg, name) not in allowed:
                raise ConfigError(f"unknown {name} {getattr(cfg, name)!r}; "
                                  f"choose from {', '.join(allowed)}")
        if not isinstance(cfg.compile, bool):
            raise ConfigError(f"compile must be true or false, got "
                              f"{cfg.compile!r}")
        if cfg.loader == "torchvision" and (cfg.noise or cfg.normal_class
                                            is not None):
            raise ConfigError("the torchvision loader serves plain "
                              "training only (no noise, no one-class)")
        return cfg

    def key_dict(self) -> dict:
        """The resolved config as the key and the name hash see it."""
        d = asdict(self.resolved())
        for name in ADDED_LATER:
            if d[name] == _DEFAULTS[name]:
                del d[name]
        return d

    @property
    def name(self) -> str:
        """Readable settings, then a hash of the whole config: two
        configs never share a folder."""
        c = self.resolved()
        parts = [c.arch, c.activation, f"z{c.code_size}", f"e{c.epochs}",
                 f"b{c.batch_size}", f"s{c.seed}"]
        if c.lr != TrainConfig.lr:
            parts.append(f"lr{c.lr:g}")
        if c.beta != TrainConfig.beta:
            parts.append(f"beta{c.beta:g}")
        if c.noise:
            parts.append(f"n{c.noise:g}" + ("" if c.fresh_noise else "x1"))
        if c.normal_class is not None:
            parts.append(f"c{c.normal_class}")
        if c.precision != "fp32":
            parts.append(c.precision)
        if c.schedule != "onecycle":
            parts.append(c.schedule)
        if c.loader != "tensor":
            parts.append(c.loader)
        if c.compile:
            parts.append("compiled")
        blob = json.dumps(self.key_dict(), sort_keys=True).encode()
        return "-".join(parts) + "-" + hashlib.sha256(blob).hexdigest()[:6]

    @classmethod
    def from_record(cls, config) -> TrainConfig:
        """The config a stored record holds; ConfigError if it is not
        one (unknown or missing fields, bad values)."""
        if not isinstance(config, dict):
            raise ConfigError("the stored config is not a mapping")
        known = {f.name for f in fields(cls)}
        extra = sorted(set(config) - known)
        if extra:
            raise ConfigError(f"the stored config has unknown fields "
                              f"{', '.join(extra)}")
        cfg = cls(**config)
        if cfg.resolved() != cfg:
            raise ConfigError("the stored config is not a resolved one")
        return cfg


_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


def _real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value, name, low, high, strict=False, unit=""):
    ok = (_real(value) and math.isfinite(value) and value <= high
          and (value > low if strict else value >= low))
    if _real(value) and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if not ok:
        side = f"> {low:g}" if strict else f">= {low:g}"
        raise ConfigError(f"{name} must be {side} and <= {high:g}{unit}, "
                          f"got {value!r}")
