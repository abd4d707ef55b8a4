"""Fault injection: damaged files, bad values, closed pipes and full disks
each give one clear line or heal themselves; nothing stored is lost and
nothing wrong is served. Everything runs on the tiny synthetic data."""

from __future__ import annotations

import errno
import json
import math
import shutil
import subprocess
import sys

import pytest
import torch
from test_cli import cli

import aecore.cli as cli_mod
import aecore.results as results_mod
from aecore import TrainConfig, fit, load_or_train, runs
from aecore.cli import main
from aecore.errors import AecoreError

CFG = TrainConfig(arch="shallow", epochs=2, batch_size=64)


@pytest.fixture
def trained(tiny, store):
    record = fit(CFG, tiny, store, "cpu")
    return record, store.folder(CFG.name)


def comparable(record):
    """What must agree between two runs of the same config."""
    rows = [{k: v for k, v in r.items() if "seconds" not in k}
            for r in record["history"]]
    return rows, record["test"], record["weights"]["sha256"]


# --- damaged records and weights -------------------------------------

DAMAGE = {
    "weights removed": lambda r: r.pop("weights"),
    "weights null": lambda r: r.update(weights=None),
    "test removed": lambda r: r.pop("test"),
    "history removed": lambda r: r.pop("history"),
    "history not a list": lambda r: r.update(history=3),
}


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_record_is_damaged_and_healed(how, tiny, store, trained):
    record, folder = trained
    broken = json.loads((folder / "result.json").read_text())
    DAMAGE[how](broken)
    (folder / "result.json").write_text(json.dumps(broken))
    state, reason = runs.diagnose(CFG, tiny, store)
    assert state == "damaged" and reason
    assert runs.stored(CFG, tiny, store) is None
    healed = load_or_train(CFG, tiny, store)          # retrains it
    assert runs.status(CFG, tiny, store) == "valid"
    assert comparable(healed.record) == comparable(record)


@pytest.mark.parametrize("text", ["[]", "{not json", "", "null"])
def test_unparsable_record_is_damaged(text, tiny, store, trained):
    _, folder = trained
    (folder / "result.json").write_text(text)
    assert runs.status(CFG, tiny, store) == "damaged"


@pytest.mark.parametrize("how", ["flip", "truncate", "delete"])
def test_damaged_weights_are_not_valid(how, tiny, store, trained):
    record, folder = trained
    path = folder / record["weights"]["file"]
    blob = bytearray(path.read_bytes())
    if how == "flip":
        blob[len(blob) // 2] ^= 0x01
        path.write_bytes(bytes(blob))
    elif how == "truncate":
        path.write_bytes(bytes(blob[: len(blob) // 2]))
    else:
        path.unlink()
    assert runs.status(CFG, tiny, store) == "damaged"
    assert runs.stored(CFG, tiny, store) is None
    healed = load_or_train(CFG, tiny, store)
    assert healed.record["weights"]["sha256"] == record["weights"]["sha256"]


# --- checkpoints -------------------------------------------------------

def crash_after_first_epoch(epoch):
    if epoch == 1:
        raise KeyboardInterrupt


def interrupted(tiny, store):
    with pytest.raises(KeyboardInterrupt):
        fit(CFG, tiny, store, "cpu", on_epoch_end=crash_after_first_epoch)
    path = store.folder(CFG.name) / "checkpoint.pt"
    assert path.is_file()
    return path


def bit_flip(path):
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 0x10              # inside the tensor data
    path.write_bytes(bytes(blob))


def holds_a_list(path):
    torch.save([1, 2, 3], path)


def without_opt(path):
    """A well-formed checkpoint (valid checksum) that lacks `opt`."""
    blob = path.read_bytes()
    body = blob[len(results_mod.CHECKPOINT_MAGIC) + 65:]
    import io
    payload = torch.load(io.BytesIO(body), weights_only=True)
    del payload["opt"]
    results_mod.Store(path.parent.parent).save_checkpoint(path.parent.name,
                                                          payload)


def not_torch(path):
    path.write_bytes(b"garbage")


@pytest.mark.parametrize("damage", [bit_flip, holds_a_list, without_opt,
                                    not_torch])
def test_bad_checkpoint_is_reported_and_ignored(damage, tiny, store,
                                                tmp_path):
    fresh = fit(CFG, tiny, results_mod.Store(tmp_path / "fresh"), "cpu")
    path = interrupted(tiny, store)
    damage(path)
    notes = []
    store.warn = notes.append
    log = []
    record = fit(CFG, tiny, store, "cpu", log=log.append)
    assert len(notes) == 1 and "ignoring" in notes[0], notes
    assert "\n" not in notes[0]
    assert not any("resuming" in line for line in log)
    assert comparable(record) == comparable(fresh)


def test_good_checkpoint_resumes(tiny, store, tmp_path):
    fresh = fit(CFG, tiny, results_mod.Store(tmp_path / "fresh"), "cpu")
    interrupted(tiny, store)
    log = []
    record = fit(CFG, tiny, store, "cpu", log=log.append)
    assert any("resuming after epoch 1" in line for line in log)
    assert comparable(record) == comparable(fresh)


def test_kill_during_final_result_write_reruns_identically(
        tiny, store, tmp_path, monkeypatch):
    """Killed just before the fsync of result.json's temporary file in
    the final save: the rerun equals an uninterrupted run."""
    fresh = fit(CFG, tiny, results_mod.Store(tmp_path / "fresh"), "cpu")
    real_fsync = results_mod.os.fsync

    def killed(fd):
        target = results_mod.os.readlink(f"/proc/self/fd/{fd}")
        if "/.tmp-" in target and results_mod.os.path.getsize(target) < 2e5:
            raise KeyboardInterrupt      # the JSON, not the weights
        real_fsync(fd)

    monkeypatch.setattr(results_mod.os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        fit(CFG, tiny, store, "cpu")
    monkeypatch.undo()
    record = load_or_train(CFG, tiny, store).record
    assert comparable(record) == comparable(fresh)
    folder = store.folder(CFG.name)
    assert not list(folder.glob(".tmp-*"))
    assert not (folder / "checkpoint.pt").exists()
    assert [p.name for p in folder.glob("weights-*.pt")] == [
        record["weights"]["file"]]


def test_leftovers_of_killed_writes_are_removed(tiny, store, trained):
    record, folder = trained
    (folder / ".tmp-abc123").write_bytes(b"half a file")
    (folder / "weights-000000000000.pt").write_bytes(b"old weights")
    (folder / "checkpoint.pt").write_bytes(b"old checkpoint")
    assert load_or_train(CFG, tiny, store).record["key"] == record["key"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "result.json", record["weights"]["file"]]


# --- the results folder ------------------------------------------------

def test_results_path_that_is_a_file(synthetic_root, tmp_path):
    bad = tmp_path / "results-file"
    bad.write_text("not a folder")
    res = cli("train", "--arch", "shallow", "--epochs", "1",
              "--data", str(synthetic_root), "--results", str(bad))
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert "is not a folder" in res.stderr
    assert "training" not in res.stdout       # found before any work
    res = cli("train-all", "--plan", "smoke", "--data", str(synthetic_root),
              env={"AECORE_RESULTS": str(bad)})
    assert res.returncode == 1 and "is not a folder" in res.stderr
    assert "classifier" not in res.stdout


def test_unwritable_results_folder_found_first(tiny, store, monkeypatch):
    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(results_mod.tempfile, "mkstemp", refuse)
    calls = []
    monkeypatch.setattr(runs.trainer, "fit", lambda *a, **k: calls.append(1))
    with pytest.raises(AecoreError, match="not writable"):
        load_or_train(CFG, tiny, store)
    assert not calls


def test_full_disk_is_one_line(synthetic_root, tmp_path, monkeypatch,
                               capsys):
    def full(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(results_mod, "_atomic_write_bytes", full)
    code = main(["train", "--arch", "shallow", "--epochs", "1",
                 "--batch-size", "64", "--data", str(synthetic_root),
                 "--results", str(tmp_path / "r"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert "No space left on device" in err
    assert len(err.strip().splitlines()) == 1


def test_rename_is_made_durable(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(results_mod, "_fsync_dir", synced.append)
    results_mod.atomic_save_json(tmp_path / "x.json", {"a": 1})
    assert synced == [tmp_path]


def test_non_finite_numbers_never_reach_json(tmp_path):
    with pytest.raises(AecoreError, match="non-finite"):
        results_mod.atomic_save_json(tmp_path / "x.json", {"a": math.inf})
    assert not (tmp_path / "x.json").exists()


# --- command-line values -----------------------------------------------

@pytest.mark.parametrize("args, word", [
    (["--seed", str(2**64)], "2**32 - 1"),
    (["--seed", str(-2**63 - 1)], "2**32 - 1"),
    (["--seed", str(2**32)], "2**32 - 1"),
    (["--seed", "-1"], "2**32 - 1"),
    (["--lr", "inf"], "finite"),
    (["--lr", "nan"], "finite"),
    (["--beta", "nan"], "finite"),
    (["--beta", "inf"], "finite"),
    (["--beta", "-1"], ">= 0"),
    (["--device", "meta"], "devices here: cpu"),
    (["--device", "banana"], "devices here: cpu"),
    (["--device", "mps"], "devices here: cpu"),
])
def test_bad_values_are_one_line_before_any_work(args, word, capsys):
    if "mps" in args and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--arch", "shallow", *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert word in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_without_a_gpu_is_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--arch", "conv", "--device", "cuda"])
    err = capsys.readouterr().err
    assert "CUDA is not available" in err
    assert len(err.strip().splitlines()) == 1


def test_largest_seed_is_accepted(capsys):
    args = cli_mod.build_parser().parse_args(
        ["train", "--arch", "shallow", "--seed", str(2**32 - 1)])
    assert args.seed == 2**32 - 1


# --- output and messages -----------------------------------------------

def test_closed_stdout_never_stops_training(synthetic_root, tmp_path):
    """`train ... | head -1`: the run is stored and the exit status is
    the run's own."""
    cmd = (f"{sys.executable} -m aecore train --arch shallow --epochs 3 "
           f"--batch-size 64 --device cpu --data {synthetic_root} "
           f"--results {tmp_path} | head -1")
    res = subprocess.run(["bash", "-o", "pipefail", "-c", cmd],
                         capture_output=True, text=True, timeout=300,
                         env={**cli_mod.os.environ, "AECORE_DOWNLOAD": "0"})
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr
    folder, = tmp_path.glob("shallow-relu-z64-e3-b64-s0-*")
    record = json.loads((folder / "result.json").read_text())
    assert len(record["history"]) == 3


def test_bench_out_checked_before_measuring(synthetic_root, tmp_path):
    res = cli("bench", "--smoke", "--out", str(tmp_path),
              "--data", str(synthetic_root))
    assert res.returncode == 1
    assert "is a folder" in res.stderr and "Traceback" not in res.stderr
    assert "ceiling" not in res.stdout


def test_evaluate_never_trains_the_classifier(synthetic_root, tmp_path):
    results = tmp_path / "r"
    trained = cli("train", "--arch", "shallow", "--epochs", "1",
                  "--batch-size", "64", "--device", "cpu", "--data",
                  str(synthetic_root), "--results", str(results))
    assert trained.returncode == 0, trained.stderr
    shutil.rmtree(results / "classifier")
    res = cli("evaluate", "--arch", "shallow", "--epochs", "1",
              "--batch-size", "64", "--device", "cpu", "--data",
              str(synthetic_root), "--results", str(results))
    assert res.returncode == 1
    assert "reference classifier is missing" in res.stderr
    assert "never trains" in res.stderr
    assert not (results / "classifier").exists()


def test_list_shows_damage_and_torch_version(synthetic_root, tmp_path):
    results = tmp_path / "r"
    common = ["--data", str(synthetic_root), "--results", str(results),
              "--device", "cpu"]
    assert cli("train-all", "--plan", "smoke", *common).returncode == 0
    listing = cli("list", "--plan", "smoke", *common[:4])
    assert listing.stdout.count("valid") == 5, listing.stdout
    folders = sorted(p for p in results.iterdir()
                     if (p / "result.json").is_file()
                     and p.name != "classifier")
    (folders[0] / "result.json").write_text("[]")
    record = json.loads((folders[1] / "result.json").read_text())
    record["environment"]["torch"] = "0.0.1"
    (folders[1] / "result.json").write_text(json.dumps(record))
    listing = cli("list", "--plan", "smoke", *common[:4]).stdout
    assert f"damaged  {folders[0].name}" in listing
    assert "made with torch 0.0.1" in listing
    again = cli("train-all", "--plan", "smoke", *common)
    assert again.returncode == 0 and "1 trained now" in again.stdout
    assert "damaged" not in cli("list", "--plan", "smoke",
                                *common[:4]).stdout


def test_interrupt_message_is_true(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli_mod.COMMANDS, "list", interrupted)
    assert main(["list"]) == 130
    err = capsys.readouterr().err
    assert "classifier starts again" in err
