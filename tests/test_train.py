import json
from dataclasses import replace

import pytest
import torch

import aecore.keys as keys_mod
import aecore.results as results_mod
import aecore.train as train_mod
from aecore import TrainConfig, fit, load_or_train
from aecore.classifier import load_or_train as reference
from aecore.errors import AecoreError, ConfigError, TrainingError

CFG = TrainConfig(arch="shallow", epochs=3, batch_size=64, lr=3e-3)
METRICS = ("loss", "mse", "psnr", "pixel_acc", "pixel_acc_floor",
           "fg_pixel_acc", "fg_pixel_acc_floor", "recog_acc")


def test_history_and_stored_result(tiny, store):
    record = fit(CFG, tiny, store, "cpu")
    assert len(record["history"]) == 3
    row = record["history"][-1]
    for split in ("train", "val"):
        for m in METRICS:
            assert f"{split}_{m}" in row
    assert row["seconds"] > 0 and row["eval_seconds"] > 0
    assert record["wall_seconds"] >= sum(r["seconds"] for r in
                                         record["history"])
    assert record["environment"]["precision"] == "fp32"
    assert record["history"][-1]["val_mse"] < record["history"][0]["val_mse"]
    folder = store.folder(CFG.name)
    on_disk = json.loads((folder / "result.json").read_text())
    assert on_disk["history"] == record["history"]
    assert set(on_disk["test"]) == {*METRICS, "mse_ci", "recog_acc_ci"}
    lo, hi = on_disk["test"]["mse_ci"]
    assert lo < on_disk["test"]["mse"] < hi
    assert not (folder / "checkpoint.pt").exists()
    # round trip: the stored weights reproduce the stored test metrics
    run = load_or_train(CFG, tiny, store)
    clf = reference(tiny, store)
    again = train_mod.test_metrics(run.model(), CFG.resolved(), tiny.test,
                                   clf)
    assert set(again) == set(run.test)
    for k, v in run.test.items():
        assert again[k] == pytest.approx(v, rel=1e-5), k


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
    monkeypatch.setattr(keys_mod, "code_version", lambda *a: "changed")
    load_or_train(CFG, tiny, store)
    assert len(calls) == 1


def test_another_config_never_overwrites_a_result(tiny, store, monkeypatch):
    """Another lr gets its own folder; both results stay valid. And if
    two configs ever shared a folder (a name collision, an older layout),
    the second would neither be served the first result nor delete it."""
    first = fit(CFG, tiny, store, "cpu")
    other = replace(CFG, lr=1e-3)
    second = fit(other, tiny, store, "cpu")
    assert other.name != CFG.name
    assert store.inspect(CFG.name, first["key"]).status == "valid"
    assert store.inspect(other.name, second["key"]).status == "valid"
    monkeypatch.setattr(TrainConfig, "name", property(lambda c: "shared"))
    first = fit(CFG, tiny, store, "cpu")
    other = replace(CFG, lr=1e-3)
    with pytest.raises(AecoreError, match="another config"):
        load_or_train(other, tiny, store)
    with pytest.raises(AecoreError, match="another config"):
        fit(other, tiny, store, "cpu")
    assert store.inspect("shared", first["key"]).status == "valid"
    assert store.weights("shared", first)


def test_interrupted_run_resumes_identically(tiny, store, tmp_path):
    reference_run = fit(CFG, tiny, results_mod.Store(tmp_path / "ref"), "cpu")

    def crash(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(CFG, tiny, store, "cpu", on_epoch_end=crash)
    assert (store.folder(CFG.name) / "checkpoint.pt").exists()
    assert not (store.folder(CFG.name) / "result.json").exists()
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
    assert store.inspect(CFG.name, old["key"]).status == "valid"
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

    def poisoned(model, X, target=None, beta=1.0):
        loss, X_hat = real(model, X, target, beta)
        return loss * float("nan"), X_hat

    monkeypatch.setattr(train_mod, "objective", poisoned)
    with pytest.raises(TrainingError, match="epoch 1"):
        fit(CFG, tiny, store, "cpu")


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(lr=-1.0),
                                 dict(arch="mlp"), dict(activation="x"),
                                 dict(batch_size=0), dict(code_size=-3),
                                 dict(code_size=0), dict(noise=-0.1),
                                 dict(noise=2.0), dict(normal_class=10),
                                 dict(precision="fp8"),
                                 dict(schedule="cosine"),
                                 dict(beta=float("inf"))])
def test_bad_config_rejected(bad):
    with pytest.raises(ConfigError):
        replace(CFG, **bad).resolved()


def test_vae_trains_and_records_kl_objective(tiny, store):
    record = fit(TrainConfig(arch="vae", epochs=1, batch_size=64), tiny,
                 store, "cpu")
    row = record["history"][0]
    assert row["val_loss"] > 784 * 4 * row["val_mse"]   # sum + KL term
    assert torch.isfinite(torch.tensor(row["running_loss"]))


def test_every_config_field_changes_the_folder():
    """Two configs never share a folder (a changed lr once overwrote a
    stored result)."""
    base = CFG.resolved()
    vae = replace(base, arch="vae", code_size=16, activation="gelu")
    variants = [replace(base, lr=1e-3), vae, replace(vae, beta=0.5),
                replace(base, noise=0.2), replace(base, noise=0.2,
                                                  fresh_noise=False),
                replace(base, normal_class=3),
                replace(base, precision="bf16"),
                replace(base, schedule="constant"),
                replace(base, loader="torchvision")]
    names = {c.name for c in [base, *variants]}
    assert len(names) == len(variants) + 1


@pytest.mark.parametrize("ignored", [
    dict(beta=0.5), dict(fresh_noise=False), dict(code_size=5,
                                                  arch="tf-denoiser"),
    dict(code_size=10**12), dict(loader="torchvision", noise=0.2),
    dict(seed=2**32), dict(lr=float("nan")), dict(beta=1e300)])
def test_options_that_would_be_ignored_are_refused(ignored):
    with pytest.raises(ConfigError):
        replace(CFG, **ignored).resolved()


def test_added_field_at_its_default_keeps_names_and_keys():
    """`loader` and `compile` came after results were first keyed: at
    their defaults the name hash and the key are what they were without
    the fields."""
    import hashlib
    from dataclasses import asdict
    d = asdict(CFG.resolved())
    del d["loader"], d["compile"]
    blob = json.dumps(d, sort_keys=True).encode()
    assert CFG.name.endswith(hashlib.sha256(blob).hexdigest()[:6])
    assert CFG.key_dict() == d


def test_torchvision_loader_serves_the_fast_paths_batches(synthetic_root):
    """Given the same generator, the assignment's DataLoader (per-image
    ToTensor and Normalize) yields exactly the preloaded batches, epoch
    after epoch."""
    from aecore import data as fmnist
    data = fmnist.load(synthetic_root)
    fast_gen = torch.Generator().manual_seed(0)
    loader = fmnist.assignment_loader(data, 64,
                                      torch.Generator().manual_seed(0))
    for _ in range(2):                 # the generator carries over
        fast = list(fmnist.batch_indices(len(data.train), 64, fast_gen))
        served = [X for X, _ in loader]
        assert len(served) == len(fast) == len(loader)
        for idx, X in zip(fast, served):
            assert torch.equal(X, data.train.X[idx])


def test_torchvision_loader_trains_the_same_model(synthetic_root, store):
    from aecore import data as fmnist
    data = fmnist.load(synthetic_root)
    fast = fit(replace(CFG, epochs=2), data, store, "cpu")
    twin_cfg = replace(CFG, epochs=2, loader="torchvision")
    twin = fit(twin_cfg, data, store, "cpu")
    assert "torchvision" in twin_cfg.name
    timeless = [{k: v for k, v in row.items() if "seconds" not in k}
                for row in (*fast["history"], *twin["history"])]
    assert timeless[:2] == timeless[2:]
    assert twin["test"] == fast["test"]
    assert twin["weights"]["sha256"] == fast["weights"]["sha256"]


def test_denoiser_sees_noisy_inputs_and_clean_targets(tiny, store,
                                                      monkeypatch):
    seen = []
    real = train_mod.objective

    def spy(model, X, target=None, beta=1.0):
        if model.training:
            seen.append((X.clone(), target.clone()))
        return real(model, X, target, beta)

    monkeypatch.setattr(train_mod, "objective", spy)
    cfg = replace(CFG, epochs=2, noise=0.3)
    record = fit(cfg, tiny, store, "cpu")
    X_in, target = seen[0]
    assert not torch.equal(X_in, target)
    assert X_in.min() >= -1 and X_in.max() <= 1
    # fresh noise: the same image gets other noise in the next epoch
    per_epoch = len(seen) // 2
    assert not torch.equal(seen[0][0], seen[per_epoch][0])
    test = record["test"]
    assert test["noisy_mse"] > 0 and "noisy_psnr" in test


def test_fixed_noise_is_one_copy(tiny, store, monkeypatch):
    seen = []
    real = train_mod.objective

    def spy(model, X, target=None, beta=1.0):
        if model.training:
            seen.append((X - target).pow(2).sum().item())
        return real(model, X, target, beta)

    monkeypatch.setattr(train_mod, "objective", spy)
    fit(replace(CFG, epochs=2, noise=0.3, fresh_noise=False,
                batch_size=10_000), tiny, store, "cpu")
    assert len(seen) == 2 and seen[0] == pytest.approx(seen[1])


def test_one_class_run_trains_on_one_class_and_scores_auroc(tiny, store):
    cfg = replace(CFG, epochs=2, normal_class=3)
    record = fit(cfg, tiny, store, "cpu")
    one = tiny.only_class(3)
    assert set(one.train.y.tolist()) == {3}
    assert len(one.train) == \
        (tiny.train.y == 3).sum() + (tiny.val.y == 3).sum()
    test = record["test"]
    assert len(test["scores"]) == len(tiny.test)
    assert 0 <= test["auroc"] <= 1
    assert "recog_acc" not in test and "val_recog_acc" not in record[
        "history"][0]


def test_weights_not_kept_leave_a_valid_record(tiny, store):
    record = fit(CFG, tiny, store, "cpu", keep_weights=False)
    assert record["weights"]["kept"] is False
    assert not list(store.folder(CFG.name).glob("weights-*"))
    run = load_or_train(CFG, tiny, store)          # served, not retrained
    assert run.test == record["test"]
    with pytest.raises(AecoreError, match="not kept"):
        run.model()


def test_tutorial_loss_is_on_the_unit_scale():
    from aecore import models
    model = models.build("tf-dense")
    X = torch.rand(4, 1, 28, 28) * 2 - 1
    loss, X_hat = train_mod.objective(model, X)
    assert loss.item() == pytest.approx(
        ((X_hat - X) / 2).pow(2).mean().item(), rel=1e-5)


def test_constant_schedule_keeps_the_rate(tiny, store):
    cfg = replace(CFG, epochs=1, schedule="constant", lr=1e-3)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = train_mod.make_schedule(opt, cfg, 10)
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == 1e-3


def test_classifier_never_sees_the_curve_subset(tiny, store, monkeypatch):
    from aecore import classifier as ref
    seen = []
    real = ref.ReferenceCNN.forward

    def spy(self, x):
        if self.training:
            seen.append(x.detach().clone())
        return real(self, x)

    monkeypatch.setattr(ref.ReferenceCNN, "forward", spy)
    reference(tiny, store)
    n = ref.eval_size(len(tiny.train))
    held_out = tiny.train.X[:n].flatten(1)
    trained = torch.cat(seen).flatten(1)
    # no held-out image appears among the classifier's training inputs
    same = (held_out[:, None, :] == trained[None, :, :]).all(-1)
    assert n > 0 and not same.any()


def test_run_key_names_the_classifier_key_and_weights(tiny):
    clf = {"key": "k", "weights": {"sha256": "a" * 64}}
    keys = {keys_mod.run_key(CFG, tiny.fingerprint, c) for c in (
        clf, {**clf, "weights": {"sha256": "b" * 64}},
        {**clf, "key": "other"}, None)}
    assert len(keys) == 4


def test_result_changing_code_is_hashed():
    """Every aecore module that training imports, directly or not, is in
    the results key, or declared to enter it by value or not at all."""
    import ast
    from pathlib import Path
    here = Path(train_mod.__file__).parent
    graph = {}
    for path in here.glob("*.py"):
        tree = ast.parse(path.read_text())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps.update(a.name for a in node.names)
        graph[path.stem] = deps
    seen, todo = set(), ["train"]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += graph.get(name, ())
    declared = set(keys_mod.NUMERIC_MODULES) | set(
        keys_mod.OUTSIDE_THE_KEY)
    assert seen == declared, seen ^ declared


def _key_with(tmp_path, module, edit):
    """The code version of a copy of aecore with `edit` applied to
    `module`'s source."""
    import shutil
    from pathlib import Path
    here = Path(train_mod.__file__).parent
    copy = tmp_path / "aecore"
    shutil.copytree(here, copy, ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / f"{module}.py"
    path.write_text(edit(path.read_text()))
    return keys_mod.code_version.__wrapped__(
        keys_mod.NUMERIC_MODULES, root=copy)


@pytest.mark.parametrize("module, edit", [
    ("runtime", lambda s: s.replace("line += f\" recog", "line += f\" rec")),
    ("describe", lambda s: s + "\n\ndef helper():\n    return 1\n"),
    ("runs", lambda s: s + "\n\nX = 1\n"),
    ("results", lambda s: s + "\n\nX = 1\n"),
    ("config", lambda s: s.replace("must be a positive integer",
                                   "must be an integer >= 1")),
    ("train", lambda s: s.replace("def fit(", "def fit(  # comment\n")),
])
def test_edits_that_change_no_number_keep_the_key(tmp_path, module, edit):
    assert _key_with(tmp_path, module, edit) == keys_mod.code_version()


@pytest.mark.parametrize("module, edit", [
    ("train", lambda s: s.replace("s.opt.zero_grad(set_to_none=True)",
                                  "s.opt.zero_grad(set_to_none=False)")),
    ("models", lambda s: s.replace("nn.Tanh()", "nn.Sigmoid()", 1)),
    ("metrics", lambda s: s.replace("PIXEL_TOLERANCE = 0.1",
                                    "PIXEL_TOLERANCE = 0.2")),
    ("data", lambda s: s.replace("VAL_SIZE = 6000", "VAL_SIZE = 5000")),
])
def test_edits_that_can_change_a_number_change_the_key(tmp_path, module,
                                                       edit):
    assert _key_with(tmp_path, module, edit) != keys_mod.code_version()
