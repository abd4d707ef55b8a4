"""Stored runs as objects: `load_or_train` returns the stored result for a
config when it is valid and trains it otherwise."""

from __future__ import annotations

from dataclasses import asdict

from . import classifier as ref
from . import data as fmnist
from . import models
from . import train as trainer
from .results import Store, make_key
from .train import TrainConfig


class Run:
    """A stored result: its record (config, history, test metrics) and,
    on demand, the trained model."""

    def __init__(self, record: dict, store: Store):
        self.record, self.store = record, store
        self.config = TrainConfig(**record["config"])
        self.name = record["name"]
        self.history = record["history"]
        self.test = record["test"]

    def curve(self, key: str) -> list[float]:
        return [row[key] for row in self.history]

    def model(self, device="cpu"):
        c = self.config
        model = models.build(c.arch, c.code_size, c.activation)
        model.load_state_dict(self.store.weights(self.name, self.record))
        return model.to(device).eval()

    def __repr__(self):
        return f"Run({self.name}, test mse {self.test['mse']:.5f})"


def classifier_sha(data, store: Store) -> str:
    """SHA-256 of the valid stored reference classifier's weights, or
    "none" (then no stored run can be valid: its key names the
    classifier it was measured with)."""
    if classifier_status(data, store)[0] != "valid":
        return "none"
    return store.read(ref.NAME)["weights"]["sha256"]


def key(cfg: TrainConfig, data, store: Store) -> str:
    """The key a valid stored result for `cfg` on `data` carries."""
    return trainer.run_key(cfg, data.fingerprint, classifier_sha(data, store))


REQUIRED = ("history", "test")   # what a run's record must hold


def diagnose(cfg: TrainConfig, data, store: Store) -> tuple[str, str]:
    """(status, reason); see `Store.diagnose`."""
    return store.diagnose(cfg.name, key(cfg, data, store), REQUIRED)


def status(cfg: TrainConfig, data, store: Store) -> str:
    """'valid', 'missing', 'stale' or 'damaged' (see `Store.status`):
    damaged covers a structurally broken result.json and weights whose
    SHA-256 differs from the recorded one."""
    return diagnose(cfg, data, store)[0]


def stored(cfg: TrainConfig, data, store: Store) -> Run | None:
    """The valid stored result for `cfg`, or None."""
    record = store.load(cfg.name, key(cfg, data, store), REQUIRED)
    return None if record is None else Run(record, store)


def classifier_status(data, store: Store) -> tuple[str, str]:
    """(status, reason) of the stored reference classifier."""
    k = make_key(asdict(ref.ClassifierConfig()), data.fingerprint,
                 ref.CODE)
    return store.diagnose(ref.NAME, k)


def prepare(cfg: TrainConfig, store: Store) -> None:
    """Checks before any training: the results folder is writable and
    the run's folder holds no other config's result."""
    store.check_writable(cfg.name)
    store.check_free(cfg.name, asdict(cfg.resolved()))


def load_or_train(cfg: TrainConfig, data=None, store=None, device=None,
                  log=None, progress=False, keep_weights=True) -> Run:
    """The stored result for `cfg` if valid, else train it now."""
    cfg = cfg.resolved()
    store = store or Store()
    data = data or fmnist.load()
    run = stored(cfg, data, store)
    if run is None:
        state, reason = diagnose(cfg, data, store)
        prepare(cfg, store)
        if log:
            log(f"{cfg.name}: {state} result"
                + (f" ({reason})" if state == "damaged" else "")
                + ", training")
        run = Run(trainer.fit(cfg, data, store, device, progress=progress,
                              log=log, keep_weights=keep_weights), store)
    return run
