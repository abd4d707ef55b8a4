"""Fault injection: damaged files, bad values, closed pipes and full disks
each give one clear line or heal themselves; nothing stored is lost and
nothing wrong is served. Everything runs on the tiny synthetic data."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch
from test_cli import cli

import aecore.cli as cli_mod
import aecore.results as results_mod
from aecore import TrainConfig, checkpoints, fit, load_or_train, runs
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
    entry = runs.inspect(CFG, tiny, store)
    assert entry.status == "damaged" and entry.reason
    assert runs.stored(CFG, tiny, store) is None
    healed = load_or_train(CFG, tiny, store)          # retrains it
    assert runs.inspect(CFG, tiny, store).status == "valid"
    assert comparable(healed.record) == comparable(record)


@pytest.mark.parametrize("text", ["[]", "{not json", "", "null"])
def test_unparsable_record_is_damaged(text, tiny, store, trained):
    _, folder = trained
    (folder / "result.json").write_text(text)
    assert runs.inspect(CFG, tiny, store).status == "damaged"


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
    assert runs.inspect(CFG, tiny, store).status == "damaged"
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
    body = blob[len(checkpoints.CHECKPOINT_MAGIC) + 65:]
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
    assert sorted(p.name for p in folder.iterdir()
                  if p.name != ".lock") == [
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
                 "--compile", "off",  # no compile probe
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
                         env={**os.environ, "AECORE_DOWNLOAD": "0"})
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
                  "--compile", "off",  # no compile probe
                  "--batch-size", "64", "--device", "cpu", "--data",
                  str(synthetic_root), "--results", str(results))
    assert trained.returncode == 0, trained.stderr
    shutil.rmtree(results / "classifier")
    res = cli("evaluate", "--arch", "shallow", "--epochs", "1",
              "--compile", "off",  # no compile probe
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


# --- third pass: records are trusted only after they check out ----------

CONTENT_DAMAGE = {
    "test mse NaN": lambda r: r["test"].update(mse=float("nan")),
    "test mse a string": lambda r: r["test"].update(mse="0.01"),
    "test accuracy above 1": lambda r: r["test"].update(recog_acc=1.5),
    "history empty": lambda r: r.update(history=[]),
    "history row missing": lambda r: r["history"].pop(),
    "history value a string": lambda r: r["history"][0].update(val_mse="x"),
    "config changed": lambda r: r["config"].update(code_size=32),
    "config extra field": lambda r: r["config"].update(colour="red"),
    "name of another folder": lambda r: r.update(name="../elsewhere"),
    "weights file outside": lambda r: r["weights"].update(file="../w.pt"),
}


@pytest.mark.parametrize("how", CONTENT_DAMAGE)
def test_damaged_content_is_damaged_and_healed(how, tiny, store, trained):
    record, folder = trained
    broken = json.loads((folder / "result.json").read_text())
    CONTENT_DAMAGE[how](broken)
    (folder / "result.json").write_text(json.dumps(broken))
    entry = runs.inspect(CFG, tiny, store)
    assert entry.status == "damaged", entry
    assert runs.stored(CFG, tiny, store) is None
    healed = load_or_train(CFG, tiny, store)
    assert runs.inspect(CFG, tiny, store).status == "valid"
    assert comparable(healed.record) == comparable(record)


def test_deeply_nested_record_is_damaged_not_a_crash(tiny, store, trained):
    _, folder = trained
    (folder / "result.json").write_text("[" * 200_000 + "]" * 200_000)
    entry = runs.inspect(CFG, tiny, store)
    assert entry.status == "damaged" and "JSON" in entry.reason


@pytest.mark.parametrize("target", ["result.json", "checkpoint.pt"])
def test_a_folder_in_place_of_a_file_is_cleared_before_training(
        target, tiny, store, trained):
    _, folder = trained
    (folder / "result.json").unlink()
    (folder / target).mkdir(exist_ok=True)
    (folder / target / "x").write_text("x")
    run = load_or_train(CFG, tiny, store)
    assert (folder / "result.json").is_file() and run.history


def test_a_pipe_in_place_of_the_weights_never_hangs(tiny, store, trained):
    import os
    record, folder = trained
    weights = folder / record["weights"]["file"]
    weights.unlink()
    os.mkfifo(weights)
    entry = runs.inspect(CFG, tiny, store)          # returns at once
    assert entry.status == "damaged" and "not a readable file" in \
        entry.reason


def test_a_reader_never_removes_a_live_writers_files(tiny, store, trained):
    """While another process trains the run (holding its lock and
    writing a temporary file), reading the stored result removes
    nothing."""
    record, folder = trained
    live = folder / ".tmp-1-live"           # pid 1 is alive
    live.write_bytes(b"being written")
    checkpoint = folder / "checkpoint.pt"
    checkpoint.write_bytes(b"a live run's checkpoint")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time; "
         f"fd = os.open({str(folder / '.lock')!r}, os.O_RDWR | os.O_CREAT);"
         " fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); "
         "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert runs.stored(CFG, tiny, store) is not None
        assert live.exists() and checkpoint.exists()
    finally:
        holder.kill()
        holder.wait()
    dead = folder / ".tmp-999999999-dead"   # no such process
    dead.write_bytes(b"left by a killed run")
    assert runs.stored(CFG, tiny, store) is not None
    assert not dead.exists() and not checkpoint.exists()
    assert live.exists()                     # its writer still lives


def test_a_changed_classifier_config_is_retrained_and_stored(tiny, store,
                                                             trained):
    from aecore import classifier as ref
    other = ref.ClassifierConfig(epochs=1, lr=1e-3)
    model = ref.load_or_train(tiny, store, cfg=other)
    assert model.record["config"]["lr"] == 1e-3
    assert store.load(ref.NAME, ref.key(tiny, other)) is not None


def test_a_deleted_plan_record_is_written_again_without_training(
        synthetic_root, tmp_path):
    common = ["--plan", "smoke", "--data", str(synthetic_root),
              "--results", str(tmp_path), "--device", "cpu"]
    assert cli("train-all", *common).returncode == 0
    path = tmp_path / "plans" / "smoke.json"
    first = json.loads(path.read_text())
    path.write_text("{damaged")
    again = cli("train-all", *common)
    assert again.returncode == 0 and "0 trained now" in again.stdout
    record = json.loads(path.read_text())
    assert record["runs"].keys() == first["runs"].keys()
    assert record["jobs"] == first["jobs"]


def test_a_plans_time_leaves_out_the_reference_classifier(tiny, store,
                                                          monkeypatch):
    """The classifier is trained once, for every plan, before the plan's
    runs: its time is not the plan's."""
    import time
    real, delay = runs.ref.load_or_train, [2.0]

    def slow_first(*args, **kwargs):
        time.sleep(delay.pop() if delay else 0)
        return real(*args, **kwargs)

    monkeypatch.setattr(runs.ref, "load_or_train", slow_first)
    tick = time.perf_counter()
    record = runs.train_plan("smoke", tiny, store, torch.device("cpu"),
                             jobs=1, log=lambda *_: None)
    assert record["trained_now"] == len(record["runs"])
    assert record["this_call_seconds"] < time.perf_counter() - tick - 2.0


def test_closed_standard_streams_never_crash(synthetic_root, tmp_path):
    base = (f"{sys.executable} -m aecore train --arch shallow --epochs 1 "
            f"--batch-size 64 --device cpu --data {synthetic_root} "
            f"--results {tmp_path}")
    for closed in (">&-", "2>&-"):
        res = subprocess.run(["bash", "-c", f"{base} {closed}"],
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ,
                                  "AECORE_DOWNLOAD": "0"})
        assert res.returncode == 0, (closed, res.stderr)
        assert "Traceback" not in res.stderr


def test_train_all_into_head_stores_every_run(synthetic_root, tmp_path):
    """`train-all | head -1`, workers included, with the classifier
    already stored: every run is stored and the exit status is 0."""
    common = (f"--data {synthetic_root} --results {tmp_path} "
              "--device cpu --plan smoke")
    env = {**os.environ, "AECORE_DOWNLOAD": "0"}
    first = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m aecore train --arch shallow "
         f"--epochs 1 --batch-size 64 --data {synthetic_root} "
         f"--results {tmp_path} --device cpu"], env=env,
        capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    res = subprocess.run(
        ["bash", "-o", "pipefail", "-c",
         f"{sys.executable} -m aecore train-all --jobs 2 {common} "
         "| head -1"], capture_output=True, text=True, timeout=600,
        env=env)
    assert res.returncode == 0, res.stderr
    listing = cli("list", *common.split())
    assert listing.stdout.count("valid") == 5, listing.stdout


def test_train_all_workers_die_with_their_parent(tmp_path):
    """SIGTERM, then SIGKILL, to the parent only: no worker goes on."""
    import os
    import signal
    import time

    from conftest import make_root
    root = make_root(tmp_path / "data", n_train=6_000)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        results = tmp_path / f"r{int(sig)}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "aecore", "train-all", "--plan", "smoke",
             "--jobs", "2", "--device", "cpu", "--data", str(root),
             "--results", str(results)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "AECORE_DOWNLOAD": "0"},
            start_new_session=True)
        started = 0
        for line in proc.stdout:
            started += "missing result, training" in line
            if started == 2:
                break
        os.kill(proc.pid, sig)
        proc.wait(timeout=120)
        for _ in range(100):
            alive = subprocess.run(
                ["ps", "-o", "stat=", "-g", str(proc.pid)],
                capture_output=True, text=True).stdout.split()
            if all(s.startswith("Z") for s in alive):
                break
            time.sleep(0.2)
        assert all(s.startswith("Z") for s in alive), (sig, alive)


@pytest.mark.parametrize("n_train", [0, 5])
def test_too_few_images_is_one_line(n_train, tmp_path):
    from conftest import make_root

    from aecore import data as fmnist
    from aecore.errors import DataError
    root = make_root(tmp_path / "d", n_train=n_train, n_test=10)
    with pytest.raises(DataError, match="at least"):
        fmnist.load(root)


@pytest.mark.parametrize("args, word", [
    (["--lr", "-1e-3"], "lr must be > 0"),
    (["--code-size", str(10**12)], "at most"),
    (["--beta", "1e300"], "beta must be"),
    (["--beta", "0.5"], "VAE"),
    (["--fixed-noise"], "noise level"),
])
def test_ignored_or_absurd_options_are_refused(args, word, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--arch", "shallow", *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert word in err and len(err.strip().splitlines()) == 1


def test_an_empty_results_path_is_refused(tmp_path, capsys):
    assert main(["list", "--results", ""]) == 1
    assert "empty" in capsys.readouterr().err


def test_two_trains_of_one_config_train_it_once(synthetic_root, tmp_path):
    """The second waits for the first's lock, then serves its result."""
    cmd = [sys.executable, "-m", "aecore", "train", "--arch", "shallow",
           "--compile", "off",  # no compile probe
           "--epochs", "3", "--batch-size", "64", "--device", "cpu",
           "--precision", "fp32", "--data", str(synthetic_root),
           "--results", str(tmp_path)]
    env = {**os.environ, "AECORE_DOWNLOAD": "0"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trained = [out for out, _ in outs if "result, training" in out]
    assert len(trained) == 1, outs
    folder, = tmp_path.glob("shallow-relu-z64-e3-b64-s0-*")
    assert len(json.loads((folder / "result.json").read_text())[
        "history"]) == 3
