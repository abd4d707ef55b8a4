"""The book's figures. Each function draws one figure and returns it.

Figures are drawn at the size they are printed (at most WIDTH, the text
width of the PDF), so 8-9 pt text stays 8-9 pt on the page. Images
use an inverted grey scale (dark = bright pixel), as every caption says.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import FuncFormatter

WIDTH = 6.0    # inches: the text width of the PDF (434.6 pt: A4, KOMA DIV=11)
SHORT = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
         "Shirt", "Sneaker", "Bag", "Boot")   # class names for 7 pt titles
PANELS = (("mse", "loss: MSE, [0, 1] scale"),
          ("pixel_acc", "pixel accuracy"),
          ("fg_pixel_acc", "foreground pixel acc."),
          ("recog_acc", "recognition accuracy"))
FLOORED = ("pixel_acc", "fg_pixel_acc")   # dashed: all-background output
ERROR_MAX = 0.5      # colour scale of |error| maps, [0, 1] pixel scale


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


def plain_log_ticks(ax):
    """Log-scale y ticks as plain numbers (0.004, 0.01) in one size,
    instead of mathtext powers whose exponents print at 5 pt."""
    def minor(v, _):
        mantissa = round(v / 10 ** np.floor(np.log10(v)))
        return f"{v:.2g}" if mantissa in (2, 4, 6) else ""

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))
    ax.tick_params(axis="y", which="both", labelsize=8)


def _show(ax, x):
    ax.imshow(to_image(x), cmap="gray_r", vmin=0, vmax=1)


def mosaic(images: list[list[torch.Tensor]], gap=3) -> np.ndarray:
    """Rows of (1, 28, 28) images in [-1, 1] as one [0, 1] array, with
    `gap` blank pixels between them: one imshow instead of one axes per
    image, which draws many times faster."""
    rows, cols = len(images), max(map(len, images))
    out = np.zeros((rows * (28 + gap) - gap, cols * (28 + gap) - gap))
    for r, row in enumerate(images):
        for c, x in enumerate(row):
            out[r * (28 + gap):r * (28 + gap) + 28,
                c * (28 + gap):c * (28 + gap) + 28] = to_image(x)
    return out


def gallery(split, per_class=6):
    """`per_class` examples of every class, one column per class: a
    wide, short figure that shares its page with text."""
    columns = [(split.y == c).nonzero().flatten()[:per_class]
               for c in range(10)]
    rows = [[split.X[col[k]] for col in columns] for k in range(per_class)]
    image = mosaic(rows)
    height = 0.98 * WIDTH * image.shape[0] / image.shape[1]
    label = 0.25         # inches above the images for the names
    fig, ax = plt.subplots(figsize=(WIDTH, height + label + 0.05))
    ax.imshow(image, cmap="gray_r", vmin=0, vmax=1,
              interpolation="nearest")
    _bare(ax)
    ax.xaxis.tick_top()
    ax.set_xticks([c * 31 + 13.5 for c in range(10)], SHORT, fontsize=8)
    ax.tick_params(axis="x", length=0)
    inches = fig.get_figheight()
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.05 / inches,
                        top=1 - label / inches)
    return fig


def curves(runs, split, key) -> np.ndarray:
    """(seeds, epochs) array of one recorded quantity."""
    return np.array([r.curve(f"{split}_{key}") for r in runs])


def history_limits(groups) -> dict[str, tuple[float, float]]:
    """Shared y-limits for every panel over several groups of runs, so
    that figures drawn with them compare by eye."""
    out = {}
    for key, _ in PANELS:
        values = np.concatenate([curves(runs, s, k).ravel()
                                 for runs in groups
                                 for s in ("train", "val")
                                 for k in (key, *([f"{key}_floor"]
                                                  if key in FLOORED
                                                  else []))])
        lo, hi = values.min(), values.max()
        if key == "mse":
            out[key] = (lo / 1.15, hi * 1.15)
        else:
            pad = 0.03 * (hi - lo)
            out[key] = (lo - pad, min(1.0, hi + pad))
    return out


def history(runs, limits=None, title=None):
    """Loss (MSE on the [0, 1] scale), pixel and recognition accuracy per
    epoch, training subset vs validation: one thin line per seed, a thick
    line for their mean. `limits` (from `history_limits`) fixes the y-axes
    so several figures compare."""
    fig, axes = plt.subplots(1, len(PANELS), figsize=(WIDTH, 2.2))
    for ax, (key, label) in zip(axes, PANELS):
        if key in FLOORED:
            floor = curves(runs, "val", f"{key}_floor").mean()
            ax.axhline(floor, color="0.4", lw=0.8, ls="--",
                       label="all-background output")
        for split, color in (("train", "C0"), ("val", "C1")):
            values = curves(runs, split, key)
            epochs = np.arange(1, values.shape[1] + 1)
            for seed_curve in values:
                ax.plot(epochs, seed_curve, color=color, lw=0.6, alpha=0.6)
            ax.plot(epochs, values.mean(0), color=color, lw=1.6,
                    label="training subset" if split == "train"
                    else "validation")
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(which="both", labelsize=8)
        if key == "mse":
            ax.set_yscale("log")
            plain_log_ticks(ax)
        if limits:
            ax.set_ylim(*limits[key])
    handles, names = axes[1].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="lower center", ncol=3,
               bbox_to_anchor=(0.5, 0.0))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(pad=0.4, w_pad=0.6, rect=(0, 0.09, 1, 1))
    return fig


def compare(groups: dict[str, list], key="val_mse", ylabel=None,
            log=True, width=WIDTH):
    """One validation curve per label (a list of runs: mean over seeds);
    `width` in inches (half the text width for two side by side)."""
    fig, ax = plt.subplots(figsize=(width, 2.2))
    for label, runs in groups.items():
        values = np.array([r.curve(key) for r in runs]).mean(0)
        ax.plot(np.arange(1, len(values) + 1), values, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or key)
    if log:
        ax.set_yscale("log")
        plain_log_ticks(ax)
    ax.legend()
    fig.tight_layout()
    return fig


def pairs(X, X_hat, y, y_pred, errors=True, ncols=10,
          row_names=("input", "output", "|error|"), mark=True,
          error_max=None):
    """Blocks of (input, output[, |error|]) rows, `ncols` images wide, with
    the true label over each input and the classifier's over each output
    (red and marked "x" where it differs). Error maps share one colour
    scale, 0 to `error_max` (default ERROR_MAX) on the [0, 1] pixel
    scale, with a colour bar.
    Each row is one image (`mosaic`), not one axes per garment."""
    per = 3 if errors else 2
    n = len(X)
    blocks = (n + ncols - 1) // ncols
    cell = (WIDTH - 0.9) / ncols
    fig, axes = plt.subplots(per * blocks, 1, squeeze=False,
                             figsize=(WIDTH, blocks * per * cell * 1.28))
    step, err_image = 28 + 3, None
    err_cmap = plt.get_cmap("magma").with_extremes(bad="white")  # gaps
    for block in range(blocks):
        cols = range(block * ncols, min(n, (block + 1) * ncols))
        row_axes = [axes[block * per + i, 0] for i in range(per)]
        for ax, images in zip(row_axes, (X, X_hat)):
            ax.imshow(mosaic([[images[j] for j in cols]]), cmap="gray_r",
                      vmin=0, vmax=1, interpolation="nearest")
        if errors:
            # mosaic maps [-1, 1] to [0, 1]: this is |error| / 2, the
            # error on the [0, 1] pixel scale
            err = mosaic([[(X_hat[j] - X[j]).abs() - 1 for j in cols]])
            gaps = np.ones_like(err, bool)
            for c in range(len(cols)):
                gaps[:, c * step:c * step + 28] = False
            err_image = row_axes[2].imshow(
                np.ma.masked_array(err, gaps), cmap=err_cmap, vmin=0,
                vmax=error_max or ERROR_MAX, interpolation="nearest")
        for c, j in enumerate(cols):
            wrong = mark and y_pred[j] != y[j]
            for ax, text, style in (
                    (row_axes[0], SHORT[y[j]], {}),
                    (row_axes[1], SHORT[y_pred[j]] + (" x" if wrong else ""),
                     {"color": "C3", "fontweight": "bold"} if wrong else {})):
                ax.text(c * step + 13.5, -2, text, fontsize=7,
                        ha="center", va="bottom", **style)
        for i, ax in enumerate(row_axes):
            _bare(ax)
            ax.set_xlim(-0.5, ncols * step - 3 - 0.5)
            ax.set_ylabel(list(row_names)[i], fontsize=8)
    fig.subplots_adjust(hspace=0.32, left=0.07, right=0.86,
                        top=0.95, bottom=0.02)
    if err_image is not None:
        bar = fig.add_axes([0.88, 0.1, 0.018, 0.8])
        cb = fig.colorbar(err_image, cax=bar)
        cb.set_label("|error|, [0, 1] scale", fontsize=8)
        cb.ax.tick_params(labelsize=7)
    return fig


def grid(images, titles=None, ncols=10):
    """Images in a grid with optional titles (7 pt)."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    cell = WIDTH / ncols
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(WIDTH, nrows * cell * 1.45))
    for k, ax in enumerate(axes.flat):
        _bare(ax)
        if k >= n:
            ax.axis("off")
            continue
        _show(ax, images[k])
        if titles is not None:
            ax.set_title(titles[k], fontsize=7, pad=2)
    fig.subplots_adjust(wspace=0.06, hspace=0.45, left=0.01, right=0.99,
                        top=0.93, bottom=0.01)
    return fig


def interpolation(rows: dict[str, torch.Tensor], start, end,
                  start_label="", end_label=""):
    """One row per model: the start image, the decoded frames of the
    straight line between the two codes, and the end image."""
    n = len(next(iter(rows.values())))
    ncols = n + 2
    cell = (WIDTH - 0.8) / ncols
    fig, axes = plt.subplots(len(rows), ncols, squeeze=False,
                             figsize=(WIDTH, len(rows) * cell * 1.35 + 0.2))
    for r, (label, frames) in enumerate(rows.items()):
        row = [start, *frames, end]
        for c, (ax, x) in enumerate(zip(axes[r], row)):
            _bare(ax)
            _show(ax, x)
            if c in (0, ncols - 1):
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_color("C0")
        axes[r, 0].set_ylabel(label, fontsize=8)
    axes[0, 0].set_title(start_label or "start", fontsize=7, pad=2)
    axes[0, -1].set_title(end_label or "end", fontsize=7, pad=2)
    for c in range(1, ncols - 1):
        axes[0, c].set_title(f"t={(c - 1) / (n - 1):.2f}", fontsize=7,
                             pad=2)
    fig.subplots_adjust(wspace=0.05, hspace=0.1, left=0.1, right=0.99,
                        top=0.85, bottom=0.02)
    return fig
