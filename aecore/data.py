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
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .errors import DataError

CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DEFAULT_ROOT = Path("~/.pytorch/F_MNIST_data/").expanduser()
ENV_ROOT = "AECORE_DATA"
ENV_DOWNLOAD = "AECORE_DOWNLOAD"  # "0" forbids any download attempt

# IDX file name -> (magic number, shape after the header)
FILES = {
    "train-images-idx3-ubyte": (2051, (60000, 28, 28)),
    "train-labels-idx1-ubyte": (2049, (60000,)),
    "t10k-images-idx3-ubyte": (2051, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": (2049, (10000,)),
}
VAL_SIZE = 6000   # held out of the 60,000 training images
SPLIT_SEED = 0    # the split never changes with a run's seed

SPLITS = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def seed_transform():
    """The assignment's transform (torchvision is imported only here)."""
    from torchvision import transforms
    return transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])


def resolve_root(root: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Return the data root and where it came from (argument, env, default)."""
    if root is not None:
        return Path(root).expanduser(), "argument"
    if os.environ.get(ENV_ROOT):
        return Path(os.environ[ENV_ROOT]).expanduser(), f"${ENV_ROOT}"
    return DEFAULT_ROOT, "default"


def raw_folder(root: Path) -> Path:
    return root / "FashionMNIST" / "raw"


def check_file(path: Path, magic: int, ndim: int) -> tuple[int, ...]:
    """Validate one IDX file's header and length; return its shape.

    Raises `DataError` naming the file when it is truncated or not IDX.
    """
    header = 4 + 4 * ndim
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(header)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}); "
                        "make it readable by this user") from None
    if len(head) < header:
        raise DataError(f"{path}: corrupt IDX file (only {size} bytes)")
    found = int.from_bytes(head[:4], "big")
    if found != magic:
        raise DataError(
            f"{path}: corrupt IDX file (magic number {found}, "
            f"expected {magic}); replace it with the original file"
        )
    shape = tuple(
        int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)
    )
    if ndim == 3 and shape[1:] != (28, 28):
        raise DataError(
            f"{path}: images of {shape[1]} x {shape[2]} pixels in its "
            "header, expected 28 x 28; this is not Fashion-MNIST")
    expected = header + int(np.prod(shape))
    if size != expected:
        raise DataError(
            f"{path}: truncated or corrupt IDX file ({size} bytes, "
            f"expected {expected} for shape {shape}); replace it with "
            "the original file"
        )
    return shape


def check_files(root: Path) -> bool:
    """True when all four files are present and sound; raise if one is bad."""
    raw = raw_folder(root)
    present = [name for name in FILES if (raw / name).is_file()]
    for name in present:
        magic, shape = FILES[name]
        check_file(raw / name, magic, len(shape))
    return len(present) == len(FILES)


def _missing_message(root: Path, origin: str, reason: str) -> str:
    names = "\n".join(f"    {name}" for name in FILES)
    return (
        f"Fashion-MNIST not found under {root} (data root from {origin}) "
        f"and it could not be downloaded: {reason}.\n"
        f"  Roots tried, in order: the --data argument, ${ENV_ROOT}, "
        f"{DEFAULT_ROOT}.\n"
        f"  Put these four uncompressed files in "
        f"{raw_folder(root)}/:\n{names}\n"
        f"  or point ${ENV_ROOT} (or --data) at a folder that holds "
        "FashionMNIST/raw/ with them."
    )


def ensure_files(root=None) -> Path:
    """Find (or, with network, download) the dataset; return the root."""
    path, origin = resolve_root(root)
    if check_files(path):
        return path
    if os.environ.get(ENV_DOWNLOAD, "1") == "0":
        raise DataError(
            _missing_message(path, origin, f"downloads disabled by "
                             f"{ENV_DOWNLOAD}=0")
        )
    try:
        from torchvision import datasets
        datasets.FashionMNIST(path, train=True, download=True)
        datasets.FashionMNIST(path, train=False, download=True)
    except Exception as exc:  # urllib, socket, HTTP and checksum errors
        raise DataError(
            _missing_message(path, origin, f"{type(exc).__name__}: {exc}")
        ) from None
    check_files(path)
    return path


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

    def to(self, device) -> FashionMNIST:
        return FashionMNIST(self.train.to(device), self.val.to(device),
                            self.test.to(device), self.fingerprint)

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
    n_val = min(VAL_SIZE, len(full) // 10)
    g = torch.Generator().manual_seed(SPLIT_SEED)
    perm = torch.randperm(len(full), generator=g)
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    return FashionMNIST(
        train=Split(full.X[train_idx], full.y[train_idx]),
        val=Split(full.X[val_idx], full.y[val_idx]),
        test=parts[False],
        fingerprint=digest.hexdigest()[:16],
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
