"""Shared fixtures: small synthetic Fashion-MNIST files (no download) and
a results folder per test."""

from __future__ import annotations

import os

# Bitwise repeatable CPU runs: MKL otherwise picks kernels by the memory
# alignment of each buffer, which varies between runs, so weights can
# differ at about 1e-7 relative (the resume and determinism tests compare
# bit for bit). Must be set before torch loads MKL.
os.environ.setdefault("MKL_CBWR", "COMPATIBLE")
from pathlib import Path

import numpy as np
import pytest
import torch

from aecore import data as fmnist
from aecore.results import Store

N_TRAIN, N_TEST = 600, 200
REAL_ROOT = Path(os.environ.get("AECORE_DATA", Path(__file__).parents[1] /
                                ".." / "shared" / "data"))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format Fashion-MNIST uses."""
    magic = 2048 + array.ndim
    header = magic.to_bytes(4, "big") + b"".join(
        d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def synthetic_images(labels: np.ndarray, rng) -> np.ndarray:
    """Each class is a bright bar at its own rows, plus noise."""
    images = rng.integers(0, 40, size=(len(labels), 28, 28))
    for i, c in enumerate(labels):
        images[i, 2 + 2 * c: 5 + 2 * c, 4:24] = 220
    return images


def make_root(root: Path, n_train=N_TRAIN, n_test=N_TEST) -> Path:
    raw = fmnist.raw_folder(root)
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        write_idx(raw / f"{prefix}-images-idx3-ubyte",
                  synthetic_images(labels, rng))
    return root


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    return make_root(tmp_path_factory.mktemp("fmnist"))


@pytest.fixture(scope="session")
def tiny(synthetic_root):
    return fmnist.load(synthetic_root)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "results")


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    monkeypatch.setenv(fmnist.ENV_DOWNLOAD, "0")
    torch.manual_seed(0)


def real_data_or_skip():
    raw = fmnist.raw_folder(REAL_ROOT)
    if not (raw / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"real Fashion-MNIST not found under {REAL_ROOT} "
                    "(set AECORE_DATA)")
    return fmnist.load(REAL_ROOT)
