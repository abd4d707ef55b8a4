"""What the chapters display: the plan's stored runs, aggregated, as
Markdown tables. Loading never trains when valid results are stored."""

from __future__ import annotations

import json
import statistics
from functools import cached_property

import torch

from . import analysis, describe, models, plan, runs, studies
from . import data as fmnist
from .classifier import load_or_train as load_classifier
from .errors import AecoreError
from .results import Store
from .runs import Run
from .text import (  # noqa: F401  (the chapters use them as ae.report.*)
    ACT_LABELS,
    LABELS,
    METRIC_NAMES,
    fmt,
    markdown_table,
    mean_std,
    minus,
    signed,
    source,
)


def flat(configs) -> list:
    """The configs of a nested dict, list or tuple (as `Book.runs`
    takes them), in order."""
    if isinstance(configs, dict):
        configs = list(configs.values())
    if isinstance(configs, (list, tuple)):
        return [c for v in configs for c in flat(v)]
    return [configs]


class Book:
    """The stored results the book reads, loaded once per chapter. It
    never trains: a missing, stale or damaged result stops the chapter
    with the command that trains it."""

    def __init__(self, root=None, results=None):
        self.data = fmnist.load(root)
        self.store = Store(results)
        self._cache: dict[str, Run] = {}

    def run(self, cfg) -> Run:
        """The valid stored result of `cfg`."""
        cfg = cfg.resolved()
        if cfg.name not in self._cache:
            entry = runs.inspect(cfg, self.data, self.store)
            if entry.status != "valid":
                home = next((n for n in ("report", "beyond", "fp32")
                             if cfg.name in {c.name for c in plan.get(n)}),
                            "book")
                raise AecoreError(
                    f"{cfg.name}: stored result is {entry.status}; the book "
                    "never trains, so train it first with `python -m "
                    f"aecore train-all --plan {home}`")
            self._cache[cfg.name] = Run(entry.record, self.store)
        return self._cache[cfg.name]

    def runs(self, configs):
        """`configs` (a config, or a dict, list or tuple of them, nested
        as the plan's functions return them) with each config replaced
        by its stored `Run`."""
        if isinstance(configs, dict):
            return {k: self.runs(v) for k, v in configs.items()}
        if isinstance(configs, (list, tuple)):
            return type(configs)(self.runs(v) for v in configs)
        return self.run(configs)

    def plan_record(self, name="book") -> dict:
        """What the last `train-all --plan <name>` stored: its call
        time, runs trained, and `jobs` (runs at once)."""
        record = runs.plan_record(self.store, name)
        if record is None:
            raise AecoreError(
                f"no valid record of plan {name!r} under "
                f"{self.store.root.name}/plans; `python -m aecore train-all "
                f"--plan {name}` writes it (it trains only what is missing)")
        return record

    def plan_minutes(self, name="book", configs=None) -> float:
        """Wall minutes of a whole plan from its stored runs' times
        (training, per-epoch evaluation and test evaluation), scheduled
        as `train-all` schedules them: longest first, as many at once as
        the stored plan record's `jobs` (`plan.schedule`). `configs`
        (nested as `runs` takes them) times a part of the plan alone."""
        configs = plan.get(name) if configs is None else configs
        walls = {c.name: self.run(c).record["wall_seconds"]
                 for c in flat(configs)}
        return plan.schedule(walls, self.plan_record(name)["jobs"])[1] / 60

    def cached(self, name: str, runs_: list[Run], compute, extra=None):
        """`compute()` (a JSON-able value: numbers, lists, dicts), stored
        in results/cache/<name>.json and keyed on the runs it reads (and
        on `extra`, a JSON-able dict of anything else it depends on), the
        data, and the code of the modules that produce results and of
        `analysis`, `baselines` and `studies`. A stale or damaged entry is
        computed again and replaced; nothing is served under another
        key."""
        from .results import NUMERIC_MODULES, atomic_save_json, make_key
        key = make_key({"name": name, **({"extra": extra} if extra else {}),
                        "runs": [r.record["key"] for r in runs_]},
                       self.data.fingerprint,
                       NUMERIC_MODULES
                       + ("analysis", "baselines", "studies"))
        path = self.store.root / "cache" / f"{name}.json"
        try:
            entry = json.loads(path.read_text())
            if (isinstance(entry, dict) and entry.get("key") == key
                    and "value" in entry):
                return entry["value"]
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):
            pass
        value = compute()
        atomic_save_json(path, {"key": key, "value": value})
        return value

    @cached_property
    def _classifier(self):
        entry = runs.classifier_entry(self.data, self.store)
        if entry.status != "valid":
            raise AecoreError(
                f"the reference classifier is {entry.status}; train it "
                "first with `python -m aecore train-all --plan report`")
        clf = load_classifier(self.data, self.store)
        return clf.to(memory_format=torch.channels_last)

    def classifier(self):
        """The frozen reference classifier."""
        return self._classifier


def test_summary(runs: list[Run]) -> dict:
    """Mean and standard deviation over seeds of every test metric, the
    epoch time, the parameter count, and seed 0's 95 % bootstrap
    intervals over test images (`mse_ci`, `recog_acc_ci`)."""
    out = {k: mean_std(r.test[k] for r in runs) for k in METRIC_NAMES}
    out["seconds"] = mean_std(
        statistics.median(r.curve("seconds")) for r in runs)
    out["eval_seconds"] = mean_std(
        statistics.median(r.curve("eval_seconds")) for r in runs)
    for k in ("mse_ci", "recog_acc_ci"):
        out[k] = runs[0].test[k]
    model = models.build(runs[0].config.arch, runs[0].config.code_size,
                         runs[0].config.activation)
    out["params"] = describe.n_params(model)
    out["flops"] = describe.forward_flops(model)
    out["n"] = len(runs)
    return out


def seconds_per_epoch(run: Run) -> float:
    """The one definition of a run's training time per epoch: the median
    over its epochs of the gradient steps' wall time (evaluation not
    included)."""
    return statistics.median(run.curve("seconds"))


# -- what the chapters that only print numbers read (see `facts`) ----------

def preface_facts(book: Book) -> dict:
    """The answers at a glance: the selected model trained the
    assignment's way (`plan.final`), and the three designs at equal
    epochs with the selected activation (`test_summary`, three seeds)."""
    final = book.run(plan.final())
    main = book.runs(plan.main_runs())
    act = plan.DEFAULT_ACT["conv"]
    return {
        "final": final.test, "epochs": final.config.epochs,
        "batch": final.config.batch_size, "activation": ACT_LABELS[act],
        "classifier_acc": book.classifier().record["test_acc"],
        "equal": {a: test_summary(main[(a, act)]) for a in plan.ARCHS},
        "epochs_equal": plan.EPOCHS,
        # the design with the lowest mean test MSE under each activation
        "best": {x: min(plan.ARCHS, key=lambda a: statistics.fmean(
            r.test["mse"] for r in main[(a, x)])) for x in plan.PAIR},
    }


def conclusions_facts(book: Book) -> dict:
    """Every number the conclusions print."""
    final = book.run(plan.final())
    pca = studies.pca_test(book)
    main = book.runs(plan.main_runs())

    def mean_mse(runs):
        return statistics.fmean(r.test["mse"] for r in runs)

    return {
        "final_mse": final.test["mse"],
        "pca64_mse": pca["64"]["mse"],
        "pca_k": analysis.equivalent_k(final.test["mse"], pca["mse"]),
        "pca_ks": [min(map(int, pca["mse"])), max(map(int, pca["mse"]))],
        "epochs": plan.EPOCHS, "final_epochs": final.config.epochs,
        # mean test MSE of the deep MLP over the shallow one's, per activation
        "deep_over_shallow": {x: mean_mse(main[("deep", x)])
                              / mean_mse(main[("shallow", x)])
                              for x in plan.PAIR},
        "plan_runs": len(plan.get("report")),
        "plan_minutes": book.plan_minutes("report"),
    }


def layer_markdown(model, group=()):
    """A model's layers as a Markdown table (`describe.layer_rows`)."""
    return markdown_table(["layer", "output shape", "parameters"],
                          describe.layer_rows(model, group))


def final_epoch(runs: list[Run]) -> dict:
    """The last epoch's history row, averaged over seeds."""
    rows = [r.history[-1] for r in runs]
    return {k: statistics.fmean(row[k] for row in rows) for k in rows[0]}
