"""Reconstruction metrics. Inputs are images in [-1, 1]; every metric is
reported on the [0, 1] pixel scale, so figures compare with the literature.

* `mse`: mean squared error per pixel, [0, 1] scale, over all pixels of
  all images of the split.
* `psnr`: peak signal-to-noise ratio in dB of that MSE, 10 log10(1 / MSE)
  (peak = 1 on the [0, 1] scale); a function of `mse`, nothing more.
* `pixel_acc`: share of pixels reconstructed within 0.1 of the input on the
  [0, 1] scale (a tolerance of about 25 of 255 grey levels), and
  `pixel_acc_floor`, what an all-background output scores.
* `fg_pixel_acc`: the same share over foreground pixels only (input not
  background, i.e. above 0 on the [0, 1] scale), and its floor.
* `recog_acc`: accuracy of the fixed reference classifier on the
  reconstructions, against the true labels: does the garment still look
  like its class?

`bootstrap_ci` gives a percentile interval over images; `auroc` the area
under the ROC curve of a score (the one-class anomaly runs).
"""

from __future__ import annotations

import math

import torch

PIXEL_TOLERANCE = 0.1   # on the [0, 1] scale
MSE_FLOOR = 1e-10       # keeps the PSNR of a perfect image finite (100 dB)


def per_image_mse(X_hat: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """MSE per image on the [0, 1] scale (inputs in [-1, 1])."""
    return ((X_hat - X) / 2).pow(2).flatten(1).mean(1)


def psnr(mse: float) -> float:
    """PSNR in dB of an MSE on the [0, 1] scale (peak 1)."""
    return -10 * math.log10(max(mse, MSE_FLOOR))


def pixel_accuracy(X_hat: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Share of pixels within PIXEL_TOLERANCE, per image."""
    close = ((X_hat - X).abs() / 2) <= PIXEL_TOLERANCE
    return close.flatten(1).float().mean(1)


def foreground(X: torch.Tensor) -> torch.Tensor:
    """Pixels that are not background (above 0 on the [0, 1] scale)."""
    return (X > -1).flatten(1)


def foreground_accuracy(X_hat, X) -> tuple[float, float]:
    """(share of foreground pixels within PIXEL_TOLERANCE, the same
    share for an all-background output: its floor)."""
    fg = foreground(X)
    close = (((X_hat - X).abs() / 2) <= PIXEL_TOLERANCE).flatten(1)
    floor = (((X + 1) / 2) <= PIXEL_TOLERANCE).flatten(1)
    n = fg.sum().clamp_min(1)
    return ((close & fg).sum() / n).item(), ((floor & fg).sum() / n).item()


def bootstrap_ci(values: torch.Tensor, n_boot=1000, level=0.95,
                 seed=0) -> list[float]:
    """Percentile bootstrap interval of the mean of per-image `values`
    (resampling images with replacement; fixed seed)."""
    values = values.detach().double().cpu()
    g = torch.Generator().manual_seed(seed)
    means = torch.cat([
        values[torch.randint(len(values), (100, len(values)), generator=g)]
        .mean(1) for _ in range(n_boot // 100)])
    lo, hi = torch.quantile(means, torch.tensor(
        [(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)).tolist()
    return [lo, hi]


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve: the probability that a random positive
    scores higher than a random negative, ties counting one half
    (the Mann-Whitney U statistic, with tied scores given mean ranks)."""
    scores = scores.detach().double().cpu().flatten()
    positive = positive.detach().bool().cpu().flatten()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("auroc needs positives and negatives")
    uniq, inverse, counts = torch.unique(scores, return_inverse=True,
                                         return_counts=True)
    upper = counts.cumsum(0).double()            # rank of each value's last
    mean_rank = upper - (counts.double() - 1) / 2
    ranks = mean_rank[inverse]
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return (u / (n_pos * n_neg)).item()


@torch.inference_mode()
def encode(model, X: torch.Tensor, batch_size=1000) -> torch.Tensor:
    """The model's codes of every image, flattened, in evaluation mode."""
    model.eval()
    return torch.cat([model.encode(X[i:i + batch_size]).float().flatten(1)
                      for i in range(0, len(X), batch_size)])


@torch.inference_mode()
def knn_distances(queries: torch.Tensor, reference: torch.Tensor, k=5,
                  batch_size=1000) -> torch.Tensor:
    """Euclidean distances of each query row to its `k` nearest rows of
    `reference`, nearest first: shape (len(queries), k)."""
    reference = reference.double()
    out = []
    for i in range(0, len(queries), batch_size):
        d = torch.cdist(queries[i:i + batch_size].double(), reference)
        out.append(d.topk(min(k, len(reference)), largest=False).values)
    return torch.cat(out).float()


@torch.inference_mode()
def reconstruct(model, X: torch.Tensor, batch_size=1000) -> torch.Tensor:
    """The model's output for every image, in evaluation mode."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(X[i:i + batch_size])
                     for i in range(0, len(X), batch_size)])
    model.train(was_training)
    return out


@torch.inference_mode()
def predict(classifier, X: torch.Tensor, batch_size=250) -> torch.Tensor:
    """Class predictions of the reference classifier (batches of 250, in
    channels-last layout)."""
    classifier.eval()
    cl = torch.channels_last
    return torch.cat([
        classifier(X[i:i + batch_size].contiguous(memory_format=cl))
        .argmax(1) for i in range(0, len(X), batch_size)])


def summarize(X_hat, X, y=None, classifier=None, ci=False) -> dict:
    """All metrics for one set of reconstructions, as Python floats;
    with `ci`, 95 % bootstrap intervals of MSE and recognition accuracy
    over images (`<metric>_ci`)."""
    err = per_image_mse(X_hat, X)
    mse = err.mean().item()
    fg_acc, fg_floor = foreground_accuracy(X_hat, X)
    out = {
        "mse": mse,
        "psnr": psnr(mse),
        "pixel_acc": pixel_accuracy(X_hat, X).mean().item(),
        "pixel_acc_floor": pixel_accuracy(-torch.ones_like(X), X)
        .mean().item(),
        "fg_pixel_acc": fg_acc,
        "fg_pixel_acc_floor": fg_floor,
    }
    if ci:
        out["mse_ci"] = bootstrap_ci(err)
    if classifier is not None and y is not None:
        hit = (predict(classifier, X_hat.clamp(-1, 1)) == y).float()
        out["recog_acc"] = hit.mean().item()
        if ci:
            out["recog_acc_ci"] = bootstrap_ci(hit)
    return out
