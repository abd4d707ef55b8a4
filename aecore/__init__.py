"""aecore: autoencoders on Fashion-MNIST, the library behind the book.

    import aecore as ae
    ae.setup()                      # seed, plot style, quiet progress
    data = ae.data.load()           # tensors in [-1, 1], split 54k/6k/10k
    run = ae.load_or_train(ae.TrainConfig(arch="conv"))

Importing aecore is cheap: torch, torchvision and matplotlib load with
the first module or name that needs them (`ae.data`, `ae.TrainConfig`,
...), so `python -m aecore --help` answers at once.
"""

from . import perf
from .errors import AecoreError, ConfigError, DataError, TrainingError

__version__ = "0.1.0"
perf.tune_allocator()

_MODULES = {"analysis", "baselines", "bench", "benchtables", "checkpoints",
            "classifier", "config", "data", "describe", "facts", "files",
            "keys", "metrics", "models", "parallel", "plan", "plots",
            "probes", "report", "results", "runs", "runtime", "studies",
            "text", "train"}
_NAMES = {"Store": "results", "Run": "runs", "load_or_train": "runs",
          "TrainConfig": "config", "fit": "train", "pick_device": "runtime"}


def __getattr__(name):   # modules and names load on first use
    import importlib
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _NAMES:
        module = importlib.import_module(f".{_NAMES[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'aecore' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _MODULES | set(_NAMES))


def setup(seed: int = 0, torch: bool = True):
    """The one call at the top of every chapter: seed and plot style.
    `torch=False` is for a chapter that only prints stored numbers
    (`facts`): it never imports torch, which saves 2-3 s per render.

    Progress bars stay off in chapters: only the CLI turns them on, and
    only when it writes to a terminal.

    It also moves every object alive so far (torch's and matplotlib's
    modules, tens of thousands of objects that live as long as the
    process) out of the garbage collector's reach with `gc.freeze()`.
    Later collections, the `%reset` Quarto runs after a chapter and the
    kernel's exit then skip them: about 0.9 s less per chapter kernel."""
    import gc

    import matplotlib as mpl

    if torch:
        import torch as pytorch
        pytorch.manual_seed(seed)
    mpl.rcParams.update({   # figure sizes and dpi come from _quarto.yml
        "font.size": 10, "axes.labelsize": 9, "legend.fontsize": 8,
        "xtick.labelsize": 8, "ytick.labelsize": 8,
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
        "axes.spines.right": False, "legend.frameon": False,
        "image.cmap": "gray_r",
    })
    gc.freeze()


__all__ = [
    "AecoreError", "ConfigError", "DataError", "Run", "Store",
    "TrainConfig", "TrainingError", "data", "fit", "load_or_train",
    "metrics", "models", "pick_device", "setup",
]
