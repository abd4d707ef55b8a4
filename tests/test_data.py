import urllib.error

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
