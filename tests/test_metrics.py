import math

import pytest
import torch

from aecore import metrics


def test_perfect_reconstruction():
    X = torch.rand(4, 1, 28, 28) * 2 - 1
    m = metrics.summarize(X, X)
    assert m["mse"] == 0 and m["pixel_acc"] == 1
    assert m["psnr"] == pytest.approx(100.0)   # the MSE floor


def test_known_error():
    # Half of each image off by 0.3 on [-1, 1], i.e. 0.15 on [0, 1].
    X = torch.zeros(2, 1, 28, 28)
    X_hat = X.clone()
    X_hat[:, :, :14] += 0.3
    m = metrics.summarize(X_hat, X)
    assert m["mse"] == pytest.approx(0.5 * 0.15 ** 2)
    assert m["pixel_acc"] == pytest.approx(0.5)
    assert m["psnr"] == pytest.approx(-10 * math.log10(0.5 * 0.15 ** 2),
                                      rel=1e-5)


def test_pixel_tolerance_boundary():
    X = torch.zeros(1, 1, 28, 28)
    inside = X + 2 * 0.099     # 0.099 on [0, 1]
    outside = X + 2 * 0.101
    assert metrics.pixel_accuracy(inside, X).item() == 1
    assert metrics.pixel_accuracy(outside, X).item() == 0


def test_psnr_is_per_image_mean():
    X = torch.zeros(2, 1, 28, 28)
    X_hat = torch.stack([X[0] + 0.2, X[1] + 0.02])   # 0.1 and 0.01 on [0,1]
    assert metrics.psnr(X_hat, X).tolist() == pytest.approx([20, 40],
                                                            rel=1e-5)


def test_recognition_accuracy_uses_classifier():
    class Oracle(torch.nn.Module):   # predicts class = mean brightness rank
        def forward(self, X):
            out = torch.zeros(len(X), 10)
            out[torch.arange(len(X)), (X.flatten(1).mean(1) > 0).long()] = 1
            return out

    X = torch.cat([torch.full((3, 1, 28, 28), -0.5),
                   torch.full((3, 1, 28, 28), 0.5)])
    y = torch.tensor([0, 0, 0, 1, 1, 0])
    m = metrics.summarize(X, X, y, Oracle())
    assert m["recog_acc"] == pytest.approx(5 / 6)
