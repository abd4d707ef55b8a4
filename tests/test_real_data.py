"""Integration: the real Fashion-MNIST (AECORE_DATA; ../shared/data in CI)."""

import pytest
import torch
from conftest import real_data_or_skip

from aecore import TrainConfig, fit, runs
from aecore import data as fmnist


@pytest.fixture(scope="module")
def real():
    return real_data_or_skip()


def test_real_data_is_the_published_dataset(real):
    assert (len(real.train), len(real.val), len(real.test)) == \
        (54000, 6000, 10000)
    pixels01 = torch.cat([real.train.X, real.val.X]) * 0.5 + 0.5
    assert pixels01.mean().item() == pytest.approx(0.2860, abs=1e-4)
    assert pixels01.std().item() == pytest.approx(0.3530, abs=1e-4)
    assert torch.bincount(real.test.y).tolist() == [1000] * 10
    assert fmnist.CLASSES[real.test.y[0]] == "Ankle boot"


def test_one_short_epoch_on_a_subset(real, store):
    subset = fmnist.FashionMNIST(real.train.head(4096), real.val.head(1000),
                                 real.test.head(1000),
                                 real.fingerprint + "-subset")
    record = fit(TrainConfig(arch="conv", epochs=1), subset, store, "cpu")
    row = record["history"][0]
    assert row["val_mse"] < 0.06          # predicting all-zeros gives ~0.17
    assert 0 < row["val_pixel_acc"] <= 1
    assert runs.classifier_entry(subset, store).record["test_acc"] > 0.6
