import json
from dataclasses import replace

import pytest
import torch

import aecore.results as results_mod
import aecore.train as train_mod
from aecore import TrainConfig, fit, load_or_train
from aecore.classifier import load_or_train as reference
from aecore.errors import AecoreError, ConfigError, TrainingError

CFG = TrainConfig(arch="shallow", epochs=3, batch_size=64, lr=3e-3)
METRICS = ("loss", "mse", "psnr", "pixel_acc", "recog_acc")


def test_history_and_stored_result(tiny, store):
    record = fit(CFG, tiny, store, "cpu")
    assert len(record["history"]) == 3
    row = record["history"][-1]
    for split in ("train", "val"):
        for m in METRICS:
            assert f"{split}_{m}" in row
    assert row["seconds"] > 0
    assert record["history"][-1]["val_mse"] < record["history"][0]["val_mse"]
    folder = store.folder(CFG.name)
    on_disk = json.loads((folder / "result.json").read_text())
    assert on_disk["history"] == record["history"]
    assert set(on_disk["test"]) == set(METRICS)
    assert not (folder / "checkpoint.pt").exists()
    # round trip: the stored weights reproduce the stored test metrics
    run = load_or_train(CFG, tiny, store)
    clf = reference(tiny, store)
    again = train_mod.evaluate(run.model(), tiny.test, clf)
    assert again == pytest.approx(run.test, rel=1e-5)


def test_valid_result_is_served_not_retrained(tiny, store, monkeypatch):
    fit(CFG, tiny, store, "cpu")

    def no_training(*a, **k):
        raise AssertionError("trained although a valid result was stored")

    monkeypatch.setattr(train_mod, "fit", no_training)
    assert load_or_train(CFG, tiny, store).history


def test_changed_code_is_retrained_not_served(tiny, store, monkeypatch):
    fit(CFG, tiny, store, "cpu")
    calls = []
    real_fit = train_mod.fit
    monkeypatch.setattr(train_mod, "fit",
                        lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    load_or_train(CFG, tiny, store)
    assert not calls
    monkeypatch.setattr(results_mod, "code_version", lambda *a: "changed")
    load_or_train(CFG, tiny, store)
    assert len(calls) == 1


def test_another_config_never_overwrites_a_result(tiny, store):
    """lr is not in the folder name: a run with another lr must neither
    be served the first result nor delete it."""
    first = fit(CFG, tiny, store, "cpu")
    other = replace(CFG, lr=1e-3)
    assert other.name == CFG.name
    with pytest.raises(AecoreError, match="another config"):
        load_or_train(other, tiny, store)
    with pytest.raises(AecoreError, match="another config"):
        fit(other, tiny, store, "cpu")
    assert store.status(CFG.name, first["key"]) == "valid"
    assert store.weights(CFG.name, first)


def test_interrupted_run_resumes_identically(tiny, store, tmp_path):
    reference_run = fit(CFG, tiny, results_mod.Store(tmp_path / "ref"), "cpu")

    def crash(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(CFG, tiny, store, "cpu", on_epoch_end=crash)
    assert (store.folder(CFG.name) / "checkpoint.pt").exists()
    assert store.read(CFG.name) is None
    lines = []
    resumed = fit(CFG, tiny, store, "cpu", log=lines.append)
    assert any("resuming after epoch 1" in line for line in lines)
    for got, want in zip(resumed["history"], reference_run["history"],
                         strict=True):
        for k in ("running_loss", "val_mse", "val_recog_acc"):
            assert got[k] == pytest.approx(want[k], rel=1e-6)


def test_crash_while_saving_keeps_previous_result(tiny, store, monkeypatch):
    old = fit(CFG, tiny, store, "cpu")
    real_replace = results_mod.os.replace

    def dying_replace(src, dst):
        if str(dst).endswith("result.json"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(results_mod.os, "replace", dying_replace)
    with pytest.raises(OSError):
        fit(replace(CFG, seed=5, lr=1e-3), tiny, store, "cpu")
    monkeypatch.undo()
    assert store.status(CFG.name, old["key"]) == "valid"
    weights = store.weights(CFG.name, old)       # checks the SHA-256
    assert set(weights) == set(load_or_train(CFG, tiny, store)
                               .model().state_dict())
    assert not list(store.folder(CFG.name).glob(".tmp-*"))


def test_same_seed_same_losses(tiny, tmp_path):
    first = [fit(replace(CFG, epochs=1), tiny,
                 results_mod.Store(tmp_path / str(i)), "cpu")
             ["history"][0]["running_loss"] for i in range(2)]
    assert first[0] == first[1]


def test_nan_loss_names_epoch(tiny, store, monkeypatch):
    real = train_mod.objective

    def poisoned(model, X, beta=1.0):
        loss, X_hat = real(model, X, beta)
        return loss * float("nan"), X_hat

    monkeypatch.setattr(train_mod, "objective", poisoned)
    with pytest.raises(TrainingError, match="epoch 1"):
        fit(CFG, tiny, store, "cpu")


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(lr=-1.0),
                                 dict(arch="mlp"), dict(activation="x"),
                                 dict(batch_size=0), dict(code_size=-3),
                                 dict(code_size=0)])
def test_bad_config_rejected(bad):
    with pytest.raises(ConfigError):
        replace(CFG, **bad).resolved()


def test_vae_trains_and_records_kl_objective(tiny, store):
    record = fit(TrainConfig(arch="vae", epochs=1, batch_size=64), tiny,
                 store, "cpu")
    row = record["history"][0]
    assert row["val_loss"] > 784 * 4 * row["val_mse"]   # sum + KL term
    assert torch.isfinite(torch.tensor(row["running_loss"]))
