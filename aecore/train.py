"""Training: one config in, one stored result out.

The objective is Adam on
* the mean squared error per pixel on the [-1, 1] scale, for the
  deterministic autoencoders (4x the [0, 1]-scale MSE that metrics report);
* for the VAE, per image: the sum over the 784 pixels of the squared error
  on the [-1, 1] scale plus beta times the KL divergence of the code
  distribution from N(0, I), averaged over the batch.
The learning rate follows a one-cycle schedule (warm up, then anneal).

After every epoch the history gets, for a fixed 6,000-image subset of the
training split ("train") and for the validation split ("val"): the loss,
MSE, PSNR, pixel accuracy and recognition accuracy (see `metrics`), plus
the seconds the epoch's gradient steps took.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import classifier as ref
from . import data as fmnist
from . import metrics, models
from .errors import ConfigError, TrainingError
from .results import Store, code_version, make_key

EVAL_TRAIN_SIZE = 6000


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
            raise ConfigError(f"lr must be positive, got {cfg.lr!r}")
        if cfg.beta < 0:
            raise ConfigError(f"beta must be >= 0, got {cfg.beta!r}")
        models.activation(cfg.activation)   # raises on unknown names
        return cfg

    @property
    def name(self) -> str:
        c = self.resolved()
        return (f"{c.arch}-{c.activation}-z{c.code_size}-e{c.epochs}"
                f"-b{c.batch_size}-s{c.seed}")


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


def objective(model, X, beta=1.0):
    """The training loss of a batch and the reconstructions."""
    X_hat = model(X)
    if isinstance(model, models.ConvVAE):
        rec = (X_hat - X).pow(2).flatten(1).sum(1)
        return (rec + beta * model.kl).mean(), X_hat
    return F.mse_loss(X_hat, X), X_hat


@torch.inference_mode()
def evaluate(model, split: fmnist.Split, classifier=None, beta=1.0,
             batch_size=1000) -> dict:
    """Loss and every metric of `metrics.summarize` on one split."""
    was_training = model.training
    model.eval()
    losses, outs = [], []
    for i in range(0, len(split), batch_size):
        loss, X_hat = objective(model, split.X[i:i + batch_size], beta)
        losses.append(loss * len(X_hat))
        outs.append(X_hat)
    model.train(was_training)
    X_hat = torch.cat(outs)
    return {"loss": (torch.stack(losses).sum() / len(split)).item(),
            **metrics.summarize(X_hat, split.X, split.y, classifier)}


def environment(device) -> dict:
    return {"torch": torch.__version__, "python": sys.version.split()[0],
            "device": str(device), "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "code_version": code_version()}


def fit(cfg: TrainConfig, data=None, store=None, device=None,
        progress=False, log=None, on_epoch_end=None) -> dict:
    """Train one config, resuming from a checkpoint, and store the result.

    `data` is an `aecore.data.FashionMNIST` (loaded when None); `log`
    receives one line per epoch; `on_epoch_end(epoch)` runs after the
    epoch's checkpoint is written.
    """
    cfg = cfg.resolved()
    store = store or Store()
    device = pick_device(device)
    data = (data or fmnist.load()).to(device)
    clf = ref.load_or_train(data, store=store, device=device, log=log)
    clf = clf.to(memory_format=torch.channels_last)   # 3x faster on CPU
    key = make_key(asdict(cfg), data.fingerprint)

    torch.manual_seed(cfg.seed)
    model = models.build(cfg.arch, cfg.code_size, cfg.activation).to(device)
    opt = make_optimizer(model, cfg.lr, device)
    steps = math.ceil(len(data.train) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    gen = torch.Generator().manual_seed(cfg.seed)
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

    train_eval = data.train.head(EVAL_TRAIN_SIZE)
    for epoch in range(len(history) + 1, cfg.epochs + 1):
        start = time.perf_counter()
        total = torch.zeros((), device=device)
        bar = tqdm(fmnist.batches(data.train.X, cfg.batch_size, gen),
                   total=steps, disable=not progress, leave=False,
                   desc=f"{cfg.name} epoch {epoch}/{cfg.epochs}")
        for X in bar:
            loss, _ = objective(model, X, cfg.beta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach() * len(X)
        running = total.item() / len(data.train)  # one sync per epoch
        seconds = time.perf_counter() - start
        if not math.isfinite(running):
            raise TrainingError(f"{cfg.name}: loss became {running} in epoch "
                                f"{epoch}; lower the learning rate "
                                f"(now {cfg.lr})")
        row = {"epoch": epoch, "seconds": seconds, "running_loss": running}
        for split_name, split in (("train", train_eval), ("val", data.val)):
            for k, v in evaluate(model, split, clf, cfg.beta).items():
                row[f"{split_name}_{k}"] = v
        history.append(row)
        if log:
            log(format_row(cfg.name, row, cfg.epochs))
        store.save_checkpoint(cfg.name, {
            "key": key, "model": model.state_dict(), "opt": opt.state_dict(),
            "sched": sched.state_dict(), "gen": gen.get_state(),
            "rng": torch.get_rng_state(), "history": history})
        if on_epoch_end:
            on_epoch_end(epoch)

    record = {
        "name": cfg.name, "key": key, "config": asdict(cfg),
        "history": history,
        "test": evaluate(model, data.test, clf, cfg.beta),
        "params": models.n_params(model),
        "flops": models.forward_flops(model),
        "environment": environment(device),
    }
    return store.save(cfg.name, record, model.state_dict())


def format_row(name, row, epochs) -> str:
    return (f"{name} epoch {row['epoch']}/{epochs} {row['seconds']:.1f}s "
            f"loss {row['running_loss']:.4f} | val mse {row['val_mse']:.5f} "
            f"psnr {row['val_psnr']:.2f} pixel {row['val_pixel_acc']:.3f} "
            f"recog {row['val_recog_acc']:.3f}")

