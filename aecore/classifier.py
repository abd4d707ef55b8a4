"""The reference classifier behind "recognition accuracy".

A small CNN trained once on the clean training split, then frozen. Its
accuracy on an autoencoder's reconstructions says whether a garment still
looks like its class after passing through the code. It is stored with the
results (`results/classifier/`) and keyed like every other run.
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
    """Two conv blocks (32, 64 channels) and a two-layer head."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),                                     # 14x14
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(2),                                     # 7x7
            nn.Flatten(), nn.Dropout(0.3),
            nn.Linear(64 * 49, 128), nn.ReLU(), nn.Dropout(0.3),
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
CODE = ("data", "classifier")   # the modules its result depends on


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
    steps = math.ceil(len(data.train) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    history = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(len(data.train), generator=gen).to(device)
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            loss = F.cross_entropy(model(data.train.X[idx]),
                                   data.train.y[idx])
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
    key = make_key(asdict(cfg), data.fingerprint, CODE)
    record = store.load(NAME, key)
    model = ReferenceCNN()
    if record is None:
        if log:
            log("training the reference classifier (once)")
        model, summary = train(cfg, data.to(device), device, log)
        record = store.save(NAME, {"name": NAME, "key": key,
                                   "config": asdict(cfg), **summary},
                            model.state_dict())
    else:
        model.load_state_dict(store.weights(NAME, record))
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.record = record
    return model
