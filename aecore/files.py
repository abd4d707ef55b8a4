"""Where the data and the results live, and whether the four data files
are there and sound. No torch and no numpy: the command line and
`facts` use it before (or instead of) loading either, and none of it
changes a number, so it is outside the results key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import DataError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_RESULTS = "AECORE_RESULTS"
ENV_ROOT = "AECORE_DATA"
ENV_DOWNLOAD = "AECORE_DOWNLOAD"  # "0" forbids any download attempt
DEFAULT_ROOT = Path("~/.pytorch/F_MNIST_data/").expanduser()
# IDX file name -> (magic number, shape after the header)
FILES = {
    "train-images-idx3-ubyte": (2051, (60000, 28, 28)),
    "train-labels-idx1-ubyte": (2049, (60000,)),
    "t10k-images-idx3-ubyte": (2051, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": (2049, (10000,)),
}


def results_root(root=None) -> Path:
    """`root`, else $AECORE_RESULTS, else `results/` at the project root.
    An empty string is refused: it would mean the current folder."""
    for value, origin in ((root, "--results"),
                          (os.environ.get(ENV_RESULTS), f"${ENV_RESULTS}")):
        if value is None or (origin.startswith("$") and not value):
            continue
        if not str(value).strip():
            raise DataError(f"{origin} is empty; give a folder")
        return Path(value).expanduser()
    return PROJECT_ROOT / "results"


def resolve_root(root: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Return the data root and where it came from (argument, env, default)."""
    if root is not None:
        return Path(root).expanduser(), "argument"
    if os.environ.get(ENV_ROOT):
        return Path(os.environ[ENV_ROOT]).expanduser(), f"${ENV_ROOT}"
    return DEFAULT_ROOT, "default"


def raw_folder(root: Path) -> Path:
    return Path(root) / "FashionMNIST" / "raw"


def regular_file_problem(path: Path,
                         limit: float = float("inf")) -> str | None:
    """Why `path` is not a regular file of at most `limit` bytes (so
    opening it can neither block, as a pipe would, nor exhaust memory),
    or None."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "is missing"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_size > limit:
        return f"is {st.st_size:,} bytes, more than any aecore file"
    return None


def _kind(path: Path) -> str | None:
    """None for a regular file; what it is otherwise ("missing", ...)."""
    problem = regular_file_problem(path)
    return None if problem is None else problem.removeprefix("is ")


def check_file(path: Path, magic: int, ndim: int) -> tuple[int, ...]:
    """Validate one IDX file's header and length; return its shape.

    Raises `DataError` naming the file when it is not a regular file, is
    truncated or is not IDX. Only regular files are opened, so a pipe in
    its place never blocks.
    """
    kind = _kind(path)
    if kind is not None:
        raise DataError(f"{path}: {kind}; put the original file there")
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
            f"expected {magic}); replace it with the original file")
    shape = tuple(
        int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and shape[1:] != (28, 28):
        raise DataError(
            f"{path}: images of {shape[1]} x {shape[2]} pixels in its "
            "header, expected 28 x 28; this is not Fashion-MNIST")
    count = 1
    for d in shape:
        count *= d
    if size != header + count:
        raise DataError(
            f"{path}: truncated or corrupt IDX file ({size} bytes, "
            f"expected {header + count} for shape {shape}); replace it "
            "with the original file")
    return shape


def check_files(root: Path) -> bool:
    """True when all four files are present and sound, False when none
    is there; raise naming the file when some are there and one is
    missing or bad."""
    raw = raw_folder(root)
    kinds = {name: _kind(raw / name) for name in FILES}
    if all(k == "missing" for k in kinds.values()):
        return False
    for name, kind in kinds.items():
        if kind == "missing":
            raise DataError(
                f"{raw / name}: missing, while the other data files are "
                "there; put the original file beside them")
        magic, shape = FILES[name]
        check_file(raw / name, magic, len(shape))
    return True


def missing_message(root: Path, origin: str, reason: str) -> str:
    names = "\n".join(f"    {name}" for name in FILES)
    return (
        f"Fashion-MNIST not found under {root} (data root from {origin}) "
        f"and it could not be downloaded: {reason}.\n"
        f"  Roots tried, in order: the --data argument, ${ENV_ROOT}, "
        f"{DEFAULT_ROOT}.\n"
        f"  Put these four uncompressed files in "
        f"{raw_folder(root)}/:\n{names}\n"
        f"  or point ${ENV_ROOT} (or --data) at a folder that holds "
        "FashionMNIST/raw/ with them.")


def ensure_files(root=None) -> Path:
    """Find (or, with network, download) the dataset; return the root."""
    path, origin = resolve_root(root)
    if check_files(path):
        return path
    if os.environ.get(ENV_DOWNLOAD, "1") == "0":
        raise DataError(missing_message(
            path, origin, f"downloads disabled by {ENV_DOWNLOAD}=0"))
    try:
        from torchvision import datasets
        datasets.FashionMNIST(path, train=True, download=True)
        datasets.FashionMNIST(path, train=False, download=True)
    except Exception as exc:  # urllib, socket, HTTP and checksum errors
        raise DataError(missing_message(
            path, origin, f"{type(exc).__name__}: {exc}")) from None
    check_files(path)
    return path
