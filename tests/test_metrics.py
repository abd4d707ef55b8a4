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


def test_psnr_is_a_function_of_the_split_mse():
    """One definition: 10 log10(1 / MSE) of the split's MSE, not the
    mean of per-image PSNRs (which would be 30 dB here)."""
    X = torch.zeros(2, 1, 28, 28)
    X_hat = torch.stack([X[0] + 0.2, X[1] + 0.02])   # 0.1 and 0.01 on [0,1]
    out = metrics.summarize(X_hat, X)
    assert out["mse"] == pytest.approx((0.01 + 0.0001) / 2)
    assert out["psnr"] == pytest.approx(-10 * math.log10(out["mse"]))


def test_foreground_accuracy_and_floors():
    X = -torch.ones(1, 1, 28, 28)          # background everywhere ...
    X[0, 0, :7] = 1.0                      # ... but a white quarter
    blank = -torch.ones_like(X)
    out = metrics.summarize(blank, X)
    assert out["pixel_acc"] == pytest.approx(0.75)
    assert out["pixel_acc_floor"] == pytest.approx(0.75)
    assert out["fg_pixel_acc"] == 0 and out["fg_pixel_acc_floor"] == 0
    perfect = metrics.summarize(X, X)
    assert perfect["fg_pixel_acc"] == 1 and perfect["pixel_acc"] == 1


def test_bootstrap_interval_holds_the_mean_and_shrinks_with_n():
    g = torch.Generator().manual_seed(0)
    small = torch.rand(100, generator=g)
    large = torch.rand(10_000, generator=g)
    lo, hi = metrics.bootstrap_ci(small)
    assert lo < small.mean() < hi
    lo2, hi2 = metrics.bootstrap_ci(large)
    assert (hi2 - lo2) < (hi - lo) / 5          # about 1/sqrt(100) ratio
    # the standard error of a U(0, 1) mean is 0.2887 / sqrt(n)
    assert (hi2 - lo2) == pytest.approx(2 * 1.96 * 0.2887 / 100, rel=0.15)


def test_auroc_known_cases():
    pos = torch.tensor([True, True, False, False])
    assert metrics.auroc(torch.tensor([3., 4., 1., 2.]), pos) == 1.0
    assert metrics.auroc(torch.tensor([1., 2., 3., 4.]), pos) == 0.0
    # one of four positive-negative pairs misordered: 3/4
    assert metrics.auroc(torch.tensor([2., 4., 3., 1.]), pos) == 0.75
    # all tied: one half
    assert metrics.auroc(torch.ones(4), pos) == 0.5
    # a tie counts one half: pairs (2 vs 2) = 0.5, others 1 -> 3.5/4
    assert metrics.auroc(torch.tensor([2., 4., 2., 1.]), pos) == 0.875
    with pytest.raises(ValueError):
        metrics.auroc(torch.ones(3), torch.ones(3, dtype=torch.bool))


def test_auroc_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 20, (300,), generator=g).float()
    pos = torch.rand(300, generator=g) < 0.3
    p, n = scores[pos], scores[~pos]
    brute = ((p[:, None] > n[None]).double()
             + 0.5 * (p[:, None] == n[None]).float()).mean().item()
    assert metrics.auroc(scores, pos) == pytest.approx(brute, abs=1e-12)


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
