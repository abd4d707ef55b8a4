import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import N_TEST, N_TRAIN, make_root, write_idx
from torchvision import datasets

from aecore import data as fmnist
from aecore.errors import DataError


def test_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv("AECORE_DATA", str(tmp_path / "env"))
    assert fmnist.resolve_root(tmp_path / "arg") == (tmp_path / "arg",
                                                     "argument")
    assert fmnist.resolve_root()[0] == tmp_path / "env"
    monkeypatch.delenv("AECORE_DATA")
    assert fmnist.resolve_root() == (fmnist.DEFAULT_ROOT, "default")


def test_load_shapes_range_and_split(tiny):
    n_val = N_TRAIN // 10
    assert tiny.train.X.shape == (N_TRAIN - n_val, 1, 28, 28)
    assert tiny.val.X.shape == (n_val, 1, 28, 28)
    assert tiny.test.X.shape == (N_TEST, 1, 28, 28)
    assert tiny.train.X.dtype == torch.float32
    assert tiny.train.X.min() >= -1 and tiny.train.X.max() <= 1
    # disjoint: every training image index appears once across train+val
    joined = torch.cat([tiny.train.y, tiny.val.y])
    assert torch.bincount(joined).tolist() == [N_TRAIN // 10] * 10


def test_split_is_fixed(synthetic_root):
    a = fmnist._load_cpu.__wrapped__(synthetic_root)
    b = fmnist._load_cpu.__wrapped__(synthetic_root)
    assert torch.equal(a.val.X, b.val.X)
    assert a.fingerprint == b.fingerprint


def test_fast_path_equals_seed_transform(synthetic_root, tiny):
    seed = fmnist.torchvision_dataset(synthetic_root, train=False)
    for i in (0, 7, N_TEST - 1):
        image, label = seed[i]
        assert torch.equal(image, tiny.test.X[i])
        assert label == tiny.test.y[i]


def test_seed_loader_is_the_assignments(synthetic_root):
    loader = fmnist.seed_loader(synthetic_root)
    assert loader.batch_size == 64
    X, y = next(iter(loader))
    assert X.shape == (64, 1, 28, 28) and y.shape == (64,)
    assert -1 <= X.min() and X.max() <= 1


def test_batches_cover_every_image_once():
    X = torch.arange(10.0)
    out = list(fmnist.batches(X, 4, torch.Generator().manual_seed(0)))
    assert [len(b) for b in out] == [4, 4, 2]
    assert sorted(torch.cat(out).tolist()) == X.tolist()


def test_missing_files_message(tmp_path):
    with pytest.raises(DataError) as err:
        fmnist.load(tmp_path)
    msg = str(err.value)
    for name in fmnist.FILES:
        assert name in msg
    assert "AECORE_DATA" in msg and str(tmp_path) in msg


def test_missing_files_offline(tmp_path, monkeypatch):
    monkeypatch.setenv(fmnist.ENV_DOWNLOAD, "1")

    def offline(self):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(datasets.FashionMNIST, "download", offline)
    with pytest.raises(DataError, match="could not be downloaded.*URLError"):
        fmnist.load(tmp_path / "nothing")


def test_truncated_file_is_named(tmp_path):
    root = make_root(tmp_path / "d")
    path = fmnist.raw_folder(root) / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.*truncated"):
        fmnist.load(root)


def test_wrong_magic_is_named(tmp_path):
    root = make_root(tmp_path / "d")
    path = fmnist.raw_folder(root) / "train-labels-idx1-ubyte"
    write_idx(path, np.zeros((N_TRAIN, 2)))  # images where labels belong
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.*magic"):
        fmnist.load(root)


def _root_with(tmp_path, name, array):
    root = make_root(tmp_path / "d")
    write_idx(fmnist.raw_folder(root) / name, array)
    fmnist._load_cpu.cache_clear()
    return root


@pytest.mark.parametrize("name,n", [("t10k-labels-idx1-ubyte", N_TEST),
                                    ("train-labels-idx1-ubyte", N_TRAIN)])
def test_label_out_of_range_is_one_paragraph(tmp_path, name, n):
    labels = np.arange(n) % 10
    labels[7] = 200
    root = _root_with(tmp_path, name, labels)
    with pytest.raises(DataError, match=f"{name}: label 200 at index 7"):
        fmnist.load(root)


@pytest.mark.parametrize("name,n", [
    ("train-labels-idx1-ubyte", N_TRAIN - 1),
    ("train-images-idx3-ubyte", N_TRAIN - 1),
    ("t10k-labels-idx1-ubyte", N_TEST + 1)])
def test_counts_that_disagree_are_named(tmp_path, name, n):
    if "images" in name:
        array = np.zeros((n, 28, 28))
    else:
        array = np.arange(n) % 10
    root = _root_with(tmp_path, name, array)
    with pytest.raises(DataError, match="images but .* labels"):
        fmnist.load(root)


def test_wrong_image_shape_is_named(tmp_path):
    root = _root_with(tmp_path, "train-images-idx3-ubyte",
                      np.zeros((N_TRAIN, 56, 14)))
    with pytest.raises(DataError, match="56 x 14 .* expected 28 x 28"):
        fmnist.load(root)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads mode-000 files")
def test_unreadable_file_is_one_line(tmp_path):
    root = make_root(tmp_path / "d")
    path = fmnist.raw_folder(root) / "train-images-idx3-ubyte"
    path.chmod(0)
    try:
        with pytest.raises(DataError, match="cannot be read"):
            fmnist.load(root)
    finally:
        path.chmod(0o644)


def test_unreadable_file_is_one_line_via_oserror(tmp_path, monkeypatch):
    """The same path as above, for machines where tests run as root."""
    root = make_root(tmp_path / "d")
    real = Path.read_bytes

    def denied(self):
        if self.name == "t10k-images-idx3-ubyte":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    fmnist._load_cpu.cache_clear()
    with pytest.raises(DataError, match="t10k-images.*cannot be read"):
        fmnist.load(root)


def test_torchvision_processed_cache_is_never_read(tmp_path):
    """A stale processed/ cache (from an older torchvision) with other
    images must not replace the checked raw files."""
    root = make_root(tmp_path / "d")
    processed = root / "FashionMNIST" / "processed"
    processed.mkdir()
    fake = (torch.zeros(10, 28, 28, dtype=torch.uint8),
            torch.zeros(10, dtype=torch.long))
    for f in ("training.pt", "test.pt"):
        torch.save(fake, processed / f)
    fmnist._load_cpu.cache_clear()
    data = fmnist.load(root)
    assert len(data.train) + len(data.val) == N_TRAIN
    assert len(data.test) == N_TEST


def test_noise_protocol():
    """sigma on the [0, 1] scale, clipped to [0, 1]: mid-grey pixels get
    noise of that standard deviation; black ones are clipped at 0."""
    g = torch.Generator().manual_seed(0)
    grey = torch.zeros(2000, 1, 28, 28)              # 0.5 on [0, 1]
    noisy = fmnist.add_noise(grey, 0.1, g)
    x01 = (noisy + 1) / 2
    assert x01.min() >= 0 and x01.max() <= 1
    assert (x01 - 0.5).std().item() == pytest.approx(0.1, rel=0.01)
    assert (x01 - 0.5).mean().item() == pytest.approx(0, abs=1e-3)
    black = -torch.ones(1000, 1, 28, 28)
    x01 = (fmnist.add_noise(black, 0.2, g) + 1) / 2
    assert x01.min() == 0
    assert (x01 == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    # the input is left alone
    assert torch.equal(grey, torch.zeros_like(grey))
