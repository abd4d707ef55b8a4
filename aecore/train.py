"""Training: one config in, one stored result out.

The objective is Adam on
* the mean squared error per pixel on the [-1, 1] scale, for the
  deterministic autoencoders (4x the [0, 1]-scale MSE that metrics report;
  the tutorial baselines use the [0, 1] scale, as the tutorial does);
* for the VAE, per image: the sum over the 784 pixels of the squared error
  on the [-1, 1] scale plus beta times the KL divergence of the code
  distribution from N(0, I), averaged over the batch.
The learning rate follows a one-cycle schedule (warm up, then anneal).

Variants of the same loop, each a config field:
* denoising (`noise` > 0): the input is the image with Gaussian noise of
  that standard deviation on the [0, 1] scale, clipped to [0, 1]
  (`data.add_noise`); the target is the clean image. Noise is drawn afresh
  for every batch, or once for the whole training set (`fresh_noise`
  False, as the TensorFlow tutorial does);
* one-class (`normal_class`): train on one class only (`data.only_class`),
  and score every test image by its reconstruction error (AUROC);
* precision: "fp32", or "bf16" autocast.

After every epoch the history gets, for fixed 2,000-image subsets of the
training split and of the validation split: the loss and every metric of
`metrics.summarize` (recognition accuracy on images the reference
classifier never trained on), plus the seconds of the epoch's gradient
steps and of its evaluation. The test split is evaluated once, in full,
with bootstrap intervals.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import classifier as ref
from . import data as fmnist
from . import metrics, models
from .errors import ConfigError, TrainingError
from .results import Store, code_version, make_key

EVAL_SIZE = ref.EVAL_SIZE    # per-epoch subsets of train and val
EVAL_NOISE_SEED = 2024       # one fixed noisy copy of val and test
PRECISIONS = ("fp32", "bf16")
SCHEDULES = ("onecycle", "constant")


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

    def resolved(self) -> TrainConfig:
        """Fill in defaults and check every value."""
        if self.arch not in models.REGISTRY:
            raise ConfigError(f"unknown architecture {self.arch!r}; choose "
                              f"from {', '.join(models.REGISTRY)}")
        cfg = replace(
            self,
            code_size=models.DEFAULT_CODE_SIZE[self.arch]
            if self.code_size is None else self.code_size,
            activation=models.DEFAULT_ACTIVATION[self.arch]
            if self.activation is None else self.activation,
        )
        for field in ("epochs", "batch_size", "code_size"):
            if not (isinstance(getattr(cfg, field), int)
                    and getattr(cfg, field) >= 1):
                raise ConfigError(f"{field} must be a positive integer, got "
                                  f"{getattr(cfg, field)!r}")
        if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
            raise ConfigError(f"lr must be positive and finite, got "
                              f"{cfg.lr!r}")
        if not (cfg.beta >= 0 and math.isfinite(cfg.beta)):
            raise ConfigError(f"beta must be >= 0 and finite, got "
                              f"{cfg.beta!r}")
        if not 0 <= cfg.noise <= 1:
            raise ConfigError(f"noise must be between 0 and 1 (a standard "
                              f"deviation on the [0, 1] scale), got "
                              f"{cfg.noise!r}")
        if cfg.normal_class is not None and cfg.normal_class not in range(
                len(fmnist.CLASSES)):
            raise ConfigError(f"normal_class must be a class 0-9, got "
                              f"{cfg.normal_class!r}")
        if cfg.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {cfg.schedule!r}; choose "
                              f"from {', '.join(SCHEDULES)}")
        if cfg.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {cfg.precision!r}; choose "
                              f"from {', '.join(PRECISIONS)}")
        models.activation(cfg.activation)   # raises on unknown names
        return cfg

    @property
    def name(self) -> str:
        """Readable settings, then a hash of the whole config: two
        configs never share a folder."""
        c = self.resolved()
        parts = [c.arch, c.activation, f"z{c.code_size}", f"e{c.epochs}",
                 f"b{c.batch_size}", f"s{c.seed}"]
        if c.lr != TrainConfig.lr:
            parts.append(f"lr{c.lr:g}")
        if c.arch == "vae" and c.beta != TrainConfig.beta:
            parts.append(f"beta{c.beta:g}")
        if c.noise:
            parts.append(f"n{c.noise:g}" + ("" if c.fresh_noise else "x1"))
        if c.normal_class is not None:
            parts.append(f"c{c.normal_class}")
        if c.precision != "fp32":
            parts.append(c.precision)
        if c.schedule != "onecycle":
            parts.append(c.schedule)
        blob = json.dumps(asdict(c), sort_keys=True).encode()
        return "-".join(parts) + "-" + hashlib.sha256(blob).hexdigest()[:6]


def pick_device(device=None) -> torch.device:
    """CUDA, then Apple's MPS, then the CPU, unless one is named."""
    if device not in (None, "auto"):
        try:
            return torch.device(device)
        except RuntimeError as exc:
            raise ConfigError(f"bad device {device!r}: {exc}") from None
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def make_optimizer(model, lr, device):
    """Adam; the fused kernel where PyTorch has one (CPU, CUDA)."""
    fused = True if torch.device(device).type in ("cpu", "cuda") else None
    return torch.optim.Adam(model.parameters(), lr=lr, fused=fused)


def make_schedule(opt, cfg: TrainConfig, steps_per_epoch: int):
    """One-cycle (warm up, then anneal to zero), or a constant rate."""
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)


def objective(model, X, target=None, beta=1.0):
    """The training loss of a batch (inputs `X`, clean `target`,
    by default `X` itself) and the reconstructions."""
    target = X if target is None else target
    X_hat = model(X)
    if isinstance(model, models.ConvVAE):
        rec = (X_hat - target).pow(2).flatten(1).sum(1)
        return (rec + beta * model.kl).mean(), X_hat
    if getattr(model, "unit_scale", False):
        return F.mse_loss(X_hat, target) / 4, X_hat   # [0, 1] scale
    return F.mse_loss(X_hat, target), X_hat


def autocast(cfg: TrainConfig, device):
    """bf16 autocast for `precision="bf16"`, else nothing."""
    if cfg.precision == "bf16":
        return torch.autocast(torch.device(device).type,
                              dtype=torch.bfloat16)
    return nullcontext()


@torch.inference_mode()
def evaluate(model, split: fmnist.Split, classifier=None, beta=1.0,
             X_in=None, ci=False, batch_size=1000) -> dict:
    """Loss and every metric of `metrics.summarize` on one split; the
    inputs are `X_in` (noisy copies, for a denoiser) or the split's own."""
    X_in = split.X if X_in is None else X_in
    was_training = model.training
    model.eval()
    losses, kls, outs = [], [], []
    for i in range(0, len(split), batch_size):
        loss, X_hat = objective(model, X_in[i:i + batch_size],
                                split.X[i:i + batch_size], beta)
        losses.append(loss.float() * len(X_hat))
        outs.append(X_hat.float())
        if isinstance(model, models.ConvVAE):
            kls.append(model.kl.float().sum())
    model.train(was_training)
    X_hat = torch.cat(outs)
    out = {"loss": (torch.stack(losses).sum() / len(split)).item(),
           **metrics.summarize(X_hat, split.X, split.y, classifier, ci)}
    if kls:                      # the VAE's KL term, per image
        out["kl"] = (torch.stack(kls).sum() / len(split)).item()
    return out, X_hat


def environment(device, cfg: TrainConfig) -> dict:
    return {"torch": torch.__version__, "python": sys.version.split()[0],
            "device": str(device), "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "precision": cfg.precision,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "code_version": code_version()}


def run_key(cfg: TrainConfig, fingerprint: str, classifier_sha: str) -> str:
    """A run's key: its config, the code, the data and the weights of
    the reference classifier its recognition accuracy comes from."""
    return make_key({**asdict(cfg.resolved()), "classifier": classifier_sha},
                    fingerprint)


def training_data(cfg: TrainConfig, data: fmnist.FashionMNIST):
    return data if cfg.normal_class is None else \
        data.only_class(cfg.normal_class)


def noisy(cfg: TrainConfig, X, seed: int):
    """Fixed noisy inputs for a denoiser's evaluation, else None."""
    if not cfg.noise:
        return None
    g = torch.Generator().manual_seed(seed)
    return fmnist.add_noise(X, cfg.noise, g)


def train_epoch(model, opt, sched, X_train, X_noisy, cfg, gen,
                device, bar=None) -> float:
    """One pass over the shuffled training images; the mean loss."""
    total = torch.zeros((), device=device)
    for idx in fmnist.batch_indices(len(X_train), cfg.batch_size, gen,
                                    device):
        X = X_train[idx]
        if X_noisy is not None:            # the tutorial's one noisy copy
            X_in = X_noisy[idx]
        elif cfg.noise:                    # fresh noise, every batch
            X_in = fmnist.add_noise(X, cfg.noise, gen)
        else:
            X_in = X
        with autocast(cfg, device):
            loss, _ = objective(model, X_in, X, cfg.beta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += loss.detach().float() * len(X)
        if bar is not None:
            bar.update()
    return total.item() / len(X_train)     # one sync per epoch


def fit(cfg: TrainConfig, data=None, store=None, device=None,
        progress=False, log=None, on_epoch_end=None,
        keep_weights=True) -> dict:
    """Train one config, resuming from a checkpoint, and store the result.

    `data` is an `aecore.data.FashionMNIST` (loaded when None); `log`
    receives one line per epoch; `on_epoch_end(epoch)` runs after the
    epoch's checkpoint is written. Without `keep_weights` the result
    records the weights' SHA-256 but does not store them.
    """
    cfg = cfg.resolved()
    store = store or Store()
    device = pick_device(device)
    data = data or fmnist.load()
    clf = ref.load_or_train(data, store=store, device=device, log=log)
    clf = clf.to(memory_format=torch.channels_last)   # 3x faster on CPU
    key = run_key(cfg, data.fingerprint, clf.record["weights"]["sha256"])
    data = training_data(cfg, data).to(device)

    torch.manual_seed(cfg.seed)
    model = models.build(cfg.arch, cfg.code_size, cfg.activation).to(device)
    opt = make_optimizer(model, cfg.lr, device)
    steps = math.ceil(len(data.train) / cfg.batch_size)
    sched = make_schedule(opt, cfg, steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    X_noisy = None if cfg.fresh_noise else noisy(cfg, data.train.X,
                                                 cfg.seed + 1)
    history: list[dict] = []
    ckpt = store.load_checkpoint(cfg.name, key)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        sched.load_state_dict(ckpt["sched"])
        gen.set_state(ckpt["gen"])
        torch.set_rng_state(ckpt["rng"])
        history = ckpt["history"]
        if log:
            log(f"{cfg.name}: resuming after epoch {len(history)}")

    # Per-epoch curves: fixed subsets; recognition only where it means
    # something (not for one-class runs).
    curve_clf = None if cfg.normal_class is not None else clf
    n_eval = ref.eval_size(len(data.train))
    subsets = {"train": data.train.head(n_eval),
               "val": data.val.head(EVAL_SIZE)}
    noisy_in = {k: noisy(cfg, v.X, EVAL_NOISE_SEED)
                for k, v in subsets.items()}
    for epoch in range(len(history) + 1, cfg.epochs + 1):
        tick = time.perf_counter()
        with tqdm(total=steps, disable=not progress, leave=False,
                  desc=f"{cfg.name} epoch {epoch}/{cfg.epochs}") as bar:
            running = train_epoch(model, opt, sched, data.train.X, X_noisy,
                                  cfg, gen, device, bar)
        seconds = time.perf_counter() - tick
        if not math.isfinite(running):
            raise TrainingError(f"{cfg.name}: loss became {running} in epoch "
                                f"{epoch}; lower the learning rate "
                                f"(now {cfg.lr})")
        row = {"epoch": epoch, "seconds": seconds, "running_loss": running}
        tick = time.perf_counter()
        with autocast(cfg, device):
            for name, split in subsets.items():
                metrics_, _ = evaluate(model, split, curve_clf, cfg.beta,
                                       noisy_in[name])
                row.update({f"{name}_{k}": v for k, v in metrics_.items()})
        row["eval_seconds"] = time.perf_counter() - tick
        history.append(row)
        if log:
            log(format_row(cfg.name, row, cfg.epochs))
        store.save_checkpoint(cfg.name, {
            "key": key, "model": model.state_dict(), "opt": opt.state_dict(),
            "sched": sched.state_dict(), "gen": gen.get_state(),
            "rng": torch.get_rng_state(), "history": history})
        if on_epoch_end:
            on_epoch_end(epoch)

    tick = time.perf_counter()
    test = test_metrics(model, cfg, data.test, curve_clf)
    test_seconds = time.perf_counter() - tick
    record = {
        "name": cfg.name, "key": key, "config": asdict(cfg),
        "history": history, "test": test,
        "params": models.n_params(model),
        "flops": models.forward_flops(model),
        "environment": environment(device, cfg),
        # training, per-epoch evaluation and the test, summed over every
        # epoch (also those before a resume)
        "wall_seconds": test_seconds + sum(
            r["seconds"] + r["eval_seconds"] for r in history),
    }
    return store.save(cfg.name, record, model.state_dict(),
                      keep_weights=keep_weights)


def test_metrics(model, cfg: TrainConfig, test: fmnist.Split, clf) -> dict:
    """The full test split, once: metrics with bootstrap intervals; for
    a denoiser, the noisy input's own error; for a one-class run, every
    image's reconstruction error and the AUROC of that score."""
    X_in = noisy(cfg, test.X, EVAL_NOISE_SEED + 1)
    with autocast(cfg, test.X.device):
        out, X_hat = evaluate(model, test, clf, cfg.beta, X_in, ci=True)
    if X_in is not None:
        out["noisy_mse"] = metrics.per_image_mse(X_in, test.X).mean().item()
        out["noisy_psnr"] = metrics.psnr(out["noisy_mse"])
    if cfg.normal_class is not None:
        scores = metrics.per_image_mse(X_hat, test.X)
        anomalous = test.y != cfg.normal_class
        out["auroc"] = metrics.auroc(scores, anomalous)
        out["scores"] = [float(f"{v:.4g}") for v in scores.tolist()]
    return out


def format_row(name, row, epochs) -> str:
    line = (f"{name} epoch {row['epoch']}/{epochs} {row['seconds']:.1f}s "
            f"+ eval {row['eval_seconds']:.1f}s "
            f"loss {row['running_loss']:.4f} | val mse {row['val_mse']:.5f} "
            f"psnr {row['val_psnr']:.2f} pixel {row['val_pixel_acc']:.3f}")
    if "val_recog_acc" in row:
        line += f" recog {row['val_recog_acc']:.3f}"
    return line

