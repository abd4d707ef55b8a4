"""Stored runs: the one way to ask for a config's result.

`inspect(cfg, data, store)` says what the store holds for a config (an
`Entry`: status, reason, record), reading its record once;
`stored(...)` returns the valid result as a `Run`; `load_or_train`
trains what is missing, stale or damaged. A record counts as valid only
if every field the book reads checks out (`run_problem`).
"""

from __future__ import annotations

import math

from . import classifier as ref
from . import data as fmnist
from . import models
from . import train as trainer
from .config import TrainConfig
from .errors import AecoreError, ConfigError
from .results import Entry, Store, run_key

METRIC_RANGES = {"mse": (0, 4), "loss": (0, math.inf), "psnr": (-10, 101),
                 "pixel_acc": (0, 1), "pixel_acc_floor": (0, 1),
                 "fg_pixel_acc": (0, 1), "fg_pixel_acc_floor": (0, 1),
                 "recog_acc": (0, 1), "auroc": (0, 1), "kl": (0, math.inf),
                 "noisy_mse": (0, 4), "noisy_psnr": (-10, 101)}
ROW_FIELDS = ("epoch", "seconds", "eval_seconds", "running_loss",
              "train_mse", "val_mse", "val_psnr", "val_pixel_acc")


class Run:
    """A valid stored result: its record (config, history, test
    metrics) and, on demand, the trained model."""

    def __init__(self, record: dict, store: Store):
        self.record, self.store = record, store
        self.config = TrainConfig.from_record(record["config"])
        self.name = record["name"]
        self.history = record["history"]
        self.test = record["test"]

    def curve(self, key: str) -> list[float]:
        return [row[key] for row in self.history]

    def model(self, device="cpu"):
        c = self.config
        model = models.build(c.arch, c.code_size, c.activation)
        try:
            model.load_state_dict(self.store.weights(self.name, self.record))
        except (RuntimeError, KeyError, TypeError) as exc:
            raise AecoreError(f"{self.store.folder(self.name)}: damaged "
                              f"weights ({str(exc).splitlines()[0][:80]}); "
                              "train the run again") from None
        return model.to(device).eval()

    def __repr__(self):
        return f"Run({self.name}, test mse {self.test['mse']:.5f})"


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metric_problem(where: str, name: str, value) -> str | None:
    low, high = METRIC_RANGES.get(name, (-math.inf, math.inf))
    if not _number(value) or not low <= value <= high:
        return f"has {where}{name} = {str(value)[:40]}, not a number in " \
               f"[{low}, {high}]"
    return None


def run_problem(record: dict, cfg: TrainConfig) -> str | None:
    """Why a structurally sound record is not a usable result of `cfg`,
    or None: its config must be `cfg`'s, its history one row per epoch
    with the curves' numbers, its test metrics numbers in range."""
    try:
        stored = TrainConfig.from_record(record["config"])
    except (ConfigError, TypeError) as exc:
        return f"holds a config that is not one ({exc})"
    if stored.key_dict() != cfg.key_dict():
        return "holds another config than the one its key names"
    history, test = record.get("history"), record.get("test")
    if not isinstance(history, list) or len(history) != cfg.epochs:
        return f"has no history of {cfg.epochs} epochs"
    for i, row in enumerate(history, 1):
        if not isinstance(row, dict) or row.get("epoch") != i:
            return f"has no valid history row for epoch {i}"
        for field in ROW_FIELDS:
            if not _number(row.get(field)):
                return f"has no number {field!r} in epoch {i}'s row"
        for split in ("train", "val"):
            for name in METRIC_RANGES:
                if f"{split}_{name}" in row:
                    problem = _metric_problem(f"epoch {i}'s {split}_",
                                              name, row[f"{split}_{name}"])
                    if problem:
                        return problem
    if not isinstance(test, dict) or "mse" not in test:
        return "has no valid 'test' metrics"
    for name, value in test.items():
        if name in METRIC_RANGES:
            problem = _metric_problem("test ", name, value)
            if problem:
                return problem
    if cfg.normal_class is not None and not (
            "auroc" in test and isinstance(test.get("scores"), list)):
        return "has no one-class scores"
    if not _number(record.get("wall_seconds")):
        return "has no 'wall_seconds'"
    return None


def classifier_entry(data, store: Store) -> Entry:
    """What the store holds of the reference classifier."""
    return store.inspect(ref.NAME, ref.key(data), _classifier_problem)


def _classifier_problem(record: dict) -> str | None:
    acc = record.get("test_acc")
    if not (_number(acc) and 0 <= acc <= 1):
        return "has no test accuracy in [0, 1]"
    return None


def key(cfg: TrainConfig, data, store: Store) -> str:
    """The key a valid stored result for `cfg` on `data` carries; it
    names the valid stored classifier (or none)."""
    clf = classifier_entry(data, store)
    return run_key(cfg.resolved(), data.fingerprint,
                   clf.record if clf.status == "valid" else None)


def inspect(cfg: TrainConfig, data, store: Store) -> Entry:
    """The one way to ask a run's state: status, reason and record."""
    cfg = cfg.resolved()
    return store.inspect(cfg.name, key(cfg, data, store),
                         lambda record: run_problem(record, cfg))


def stored(cfg: TrainConfig, data, store: Store) -> Run | None:
    """The valid stored result for `cfg`, or None."""
    entry = inspect(cfg, data, store)
    if entry.status != "valid":
        return None
    store.tidy(cfg.resolved().name,
               keep=entry.record["weights"]["file"] or "")
    return Run(entry.record, store)


def prepare(cfg: TrainConfig, store: Store) -> None:
    """Checks before any training: the results folder is writable, the
    run's final files can be written, and its folder holds no other
    config's result."""
    cfg = cfg.resolved()
    store.check_writable(cfg.name)
    store.check_free(cfg.name, cfg.key_dict())


def load_or_train(cfg: TrainConfig, data=None, store=None, device=None,
                  log=None, progress=False, keep_weights=True,
                  force=False) -> Run:
    """The stored result for `cfg` if valid (unless `force`), else train
    it now. Training holds the run's lock: a second process asking for
    the same run waits, then uses the result the first one stored."""
    cfg = cfg.resolved()
    store = store or Store()
    data = data or fmnist.load()
    run = None if force else stored(cfg, data, store)
    if run is not None:
        return run
    with store.lock(cfg.name):
        entry = inspect(cfg, data, store)
        if entry.status == "valid" and not force:   # made while we waited
            return Run(entry.record, store)
        prepare(cfg, store)
        if log:
            log(f"{cfg.name}: {entry.status} result"
                + (f" ({entry.reason})" if entry.status == "damaged"
                   else "") + ", training")
        record = trainer.fit(cfg, data, store, device, progress=progress,
                             log=log, keep_weights=keep_weights)
    return Run(record, store)


# -- a whole plan: `python -m aecore train-all` -----------------------------

def split_cores(jobs, device, n_todo: int, cores: int) -> tuple[int, int]:
    """(runs at once, threads per run). On a CPU, `auto` trains one run
    per core, one thread each; on a GPU runs go one at a time."""
    if device.type != "cpu":
        if jobs not in ("auto", 1):
            raise AecoreError(f"--jobs {jobs}: runs on {device} train one "
                              "at a time; use --jobs 1 or auto")
        return 1, cores
    if jobs == "auto":
        jobs = cores
    jobs = max(1, min(jobs, n_todo, 8))
    return jobs, max(1, cores // jobs)


def train_plan(name: str, data, store: Store, device, jobs="auto",
               log=print, progress=False) -> dict:
    """Train every run of plan `name` without a valid stored result,
    `jobs` at a time (longest first, as `plan.schedule` predicts), and
    write the plan's record (`plans/<name>.json`): its wall time when
    this call trained something, rewritten from the stored runs when
    it is missing or damaged. Returns the record."""
    import time
    from datetime import datetime

    import torch

    from . import plan
    from .results import atomic_save_json
    configs = plan.get(name)
    entries = {c.name: inspect(c, data, store) for c in configs}
    todo = [c for c in configs if entries[c.name].status != "valid"]
    jobs, threads = split_cores(jobs, device, len(todo) or len(configs),
                                torch.get_num_threads())
    if todo:
        ref.load_or_train(data, store, device, log=log)  # before workers
    # The plan's time starts here: the reference classifier, shared by
    # every plan and trained once, is not part of it.
    start = time.perf_counter()
    times = {}
    if todo and jobs > 1:
        log(f"training {len(todo)} runs, {jobs} at a time, {threads} "
            f"CPU thread{'s' if threads > 1 else ''} each")
        costs = {c.name: (entries[c.name].record or {}).get(
            "wall_seconds") or plan.estimated_seconds(c) for c in todo}
        from .parallel import train_parallel
        times = train_parallel(todo, name, costs, data, store, device,
                               jobs, threads, log)
    for i, cfg in enumerate(configs, 1):
        if cfg.name in times:
            continue
        if cfg in todo:
            log(f"[{i}/{len(configs)}] {cfg.name}")
        tick = time.perf_counter()
        run = load_or_train(cfg, data, store, device, log=log,
                            progress=progress,
                            keep_weights=plan.keeps_weights(cfg, name))
        times[cfg.name] = {"now": time.perf_counter() - tick,
                           "trained": cfg in todo,
                           "stored": run.record.get("wall_seconds")}
    total = time.perf_counter() - start
    path = store.root / "plans" / f"{name}.json"
    old = plan_record(store, name)
    if todo or old is None:
        old = {"plan": name, "date": datetime.now().astimezone().isoformat(
                   timespec="seconds"),
               "runs": {c.name: times[c.name] for c in configs},
               "this_call_seconds": total if todo else None,
               "trained_now": len(todo), "jobs": jobs,
               "threads_per_job": threads,
               "stored_seconds": sum(t["stored"] or 0
                                     for t in times.values())}
        atomic_save_json(path, old)
    return {**old, "trained_now": len(todo), "this_call_seconds": total}


def plan_record(store: Store, name: str) -> dict | None:
    """The stored record of plan `name`, or None if it is missing or
    not a record (then `train_plan` writes it again)."""
    import json
    path = store.root / "plans" / f"{name}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    from . import plan
    if not (isinstance(record, dict) and record.get("plan") == name
            and isinstance(record.get("runs"), dict)
            and isinstance(record.get("jobs"), int)
            and set(record["runs"]) == {c.name for c in plan.get(name)}):
        return None                   # damaged, or of an older plan
    return record
