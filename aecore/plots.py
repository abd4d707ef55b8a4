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


def _bare(ax):
    """An image axis: no ticks, grid or frame (labels stay)."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def gallery(split, per_class=8):
    """`per_class` examples of every class, one row per class."""
    fig, axes = plt.subplots(10, per_class, figsize=(per_class * 0.8, 8.4))
    for c in range(10):
        idx = (split.y == c).nonzero().flatten()[:per_class]
        for j, i in enumerate(idx):
            ax = axes[c, j]
            ax.imshow(to_image(split.X[i]), cmap="gray_r", vmin=0, vmax=1)
            _bare(ax)
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


def pairs(X, X_hat, y, y_pred, errors=True, ncols=10):
    """Blocks of (input, output[, |error|]) rows, `ncols` images wide, with
    the true label over each input and the classifier's over each output."""
    per = 3 if errors else 2
    n = len(X)
    blocks = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(per * blocks, ncols, squeeze=False,
                             figsize=(ncols * 0.95, blocks * per * 1.15))
    for ax in axes.flat:
        _bare(ax)
    for j in range(n):
        block, col = divmod(j, ncols)
        top = block * per
        err = ((X_hat[j] - X[j]).abs().squeeze(0) / 2).cpu().numpy()
        axes[top, col].imshow(to_image(X[j]), cmap="gray_r", vmin=0,
                              vmax=1)
        axes[top + 1, col].imshow(to_image(X_hat[j]), cmap="gray_r",
                                  vmin=0, vmax=1)
        if errors:
            axes[top + 2, col].imshow(err, cmap="magma", vmin=0, vmax=0.5)
        axes[top, col].set_title(CLASSES[y[j]], fontsize=7)
        wrong = y_pred[j] != y[j]
        axes[top + 1, col].set_title(
            CLASSES[y_pred[j]] + (" ✗" if wrong else ""), fontsize=7,
            color="C3" if wrong else "black")
    for j in range(n, blocks * ncols):          # empty places
        block, col = divmod(j, ncols)
        for i in range(per):
            axes[block * per + i, col].axis("off")
    for block in range(blocks):
        for i, name in enumerate(["input", "output", "|error|"][:per]):
            axes[block * per + i, 0].set_ylabel(name, fontsize=8)
    fig.subplots_adjust(wspace=0.05, hspace=0.35)
    return fig


def grid(images, titles=None, ncols=10):
    """Images in a grid with optional titles."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(ncols * 0.95, nrows * 1.15))
    for k, ax in enumerate(axes.flat):
        _bare(ax)
        if k >= n:
            ax.axis("off")
            continue
        ax.imshow(to_image(images[k]), cmap="gray_r", vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(titles[k], fontsize=7)
    fig.subplots_adjust(wspace=0.05, hspace=0.35)
    return fig
