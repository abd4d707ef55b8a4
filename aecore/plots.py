"""The book's figures. Each function draws one figure and returns it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .data import CLASSES

PANELS = (("loss", "loss (training objective)"),
          ("pixel_acc", "pixel accuracy"),
          ("recog_acc", "recognition accuracy"))


def to_image(x: torch.Tensor) -> np.ndarray:
    """A (1, 28, 28) tensor in [-1, 1] as a 28x28 array in [0, 1]."""
    return (x.detach().cpu().squeeze(0).clamp(-1, 1) * 0.5 + 0.5).numpy()


def gallery(split, per_class=8):
    """`per_class` examples of every class, one row per class."""
    fig, axes = plt.subplots(10, per_class, figsize=(per_class * 0.8, 8.4))
    for c in range(10):
        idx = (split.y == c).nonzero().flatten()[:per_class]
        for j, i in enumerate(idx):
            ax = axes[c, j]
            ax.imshow(to_image(split.X[i]), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        axes[c, 0].set_ylabel(CLASSES[c], rotation=0, ha="right",
                              va="center", fontsize=8)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return fig


def history(runs, title=None):
    """Loss, pixel and recognition accuracy per epoch, training vs
    validation: the mean over seeds, with the range as a band."""
    fig, axes = plt.subplots(1, 3, figsize=(10, 3))
    for ax, (key, label) in zip(axes, PANELS):
        for split, color in (("train", "C0"), ("val", "C1")):
            curves = np.array([r.curve(f"{split}_{key}") for r in runs])
            epochs = np.arange(1, curves.shape[1] + 1)
            ax.plot(epochs, curves.mean(0), color=color,
                    label="training" if split == "train" else "validation")
            if len(runs) > 1:
                ax.fill_between(epochs, curves.min(0), curves.max(0),
                                color=color, alpha=0.2, lw=0)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("epoch")
        if key == "loss":
            ax.set_yscale("log")
    axes[0].legend()
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def compare(curves: dict[str, list], key="val_mse", ylabel=None,
            log=True):
    """One validation curve per label (a list of runs: mean over seeds)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for label, runs in curves.items():
        values = np.array([r.curve(key) for r in runs]).mean(0)
        ax.plot(np.arange(1, len(values) + 1), values, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or key)
    if log:
        ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    return fig


def pairs(X, X_hat, y, y_pred, errors=True):
    """Columns of (input, output[, error map]) with labels."""
    rows = 3 if errors else 2
    n = len(X)
    fig, axes = plt.subplots(rows, n, figsize=(n * 0.95, rows * 1.15 + 0.4))
    for j in range(n):
        err = (X_hat[j] - X[j]).abs().squeeze(0) / 2
        panels = [to_image(X[j]), to_image(X_hat[j])]
        if errors:
            panels.append(err.cpu().numpy())
        for i, img in enumerate(panels):
            ax = axes[i, j]
            if i == 2:
                ax.imshow(img, cmap="magma", vmin=0, vmax=0.5)
            else:
                ax.imshow(img, cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        axes[0, j].set_title(CLASSES[y[j]], fontsize=7)
        ok = "" if y_pred[j] == y[j] else " ✗"
        axes[1, j].set_title(CLASSES[y_pred[j]] + ok, fontsize=7,
                             color="black" if not ok else "C3")
    for i, name in enumerate(["input", "output", "|error|"][:rows]):
        axes[i, 0].set_ylabel(name, fontsize=8)
    fig.subplots_adjust(wspace=0.05, hspace=0.35)
    return fig


def grid(images, titles=None, ncols=10):
    """Images in a grid with optional titles."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(ncols * 0.95, nrows * 1.15))
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        if k >= n:
            ax.axis("off")
            continue
        ax.imshow(to_image(images[k]), cmap="gray_r", vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(titles[k], fontsize=7)
    fig.subplots_adjust(wspace=0.05, hspace=0.35)
    return fig
