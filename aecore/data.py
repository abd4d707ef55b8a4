"""Fashion-MNIST: finding the files, checking them, and serving them fast.

Two pipelines read the same four IDX files:

* `seed_loader` is the assignment's own pipeline, unchanged:
  `ToTensor()` then `Normalize((0.5,), (0.5,))`, wrapped in
  `DataLoader(batch_size=64, shuffle=True)`. The benchmark compares against it.
* `load` reads the raw files itself, after checking their content (magic
  numbers, 28 x 28 images, image and label counts that agree, labels 0-9),
  applies exactly the same arithmetic to the whole uint8 array at once
  (`x / 255`, then `(x - 0.5) / 0.5`), keeps the result as one tensor on the
  training device, and `batches` cuts shuffled mini-batches by indexing. No
  per-image Python work happens during an epoch. torchvision's own
  `processed/` cache is never read, so only checked bytes are used.

The data root is, in order: the `root` argument, the environment variable
`AECORE_DATA`, then `~/.pytorch/F_MNIST_data/` (the assignment's default).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .files import (  # noqa: F401  (part of this module's interface)
    DEFAULT_ROOT,
    ENV_DOWNLOAD,
    ENV_ROOT,
    FILES,
    check_file,
    ensure_files,
    raw_folder,
    resolve_root,
)

CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
VAL_SIZE = 6000   # held out of the 60,000 training images
SPLIT_SEED = 0    # the split never changes with a run's seed
MIN_TRAIN = 50    # fewer leave nothing to validate or to fit the classifier

SPLITS = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def seed_transform():
    """The assignment's transform (torchvision is imported only here)."""
    from torchvision import transforms
    return transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])


def torchvision_dataset(root=None, train=True):
    """`datasets.FashionMNIST` with the assignment's transform."""
    from torchvision import datasets
    path = ensure_files(root)
    return datasets.FashionMNIST(
        path, train=train, download=False, transform=seed_transform()
    )


def seed_loader(root=None, train=True, batch_size=64, shuffle=True):
    """The assignment's pipeline, exactly: used as the benchmark baseline."""
    from torch.utils.data import DataLoader
    return DataLoader(
        torchvision_dataset(root, train), batch_size=batch_size,
        shuffle=shuffle,
    )


def normalize(images_uint8: torch.Tensor) -> torch.Tensor:
    """ToTensor + Normalize((0.5,), (0.5,)) on a whole uint8 batch."""
    x = images_uint8.to(torch.float32).div_(255.0)
    return x.sub_(0.5).div_(0.5).unsqueeze(1)


@dataclass(frozen=True)
class Split:
    """Images in [-1, 1], shape (N, 1, 28, 28), and integer labels."""

    X: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device) -> Split:
        return Split(self.X.to(device), self.y.to(device))

    def head(self, n: int) -> Split:
        return Split(self.X[:n], self.y[:n])

    def tail(self, n: int) -> Split:
        """Everything after the first `n` images."""
        return Split(self.X[n:], self.y[n:])

    def of_class(self, c: int) -> Split:
        keep = self.y == c
        return Split(self.X[keep], self.y[keep])


@dataclass(frozen=True)
class FashionMNIST:
    train: Split      # 54,000 images used for gradient steps
    val: Split        # 6,000 held-out training images, fixed by SPLIT_SEED
    test: Split       # the official 10,000 test images
    fingerprint: str  # SHA-256 of the raw pixels and labels
    # where `train` came from: the data root and its indices among the
    # 60,000 official training images (for `assignment_loader`)
    root: Path | None = None
    train_index: torch.Tensor | None = None

    def to(self, device) -> FashionMNIST:
        return replace(self, train=self.train.to(device),
                       val=self.val.to(device), test=self.test.to(device))

    def only_class(self, c: int) -> FashionMNIST:
        """The one-class protocol (Golan & El-Yaniv, 2018): train on every
        official training image of class `c` (train and val: 6,000 in
        Fashion-MNIST), test on all test images. Its `val` is class `c`
        of val, so it was trained on: curves of such a run are training
        curves."""
        train = Split(torch.cat([self.train.X, self.val.X]),
                      torch.cat([self.train.y, self.val.y])).of_class(c)
        return FashionMNIST(train, self.val.of_class(c), self.test,
                            self.fingerprint)


class ShuffledBatches:
    """A `batch_sampler` for a `DataLoader`: the index batches that
    `batch_indices` cuts for the fast path, drawn from the same
    `generator`, so both pipelines see the same batches in the same
    order (a `shuffle=True` loader would draw its own permutation)."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        self.n, self.batch_size, self.generator = n, batch_size, generator

    def __iter__(self):
        for idx in batch_indices(self.n, self.batch_size, self.generator):
            yield idx.tolist()

    def __len__(self):
        return -(-self.n // self.batch_size)


def assignment_loader(data: FashionMNIST, batch_size: int,
                      generator: torch.Generator):
    """The assignment's pipeline (`datasets.FashionMNIST`, ToTensor,
    Normalize, a shuffled `DataLoader`) over the same training images as
    `data.train`, in the batches the fast path draws from `generator`."""
    from torch.utils.data import DataLoader, Subset
    if data.root is None or data.train_index is None:
        raise DataError("this data set was not read from files, so the "
                        "torchvision loader cannot serve it")
    dataset = Subset(torchvision_dataset(data.root, train=True),
                     data.train_index.tolist())
    return DataLoader(dataset, batch_sampler=ShuffledBatches(
        len(dataset), batch_size, generator))


def read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """The array in one checked IDX file (header, size, 28 x 28)."""
    shape = check_file(path, magic, ndim)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}); "
                        "make it readable by this user") from None
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def read_split(root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) and labels (N,) of one split, checked: the
    counts agree and every label is a class 0-9."""
    raw = raw_folder(root)
    image_name, label_name = SPLITS[train]
    images = read_idx(raw / image_name, *_spec(image_name))
    labels = read_idx(raw / label_name, *_spec(label_name))
    if len(images) != len(labels):
        raise DataError(
            f"{raw}: {image_name} holds {len(images)} images but "
            f"{label_name} holds {len(labels)} labels; the two files must "
            "come from the same release")
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise DataError(
            f"{raw / label_name}: label {int(labels[bad[0]])} at index "
            f"{int(bad[0])} ({bad.size} labels outside 0-9); replace the "
            "file with the original")
    return images, labels


def _spec(name: str) -> tuple[int, int]:
    magic, shape = FILES[name]
    return magic, len(shape)


@lru_cache(maxsize=4)
def _load_cpu(root: Path) -> FashionMNIST:
    parts = {}
    digest = hashlib.sha256()
    for train in (True, False):
        images, labels = read_split(root, train)
        parts[train] = Split(normalize(torch.from_numpy(images.copy())),
                             torch.from_numpy(labels.astype(np.int64)))
        digest.update(images.tobytes())
        digest.update(labels.tobytes())
    full = parts[True]
    if len(full) < MIN_TRAIN or len(parts[False]) < 1:
        raise DataError(
            f"{raw_folder(root)}: {len(full)} training and "
            f"{len(parts[False])} test images; at least {MIN_TRAIN} and 1 "
            "are needed (Fashion-MNIST has 60,000 and 10,000)")
    n_val = min(VAL_SIZE, len(full) // 10)
    g = torch.Generator().manual_seed(SPLIT_SEED)
    perm = torch.randperm(len(full), generator=g)
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    return FashionMNIST(
        train=Split(full.X[train_idx], full.y[train_idx]),
        val=Split(full.X[val_idx], full.y[val_idx]),
        test=parts[False],
        fingerprint=digest.hexdigest()[:16],
        root=root, train_index=train_idx,
    )


def load(root=None, device="cpu") -> FashionMNIST:
    """The whole dataset, normalised, split, on `device` (cached per root)."""
    return _load_cpu(ensure_files(root).resolve()).to(device)


def batch_indices(n: int, batch_size: int, generator=None, device="cpu"):
    """Index tensors of shuffled mini-batches (one permutation per call)."""
    perm = torch.randperm(n, generator=generator).to(device)
    for start in range(0, n, batch_size):
        yield perm[start:start + batch_size]


def batches(X: torch.Tensor, batch_size: int, generator=None):
    """Shuffled mini-batches of `X` by indexing (one permutation per call)."""
    for idx in batch_indices(len(X), batch_size, generator, X.device):
        yield X[idx]


def add_noise(X: torch.Tensor, sigma: float, generator=None) -> torch.Tensor:
    """The denoising protocol of the TensorFlow tutorial: Gaussian noise
    of standard deviation `sigma` on the [0, 1] scale, clipped to [0, 1].
    `X` and the result are on the [-1, 1] scale."""
    noise = torch.randn(X.shape, generator=generator).to(X.device)
    x01 = (X + 1) / 2 + sigma * noise
    return x01.clamp_(0, 1).mul_(2).sub_(1)
