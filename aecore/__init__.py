"""aecore: autoencoders on Fashion-MNIST, the library behind the book.

    import aecore as ae
    ae.setup()                      # seed, plot style, quiet progress
    data = ae.data.load()           # tensors in [-1, 1], split 54k/6k/10k
    run = ae.load_or_train(ae.TrainConfig(arch="conv"))
"""

from . import data, metrics, models, perf
from .errors import AecoreError, ConfigError, DataError, TrainingError
from .results import Store
from .runs import Run, load_or_train
from .train import TrainConfig, fit, pick_device

__version__ = "0.1.0"
perf.tune_allocator()

_LAZY = {"plots", "report", "baselines", "bench", "plan", "runs",
         "classifier", "results", "train"}


def __getattr__(name):   # heavy, optional modules load on first use
    if name in _LAZY:
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'aecore' has no attribute {name!r}")


def setup(seed: int = 0):
    """The one call at the top of every chapter: seed and plot style.

    Progress bars stay off in chapters: only the CLI turns them on, and
    only when it writes to a terminal."""
    import matplotlib as mpl
    import torch

    torch.manual_seed(seed)
    mpl.rcParams.update({   # sizes and dpi come from _quarto.yml
        "font.size": 10,
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
        "axes.spines.right": False, "legend.frameon": False,
        "image.cmap": "gray_r",
    })


__all__ = [
    "AecoreError", "ConfigError", "DataError", "Run", "Store",
    "TrainConfig", "TrainingError", "data", "fit", "load_or_train",
    "metrics", "models", "pick_device", "setup",
]
