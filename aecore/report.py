"""What the chapters display: the plan's stored runs, aggregated, as
Markdown tables. Loading never trains when valid results are stored."""

from __future__ import annotations

import statistics
from functools import cached_property

import torch
from IPython.display import Markdown

from . import data as fmnist
from . import plan
from .classifier import load_or_train as load_classifier
from .results import Store
from .runs import Run, load_or_train

LABELS = {"shallow": "Shallow MLP", "deep": "Deep MLP",
          "conv": "Conv AE", "vae": "Conv VAE"}
MSE_AIM = 0.0045   # the project's target test MSE at code size 64
METRIC_NAMES = {
    "mse": "MSE", "psnr": "PSNR (dB)", "pixel_acc": "pixel acc.",
    "recog_acc": "recognition acc.",
}


class Book:
    """Every stored result the book reads, loaded once per chapter."""

    def __init__(self, root=None, results=None, log=print):
        self.data = fmnist.load(root)
        self.store = Store(results)
        self.log = log
        self._cache: dict[str, Run] = {}

    def run(self, cfg) -> Run:
        if cfg.name not in self._cache:
            self._cache[cfg.name] = load_or_train(
                cfg, self.data, self.store, log=self.log)
        return self._cache[cfg.name]

    def main(self) -> dict[str, list[Run]]:
        """The three compared architectures, three seeds each."""
        return {arch: [self.run(c) for c in cfgs]
                for arch, cfgs in plan.main_runs().items()}

    def activations(self) -> dict[str, Run]:
        return {a: self.run(c) for a, c in plan.activation_runs().items()}

    def code_sizes(self) -> dict[int, Run]:
        return {z: self.run(c) for z, c in plan.code_size_runs().items()}

    def vae(self) -> Run:
        return self.run(plan.vae_run())

    @cached_property
    def _classifier(self):
        clf = load_classifier(self.data, self.store)
        return clf.to(memory_format=torch.channels_last)

    def classifier(self):
        """The frozen reference classifier (trained once if missing)."""
        return self._classifier


def mean_std(values) -> tuple[float, float]:
    values = list(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), sd


def fmt(mean, sd, digits) -> str:
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def test_summary(runs: list[Run]) -> dict:
    """Mean and standard deviation over seeds of every test metric, the
    epoch time and the parameter count."""
    out = {k: mean_std(r.test[k] for r in runs) for k in METRIC_NAMES}
    out["seconds"] = mean_std(
        statistics.median(r.curve("seconds")) for r in runs)
    out["params"] = runs[0].record["params"]
    out["flops"] = runs[0].record["flops"]
    out["n"] = len(runs)
    return out


def markdown_table(header: list[str], rows: list[list],
                   align: str | None = None) -> Markdown:
    """A pipe table. `align` has one letter per column (l, r, c); by
    default the first column is left-aligned and the others right-aligned.

    In the PDF a short table is kept on one page: a raw LaTeX `needspace`
    (ignored by HTML) asks for room for the whole table before it starts.
    """
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    keep = ""
    if len(rows) <= 25:
        room = len(rows) + 6
        keep = f"```{{=latex}}\n\\needspace{{{room}\\baselineskip}}\n```\n\n"
    return Markdown(keep + "\n".join(lines))


def source(*objects) -> Markdown:
    """The source code of aecore functions or classes, read from the
    package when the chapter runs (so it can never drift from the code
    that produced the results), as a Python code block."""
    import inspect
    text = "\n".join(inspect.getsource(o) for o in objects)
    return Markdown(f"```python\n{text.rstrip()}\n```")
