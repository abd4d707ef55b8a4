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
* precision: "fp32", or "bf16" autocast;
* loader: mini-batches cut from the preloaded tensors, or drawn from
  the assignment's torchvision `DataLoader` (`data.assignment_loader`);
* compile: the training steps run the model through `torch.compile`
  (evaluation stays eager); its compile time counts in the first epoch's
  seconds.

After every epoch the history gets, for fixed 2,000-image subsets of the
training split and of the validation split: the loss and every metric of
`metrics.summarize` (recognition accuracy on images the reference
classifier never trained on), plus the seconds of the epoch's gradient
steps and of its evaluation. The test split is evaluated once, in full,
with bootstrap intervals.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import classifier as ref
from . import data as fmnist
from . import metrics, models
from .config import TrainConfig
from .errors import TrainingError
from .results import Store, run_key
from .runtime import environment, format_row, pick_device

EVAL_SIZE = ref.EVAL_SIZE    # per-epoch subsets of train and val
EVAL_NOISE_SEED = 2024       # one fixed noisy copy of val and test


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
    model = getattr(model, "_orig_mod", model)    # under torch.compile
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
             X_in=None, ci=False, batch_size=1000
             ) -> tuple[dict, torch.Tensor]:
    """Loss and every metric of `metrics.summarize` on one split, and
    the reconstructions; the inputs are `X_in` (noisy copies, for a
    denoiser) or the split's own."""
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


def training_data(cfg: TrainConfig, data: fmnist.FashionMNIST):
    return data if cfg.normal_class is None else \
        data.only_class(cfg.normal_class)


def noisy(cfg: TrainConfig, X, seed: int):
    """Fixed noisy inputs for a denoiser's evaluation, else None."""
    if not cfg.noise:
        return None
    g = torch.Generator().manual_seed(seed)
    return fmnist.add_noise(X, cfg.noise, g)


@dataclass
class Setup:
    """What one training run works with, built by `setup`."""
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: object
    gen: torch.Generator       # batch order and fresh noise
    steps: int                 # gradient steps per epoch
    X_noisy: torch.Tensor | None = None   # the tutorial's one noisy copy
    loader: object = None      # the torchvision DataLoader, if chosen
    step_model: torch.nn.Module | None = None  # compiled, for the steps

    def __post_init__(self):
        if self.step_model is None:
            self.step_model = self.model


def setup(cfg: TrainConfig, data: fmnist.FashionMNIST, device) -> Setup:
    """Model, optimiser, schedule and random state of a fresh run of
    `cfg` on `data` (already `training_data`, on `device`)."""
    if len(data.train) == 0:
        raise TrainingError(f"{cfg.name}: no training images")
    torch.manual_seed(cfg.seed)
    model = models.build(cfg.arch, cfg.code_size, cfg.activation).to(device)
    if getattr(model, "channels_last", False):
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg.lr, device)
    steps = math.ceil(len(data.train) / cfg.batch_size)
    sched = make_schedule(opt, cfg, steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    X_noisy = None if cfg.fresh_noise else noisy(cfg, data.train.X,
                                                 cfg.seed + 1)
    loader = None
    if cfg.loader == "torchvision":
        loader = fmnist.assignment_loader(data, cfg.batch_size, gen)
    step_model = torch.compile(model) if cfg.compile else model
    return Setup(model, opt, sched, gen, steps, X_noisy, loader, step_model)


def batches(s: Setup, cfg: TrainConfig, X_train, device):
    """(input, target) mini-batches of one epoch, shuffled by `s.gen`."""
    fmt = (torch.channels_last if getattr(s.model, "channels_last", False)
           else torch.contiguous_format)
    if s.loader is not None:
        for X, _ in s.loader:
            X = X.to(device).contiguous(memory_format=fmt)
            yield X, X
        return
    for idx in fmnist.batch_indices(len(X_train), cfg.batch_size, s.gen,
                                    device):
        X = X_train[idx].contiguous(memory_format=fmt)
        if s.X_noisy is not None:          # the tutorial's one noisy copy
            yield s.X_noisy[idx], X
        elif cfg.noise:                    # fresh noise, every batch
            yield fmnist.add_noise(X, cfg.noise, s.gen), X
        else:
            yield X, X


def train_step(s: Setup, cfg: TrainConfig, X_in, X,
               schedule=True) -> torch.Tensor:
    """One update on a batch: the loss of `X_in` against the target `X`
    at `cfg`'s precision, backward, the optimiser's step and (unless
    `schedule` is False) the schedule's. The loss comes back detached,
    without a sync. The one step that training, `bench` and the `perf`
    probes all take."""
    with autocast(cfg, X.device):
        loss, _ = objective(s.step_model, X_in, X, cfg.beta)
    s.opt.zero_grad(set_to_none=True)
    loss.backward()
    s.opt.step()
    if schedule:
        s.sched.step()
    return loss.detach()


def train_epoch(s: Setup, cfg: TrainConfig, X_train, device,
                bar=None) -> float:
    """One pass over the shuffled training images; the mean loss."""
    total = torch.zeros((), device=device)
    for X_in, X in batches(s, cfg, X_train, device):
        total += train_step(s, cfg, X_in, X).float() * len(X)
        if bar is not None:
            bar.update()
    return total.item() / len(X_train)     # one sync per epoch


def resume(s: Setup, ckpt: dict | None) -> list[dict]:
    """Restore a checkpoint into `s`; the history so far."""
    if ckpt is None:
        return []
    s.model.load_state_dict(ckpt["model"])
    s.opt.load_state_dict(ckpt["opt"])
    s.sched.load_state_dict(ckpt["sched"])
    s.gen.set_state(ckpt["gen"])
    torch.set_rng_state(ckpt["rng"])
    return ckpt["history"]


def fit(cfg: TrainConfig, data=None, store=None, device=None,
        progress=False, log=None, on_epoch_end=None,
        keep_weights=True) -> dict:
    """Train one config, resuming from a checkpoint, and store the result:
    setup, then the epochs, then the record.

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
    clf = clf.to(memory_format=torch.channels_last)
    key = run_key(cfg, data.fingerprint, clf.record)
    data = training_data(cfg, data).to(device)
    s = setup(cfg, data, device)
    history = resume(s, store.load_checkpoint(cfg.name, key))
    if history and log:
        log(f"{cfg.name}: resuming after epoch {len(history)}")

    # Per-epoch curves: fixed subsets; recognition only where it means
    # something (not for one-class runs).
    curve_clf = None if cfg.normal_class is not None else clf
    subsets = {"train": data.train.head(ref.eval_size(len(data.train))),
               "val": data.val.head(EVAL_SIZE)}
    noisy_in = {k: noisy(cfg, v.X, EVAL_NOISE_SEED)
                for k, v in subsets.items()}
    for epoch in range(len(history) + 1, cfg.epochs + 1):
        tick = time.perf_counter()
        with tqdm(total=s.steps, disable=not progress, leave=False,
                  desc=f"{cfg.name} epoch {epoch}/{cfg.epochs}") as bar:
            running = train_epoch(s, cfg, data.train.X, device, bar)
        seconds = time.perf_counter() - tick
        if not math.isfinite(running):
            raise TrainingError(f"{cfg.name}: loss became {running} in epoch "
                                f"{epoch}; lower the learning rate "
                                f"(now {cfg.lr})")
        row = {"epoch": epoch, "seconds": seconds, "running_loss": running}
        tick = time.perf_counter()
        with autocast(cfg, device):
            for name, split in subsets.items():
                metrics_, _ = evaluate(s.model, split, curve_clf, cfg.beta,
                                       noisy_in[name])
                row.update({f"{name}_{k}": v for k, v in metrics_.items()})
        row["eval_seconds"] = time.perf_counter() - tick
        history.append(row)
        if log:
            log(format_row(cfg.name, row, cfg.epochs))
        store.save_checkpoint(cfg.name, {
            "key": key, "model": s.model.state_dict(),
            "opt": s.opt.state_dict(), "sched": s.sched.state_dict(),
            "gen": s.gen.get_state(), "rng": torch.get_rng_state(),
            "history": history})
        if on_epoch_end:
            on_epoch_end(epoch)

    tick = time.perf_counter()
    test = test_metrics(s.model, cfg, data.test, curve_clf, data.train)
    test_seconds = time.perf_counter() - tick
    record = {
        "name": cfg.name, "key": key, "config": asdict(cfg),
        "history": history, "test": test,
        "environment": environment(device, cfg),
        # training, per-epoch evaluation and the test, summed over every
        # epoch (also those before a resume)
        "wall_seconds": test_seconds + sum(
            r["seconds"] + r["eval_seconds"] for r in history),
    }
    return store.save(cfg.name, record, s.model.state_dict(),
                      keep_weights=keep_weights)


def test_metrics(model, cfg: TrainConfig, test: fmnist.Split, clf,
                 train: fmnist.Split | None = None) -> dict:
    """The full test split, once: metrics with bootstrap intervals; for
    a denoiser, the noisy input's own error; for a one-class run, every
    test image's reconstruction error (`scores`, with the AUROC of that
    score) and the mean distance of its code to the 1 and the 5 nearest
    codes of the training images `train` (`code_knn1`, `code_knn5`)."""
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
        out["scores"] = _rounded(scores)
        if train is not None:
            with autocast(cfg, test.X.device):
                near = metrics.knn_distances(metrics.encode(model, test.X),
                                             metrics.encode(model, train.X),
                                             k=5)
            out["code_knn1"] = _rounded(near[:, 0])
            out["code_knn5"] = _rounded(near.mean(1))
    return out


def _rounded(values: torch.Tensor) -> list[float]:
    return [float(f"{v:.4g}") for v in values.tolist()]
