"""Reconstruction metrics. Inputs are images in [-1, 1]; every metric is
reported on the [0, 1] pixel scale, so figures compare with the literature.

* `mse`: mean squared error per pixel, [0, 1] scale.
* `psnr`: peak signal-to-noise ratio in dB, 10 log10(1 / MSE) per image,
  averaged over images (peak = 1 on the [0, 1] scale).
* `pixel_acc`: share of pixels reconstructed within 0.1 of the input on the
  [0, 1] scale (a tolerance of about 25 of 255 grey levels).
* `recog_acc`: accuracy of the fixed reference classifier on the
  reconstructions, against the true labels: does the garment still look
  like its class?
"""

from __future__ import annotations

import torch

PIXEL_TOLERANCE = 0.1   # on the [0, 1] scale
MSE_FLOOR = 1e-10       # keeps the PSNR of a perfect image finite (100 dB)


def per_image_mse(X_hat: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """MSE per image on the [0, 1] scale (inputs in [-1, 1])."""
    return ((X_hat - X) / 2).pow(2).flatten(1).mean(1)


def psnr(X_hat: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image, peak 1 on the [0, 1] scale."""
    return -10 * torch.log10(per_image_mse(X_hat, X).clamp_min(MSE_FLOOR))


def pixel_accuracy(X_hat: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Share of pixels within PIXEL_TOLERANCE, per image."""
    close = ((X_hat - X).abs() / 2) <= PIXEL_TOLERANCE
    return close.flatten(1).float().mean(1)


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
    """Class predictions of the reference classifier (batches of 250 in
    channels-last layout: about 3x faster on a CPU than 1,000 contiguous)."""
    classifier.eval()
    cl = torch.channels_last
    return torch.cat([
        classifier(X[i:i + batch_size].contiguous(memory_format=cl))
        .argmax(1) for i in range(0, len(X), batch_size)])


def summarize(X_hat, X, y=None, classifier=None) -> dict:
    """All metrics for one set of reconstructions, as Python floats."""
    out = {
        "mse": per_image_mse(X_hat, X).mean().item(),
        "psnr": psnr(X_hat, X).mean().item(),
        "pixel_acc": pixel_accuracy(X_hat, X).mean().item(),
    }
    if classifier is not None and y is not None:
        y_hat = predict(classifier, X_hat.clamp(-1, 1))
        out["recog_acc"] = (y_hat == y).float().mean().item()
    return out
