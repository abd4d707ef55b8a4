"""The reference classifier behind "recognition accuracy".

A small CNN trained once on the clean training split, then frozen. Its
accuracy on an autoencoder's reconstructions says whether a garment still
looks like its class after passing through the code. It is stored with the
results (`results/classifier/`) and keyed like every other run; every
run's key holds the SHA-256 of its weights.

It never sees the first `EVAL_SIZE` training images: the training curves
measure recognition on those, so no recognition accuracy in the book
comes from images the classifier was trained on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import data as fmnist
from .results import Store, make_key


class ReferenceCNN(nn.Module):
    """Two conv blocks (16, 32 channels) and a two-layer head: small, so
    that scoring the per-epoch subsets costs little next to training."""

    def __init__(self, channels=(16, 32)):
        super().__init__()
        c1, c2 = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.MaxPool2d(2),                                     # 14x14
            nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.MaxPool2d(2),                                     # 7x7
            nn.Flatten(), nn.Dropout(0.3),
            nn.Linear(c2 * 49, 128), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(128, 10),
        )

    def forward(self, x):
        return self.net(x)


@dataclass(frozen=True)
class ClassifierConfig:
    epochs: int = 8
    batch_size: int = 256
    lr: float = 3e-3
    seed: int = 0


NAME = "classifier"
EVAL_SIZE = 2000   # training images held out for the per-epoch curves


def eval_size(n_train: int) -> int:
    """Images held out of `n_train` (a fifth at most, for tiny data)."""
    return min(EVAL_SIZE, n_train // 5)
CODE = ("data", "classifier")   # the modules its result depends on


def key(data: fmnist.FashionMNIST, cfg: ClassifierConfig | None = None
        ) -> str:
    """The key a valid stored classifier for `data` carries."""
    return make_key(asdict(cfg or ClassifierConfig()), data.fingerprint,
                    CODE)


@torch.inference_mode()
def accuracy(model, split: fmnist.Split, batch_size=1000) -> float:
    model.eval()
    hits = sum((model(split.X[i:i + batch_size]).argmax(1)
                == split.y[i:i + batch_size]).sum()
               for i in range(0, len(split), batch_size))
    return (hits / len(split)).item()


def train(cfg: ClassifierConfig, data: fmnist.FashionMNIST, device,
          log=None) -> tuple[nn.Module, dict]:
    torch.manual_seed(cfg.seed)
    model = ReferenceCNN().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    split = data.train.tail(eval_size(len(data.train)))
    steps = math.ceil(len(split) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    history = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        for idx in fmnist.batch_indices(len(split), cfg.batch_size, gen,
                                        device):
            loss = F.cross_entropy(model(split.X[idx]), split.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        history.append({"epoch": epoch,
                        "val_acc": accuracy(model, data.val)})
        if log:
            log(f"classifier epoch {epoch}/{cfg.epochs} "
                f"val acc {history[-1]['val_acc']:.4f}")
    return model, {"history": history,
                   "test_acc": accuracy(model, data.test)}


def load_or_train(data: fmnist.FashionMNIST, store: Store | None = None,
                  device="cpu", cfg=ClassifierConfig(), log=None):
    """The frozen reference classifier, trained once per data and code."""
    store = store or Store()
    record = store.load(NAME, key(data, cfg))
    model = ReferenceCNN()
    if record is None:
        if log:
            log("training the reference classifier (once)")
        model, summary = train(cfg, data.to(device), device, log)
        record = store.save(NAME, {"name": NAME, "key": key(data, cfg),
                                   "config": asdict(cfg), **summary},
                            model.state_dict())
    else:
        model.load_state_dict(store.weights(NAME, record))
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.record = record
    return model
