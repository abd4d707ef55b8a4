"""The command line, run as a user would: in a subprocess."""

import json
import os
import subprocess
import sys

import pytest

from aecore import data as fmnist
from aecore.cli import main

SUBCOMMANDS = ["train", "train-all", "evaluate", "list", "bench"]


def cli(*args, env=None, **kw):
    full_env = {**os.environ, fmnist.ENV_DOWNLOAD: "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", "aecore", *args],
                          capture_output=True, text=True, env=full_env,
                          timeout=300, **kw)


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_help(sub, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([sub, "--help"])
    assert exit_.value.code == 0
    assert "--data" in capsys.readouterr().out


@pytest.mark.parametrize("args, word", [
    (["train", "--arch", "transformer"], "invalid choice"),
    (["train", "--arch", "conv", "--epochs", "0"], "positive integer"),
    (["train", "--arch", "conv", "--lr", "fast"], "not a number"),
    (["train", "--arch", "deep", "--activation", "swish2"], "invalid choice"),
    (["train-all", "--plan", "everything"], "invalid choice"),
    (["train-all", "--jobs", "0"], "must be >= 1"),
    (["train-all", "--jobs", "many"], "not an integer"),
])
def test_bad_options_one_line(args, word, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert word in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [
    ["train", "--arch", "conv", "--epochs", "1"],
    ["train-all", "--plan", "smoke"],
    ["evaluate", "--arch", "conv"],
    ["list"],
    ["bench", "--smoke"],
])
def test_missing_data_is_one_clear_error(args, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cli(*args, env={"AECORE_DATA": str(empty),
                          "AECORE_RESULTS": str(tmp_path / "r")})
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert "AECORE_DATA" in res.stderr
    assert "train-images-idx3-ubyte" in res.stderr


def test_train_writes_results(synthetic_root, tmp_path):
    early = cli("evaluate", "--arch", "shallow", "--data",
                str(synthetic_root), "--results", str(tmp_path),
                "--compile", "off")  # no compile probe
    assert early.returncode == 1
    assert "no valid stored result (missing)" in early.stderr
    res = cli("train", "--arch", "shallow", "--epochs", "2",
              "--compile", "off",  # no compile probe
              "--batch-size", "64", "--data", str(synthetic_root),
              "--results", str(tmp_path), "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert "epoch 2/2" in res.stdout and "val mse" in res.stdout
    folder, = tmp_path.glob("shallow-relu-z64-e2-b64-s0-*")
    record = json.loads((folder / "result.json").read_text())
    assert len(record["history"]) == 2
    again = cli("evaluate", "--arch", "shallow", "--epochs", "2",
                "--compile", "off",  # no compile probe
                "--batch-size", "64", "--data", str(synthetic_root),
                "--results", str(tmp_path), "--device", "cpu")
    assert again.returncode == 0, again.stderr
    assert "training" not in again.stdout          # served from the store
    test = json.loads(again.stdout[again.stdout.index("{"):])["test"]
    assert test["mse"] == pytest.approx(record["test"]["mse"], rel=1e-5)


def test_auto_precision_is_measured_once_per_machine(monkeypatch,
                                                    tmp_path):
    """`--precision auto` takes what a timed probe finds faster (never
    the CPU's flags), keeps it per machine and design, and answers fp32
    on an accelerator without probing."""
    from aecore import cli as cli_mod
    from aecore import perf
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    probes = []

    def probe(arch, batch_size):
        probes.append(arch)
        return {"fp32": 2.0, "bf16": 1.0} if arch == "conv" else \
            {"fp32": 1.0, "bf16": 1.2}

    monkeypatch.setattr(perf, "probe_precision", probe)
    assert perf.auto_precision("cpu", "conv") == "bf16"
    assert perf.auto_precision("cpu", "shallow") == "fp32"
    assert perf.auto_precision("cpu", "conv") == "bf16"     # kept
    assert probes == ["conv", "shallow"]
    assert perf.auto_precision("cuda", "conv") == "fp32"
    assert perf.measured_precisions() == {"conv | b256": "bf16",
                                          "shallow | b256": "fp32"}
    data = tiny_data(100)

    def chosen(*options):
        args = cli_mod.build_parser().parse_args(
            ["train", "--arch", "conv", "--device", "cpu", "--compile",
             "off", *options])
        return cli_mod.measured(args, cli_mod.config_from(args), data)
    assert chosen().precision == "bf16"
    assert chosen("--precision", "fp32").precision == "fp32"


def tiny_data(n):
    import torch

    from aecore.data import FashionMNIST, Split
    split = Split(torch.zeros(n, 1, 28, 28), torch.zeros(n, dtype=torch.long))
    return FashionMNIST(split, split, split, "tiny")


def test_a_real_precision_probe_times_both(monkeypatch, tmp_path):
    from aecore import perf
    seconds = perf.probe_precision("shallow", 32, steps=2)
    assert set(seconds) == {"fp32", "bf16"}
    assert all(0 < s < 5 for s in seconds.values())


def test_auto_compile_counts_the_compile_time_against_the_run(monkeypatch,
                                                            tmp_path):
    """`--compile auto` compiles only when the run is long enough for
    the faster steps to pay back the measured compile time; a probe is
    measured once per machine, design, batch and precision; a failed
    compile and an accelerator mean no compiling."""
    from aecore import cli as cli_mod
    from aecore import perf
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    probes = []

    def probe(arch, batch_size, precision):
        probes.append((arch, batch_size, precision))
        if arch == "vae":
            return {"error": "RuntimeError: no C++ compiler"}
        return {"compile_s": 10.0, "eager_s": 0.02, "compiled_s": 0.01}

    monkeypatch.setattr(perf, "probe_compile", probe)
    # 10 s of compiling pay back after 1,000 steps saving 10 ms each;
    # with the 5% margin only runs of about 1,100 steps or more gain
    assert not perf.auto_compile("cpu", "conv", 256, "bf16", 1000)
    assert perf.auto_compile("cpu", "conv", 256, "bf16", 2000)
    assert probes == [("conv", 256, "bf16")]          # measured once
    assert not perf.auto_compile("cpu", "vae", 256, "bf16", 10**6)
    assert not perf.auto_compile("cuda", "conv", 256, "bf16", 10**6)
    assert len(probes) == 2
    measured = perf.measured_compiles()
    assert set(measured) == {"conv | b256 | bf16", "vae | b256 | bf16"}
    assert "failed" in perf.describe_compile(measured["vae | b256 | bf16"])

    def chosen(n, *options):
        args = cli_mod.build_parser().parse_args(
            ["train", "--arch", "conv", "--device", "cpu", "--precision",
             "bf16", *options])
        return cli_mod.measured(args, cli_mod.config_from(args), tiny_data(n))
    # 20 epochs of 256 images: 20 steps; of 25,600 images: 2,000 steps
    assert not chosen(256).compile
    long_run = chosen(25_600)
    assert long_run.compile and long_run.name.split("-")[-2] == "compiled"
    assert not chosen(25_600, "--compile", "off").compile
    assert chosen(256, "--compile", "on").compile


def test_compiling_is_a_different_run_and_off_keeps_the_old_key():
    from aecore.config import TrainConfig
    plain, compiled = TrainConfig(), TrainConfig(compile=True)
    assert "compile" not in plain.key_dict()
    assert compiled.key_dict()["compile"] is True
    assert plain.name != compiled.name


def test_a_real_compile_probe_times_both(tmp_path):
    """torch.compile on the smallest design: its compile time and both
    step times are measured (or the failure is named)."""
    from aecore import perf
    probe = perf.probe_compile("shallow", 16, "fp32", steps=2)
    if "error" not in probe:
        assert probe["compile_s"] > 0
        assert 0 < probe["eager_s"] < 5 and 0 < probe["compiled_s"] < 5
    else:
        assert probe["error"]


def test_threads_leave_busy_cores_alone(monkeypatch):
    from aecore import runtime
    monkeypatch.setattr(runtime, "busy_cores", lambda: 1.2)
    assert runtime.threads_for_load(2) == 1
    assert runtime.threads_for_load(8) == 7
    monkeypatch.setattr(runtime, "busy_cores", lambda: 0.1)
    assert runtime.threads_for_load(2) == 2
    monkeypatch.setattr(runtime, "busy_cores", lambda: 5.0)
    assert runtime.threads_for_load(2) == 1


def test_busy_cores_sees_a_busy_process():
    from aecore import runtime
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time
        time.sleep(0.3)
        assert runtime.busy_cores(0.5) >= 0.6
    finally:
        spin.kill()
        spin.wait()


@pytest.mark.parametrize("code", [
    "import aecore",
    "import aecore.cli; aecore.cli.build_parser().parse_args(['list'])",
])
def test_start_up_loads_no_torch(code):
    """`import aecore` and the CLI's parser stay light: torch,
    torchvision and matplotlib load only where they are used."""
    probe = (f"{code}; import sys; "
             "print(sorted({'torch', 'torchvision', 'matplotlib'} "
             "& set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("args,word", [
    (["--noise", "1.5"], "<= 1"),
    (["--noise", "nan"], "finite"),
    (["--normal-class", "10"], "class 0-9"),
    (["--precision", "fp8"], "invalid choice"),
    (["--schedule", "cosine"], "invalid choice"),
])
def test_new_options_are_checked_at_once(args, word):
    res = cli("train", "--arch", "conv", *args)
    assert res.returncode == 2 and word in res.stderr
    assert "Traceback" not in res.stderr


def test_denoiser_and_one_class_from_the_cli(synthetic_root, tmp_path):
    res = cli("train", "--arch", "shallow", "--epochs", "1", "--batch-size",
              "64", "--compile", "off", "--noise", "0.2", "--fixed-noise",
              "--normal-class", "3",
              "--device", "cpu", "--data", str(synthetic_root),
              "--results", str(tmp_path))
    assert res.returncode == 0, res.stderr
    folder, = tmp_path.glob("shallow-relu-z64-e1-b64-s0-n0.2x1-c3-*")
    record = json.loads((folder / "result.json").read_text())
    assert record["config"]["noise"] == 0.2
    assert record["config"]["fresh_noise"] is False
    assert 0 <= record["test"]["auroc"] <= 1


def test_train_all_records_the_plan_time_only_when_it_trained(
        synthetic_root, tmp_path):
    common = ["--data", str(synthetic_root), "--results", str(tmp_path),
              "--device", "cpu"]
    first = cli("train-all", "--plan", "smoke", *common)
    assert first.returncode == 0, first.stderr
    path = tmp_path / "plans" / "smoke.json"
    record = json.loads(path.read_text())
    assert record["trained_now"] == 4 and record["stored_seconds"] > 0
    # --jobs auto: one run per core, each on its share of the threads
    import torch
    cores = torch.get_num_threads()
    assert record["jobs"] == min(cores, 4, 8)
    assert record["threads_per_job"] == max(1, cores // record["jobs"])
    for name in record["runs"]:
        run = json.loads((tmp_path / name / "result.json").read_text())
        assert run["environment"]["threads"] == record["threads_per_job"]
    again = cli("train-all", "--plan", "smoke", *common)
    assert again.returncode == 0, again.stderr
    assert "0 trained now" in again.stdout
    assert json.loads(path.read_text()) == record


def test_jobs_split_the_cores():
    import torch

    from aecore.runs import AecoreError, split_cores
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert split_cores("auto", cpu, 44, 2) == (2, 1)
    assert split_cores("auto", cpu, 1, 2) == (1, 2)   # one run: all cores
    assert split_cores(1, cpu, 44, 2) == (1, 2)
    assert split_cores(4, cpu, 44, 2) == (4, 1)
    assert split_cores("auto", cpu, 44, 64) == (8, 8)  # at most 8 at once
    assert split_cores("auto", gpu, 44, 64) == (1, 64)
    with pytest.raises(AecoreError, match="one at a time"):
        split_cores(2, gpu, 44, 64)


def test_train_all_in_parallel_matches_one_at_a_time(synthetic_root,
                                                     tmp_path):
    """The same smoke plan trained two at a time and one at a time gives
    the same runs (keys and, up to thread-count rounding, results)."""
    common = ["--data", str(synthetic_root), "--device", "cpu"]
    out = {}
    for jobs in ("1", "2"):
        res = cli("train-all", "--plan", "smoke", "--jobs", jobs,
                  "--results", str(tmp_path / jobs), *common)
        assert res.returncode == 0, res.stderr
        assert f"({jobs} at a time)" in res.stdout
        record = json.loads((tmp_path / jobs / "plans" / "smoke.json")
                            .read_text())
        assert record["jobs"] == int(jobs)
        out[jobs] = {n: json.loads((tmp_path / jobs / n / "result.json")
                                   .read_text()) for n in record["runs"]}
    assert out["1"].keys() == out["2"].keys()
    for name, one in out["1"].items():
        two = out["2"][name]
        assert one["key"] == two["key"]
        assert two["test"]["mse"] == pytest.approx(one["test"]["mse"],
                                                   rel=0.05)


def test_ctrl_c_stops_parallel_training_cleanly(tmp_path):
    """Ctrl-C (SIGINT to the process group) during `train-all --jobs 2`:
    one clear message, exit 130, no traceback, no worker left behind,
    and the next call finishes the plan."""
    import signal
    import time

    from conftest import make_root
    root = make_root(tmp_path / "data", n_train=6_000)  # epochs of seconds
    common = ["--plan", "smoke", "--jobs", "2", "--device", "cpu",
              "--data", str(root), "--results", str(tmp_path / "r")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "aecore", "train-all", *common],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, fmnist.ENV_DOWNLOAD: "0"},
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    started = 0
    for line in proc.stdout:           # wait until both workers train
        started += "missing result, training" in line
        if started == 2:
            break
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    for _ in range(50):                # workers gone (zombies aside)
        states = subprocess.run(["ps", "-o", "stat=", "-g", str(proc.pid)],
                                capture_output=True, text=True).stdout
        if all(s.startswith("Z") for s in states.split()):
            break
        time.sleep(0.1)
    assert all(s.startswith("Z") for s in states.split()), states
    again = cli("train-all", *common)
    assert again.returncode == 0, again.stderr
    listing = cli("list", *common[:2], *common[4:])
    assert listing.stdout.count("valid") == 5, listing.stdout
