"""The speed benchmark, in smoke mode on the synthetic data: it runs,
writes its JSON and renders it. No timed assertions."""

import json

import pytest
import torch

from aecore import bench, benchtables, config, probes
from aecore import text as aetext
from aecore.cli import main

KEYS = {"smoke", "settings", "hardware", "notes", "pipelines", "ceiling",
        "archs", "data_only", "time_to_quality", "eval_overhead",
        "precision", "startup"}
HARDWARE = {"cpu", "threads", "torch", "device", "malloc_tuned", "date"}


@pytest.fixture(scope="module")
def smoke(synthetic_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)     # no stalls when other jobs share the cores
    try:
        code = main(["bench", "--smoke", "--data", str(synthetic_root),
                     "--results", str(tmp), "--out", str(tmp / "b.json"),
                     "--device", "cpu"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return json.loads((tmp / "b.json").read_text())


def seconds_values(obj, path=""):
    """Every (path, value) whose key names a time in seconds (the notes,
    which explain those keys in words, left out)."""
    if isinstance(obj, dict) and path != "/notes":
        for key, value in obj.items():
            if isinstance(value, dict):
                yield from seconds_values(value, f"{path}/{key}*"
                                          if key.startswith("s_per_epoch")
                                          else f"{path}/{key}")
            elif ("seconds" in key or key.startswith("s_per_epoch")
                  or path.endswith("*")):
                yield from ((f"{path}/{key}", v) for v in
                            (value if isinstance(value, list) else [value]))
            else:
                yield from seconds_values(value, f"{path}/{key}")


def test_smoke_json_has_every_part(smoke):
    assert KEYS <= set(smoke)
    assert smoke["smoke"] is True
    assert HARDWARE <= set(smoke["hardware"])
    assert smoke["ceiling"]["gflops"] > 0
    assert list(smoke["archs"]) == list(bench.ARCHS)
    assert set(bench.ARCHS) <= set(config.ARCHS)
    assert set(smoke["time_to_quality"]["archs"]) == {"shallow", "deep",
                                                       "conv"}
    for row in smoke["archs"].values():
        assert set(row["pipelines"]) == set(bench.PIPELINES)
        for pipe in row["pipelines"].values():
            assert pipe["gflops"] > 0 and pipe["ceiling_fraction"] > 0
            assert len(pipe["seconds"]) == 1          # one repeat in smoke


def test_seconds_and_ratios_are_positive(smoke):
    found = list(seconds_values(smoke))
    assert len(found) > 30
    for path, value in found:
        if path.startswith("/time_to_quality") and value is None:
            continue                                  # target not reached
        assert value > 0, path
    for row in [*smoke["archs"].values(), smoke["data_only"]]:
        assert len(row["ratios"]) == 2
        assert all(r > 0 for r in row["ratios"].values())


def test_markdown_table_names_every_architecture(smoke):
    md = benchtables.table(smoke)
    lines = md.splitlines()
    head = next(i for i, line in enumerate(lines)
                if line.startswith("| arch |"))
    assert "---:" in lines[head + 1]
    # the nine-column speed table is set smaller in the PDF, and the
    # size is restored before the time-to-quality table
    speed = md.index("| arch | DataLoader")
    quality = md.index("| arch |", speed + 1)
    assert md.startswith(aetext.WIDE_TABLE)
    assert md.index(aetext.NORMAL_TABLE) in range(speed, quality)
    for arch in bench.ARCHS:
        assert any(line.startswith(f"| {arch} |") for line in lines)
    assert "| data only |" in md


def test_report_prints_as_fixed_width(smoke):
    text = benchtables.report(smoke)
    assert "matmul ceiling" in text and "data only" in text
    assert "malloc_tuning=off, channels_last=off" in text


def test_settings_effect_measures_four_processes(smoke):
    effect = smoke["settings_effect"]["s_per_epoch"]
    assert len(effect) == 4 and all(v > 0 for v in effect.values())


def test_new_rows_evaluation_precision_start_up(smoke):
    """Evaluation overhead, bf16 against fp32 and start-up times are
    measured and reported (values in smoke mode prove it runs only)."""
    assert set(smoke["eval_overhead"]) == set(bench.COMPARED)
    for row in smoke["eval_overhead"].values():
        assert row["train_s"] > 0 and row["eval_s"] > 0
    for row in smoke["precision"].values():
        assert set(row) == {"fp32", "bf16"}
        assert row["fp32"]["val_mse"] > 0 and row["bf16"]["val_mse"] > 0
    assert set(smoke["startup"]) == {"import aecore", "import torch",
                                     "python -m aecore --help"}
    assert set(smoke["hardware"]["native_bf16"]) == {"avx512_bf16",
                                                     "amx_bf16"}
    text = benchtables.report(smoke)
    assert "bf16" in text and "start-up" in text


def test_side_by_side_measures_one_run_against_one_per_core():
    """`train-all --jobs` rests on this row: one run on every core
    against as many one-thread runs as cores, in fresh processes."""
    s = bench.Settings(repeats=1, smoke=True)
    result = {"side_by_side": probes.side_by_side("cpu", s, cores=2)}
    side = result["side_by_side"]
    assert side["cores"] == 2 and side["precision"] == "bf16"
    assert set(side["archs"]) == set(bench.COMPARED)
    for row in side["archs"].values():
        assert row["one_run_s"] > 0 and row["each_of_n_s"] > 0
        assert row["gain"] == pytest.approx(
            2 * row["one_run_s"] / row["each_of_n_s"])
    rows = benchtables.side_by_side_rows(result)
    assert rows[0][1:3] == ["1 run, 2 threads: s/epoch",
                            "2 runs, 1 thread: s/epoch each"]
    assert [r[0] for r in rows[1:]] == list(bench.COMPARED)
    assert benchtables.side_by_side_lines({}) == []


def test_peer_without_tensorflow_says_so_and_writes_nothing(
        synthetic_root, tmp_path, monkeypatch, capsys):
    from aecore import peer
    monkeypatch.setattr(peer, "peer_python", lambda: None)
    out = tmp_path / "peer.json"
    code = main(["bench", "--peer", "--smoke", "--data", str(synthetic_root),
                 "--out", str(out), "--device", "cpu"])
    assert code == 0
    assert "TensorFlow is not installed" in capsys.readouterr().out
    assert not out.exists()


def test_peer_times_both_frameworks_and_stores_their_ratio(
        synthetic_root, tmp_path, monkeypatch):
    """A stand-in for TensorFlow's interpreter reports fixed epochs; the
    aecore side trains for real, in its own process."""
    fake = tmp_path / "fake-python"
    fake.write_text('#!/bin/sh\nif [ "$1" = "-c" ]; then echo 9.9; '
                    'else echo \'{"seconds": [7.0, 0.5, 0.5]}\'; fi\n')
    fake.chmod(0o755)
    monkeypatch.setenv("AECORE_PEER_PYTHON", str(fake))
    out = tmp_path / "peer.json"
    code = main(["bench", "--peer", "--smoke", "--data", str(synthetic_root),
                 "--out", str(out), "--device", "cpu"])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["tensorflow"] == "9.9"
    assert [(r["model"], r["batch"]) for r in result["rows"]] == [
        ("tf-dense", 256), ("tf-denoiser", 256)]
    for r in result["rows"]:
        # the first epoch is left out; times scale to 60,000 images
        assert r["tensorflow_s"] == pytest.approx(0.5 * 60_000
                                                  / result["images"])
        assert r["aecore_s"] > 0
        assert r["ratio"] == pytest.approx(r["tensorflow_s"] / r["aecore_s"])
    assert "TF / aecore" in benchtables.peer_report(result)


def test_compile_probe_bench_writes_its_probes(tmp_path, capsys):
    """`bench --compile --smoke`: one real probe, in a fresh process with
    an empty compile cache, stored and printed as a table."""
    out = tmp_path / "c.json"
    assert main(["bench", "--compile", "--smoke", "--out", str(out),
                 "--device", "cpu"]) == 0
    result = json.loads(out.read_text())
    row, = result["rows"]
    assert (row["arch"], row["batch"]) == ("shallow", 64)
    assert "error" in row or (row["compile_s"] > 0 and row["eager_s"] > 0
                              and row["compiled_s"] > 0)
    assert "pays after" in capsys.readouterr().out


def test_compile_rows_say_when_compiling_pays():
    """10 s to compile, 20 ms eager against 10 ms compiled: with the 5%
    margin it pays after 10.5 / (0.020 - 0.0105) = 1,105 steps; slower
    compiled steps or a failed compile never pay."""
    result = {"rows": [
        {"arch": "conv", "batch": 256, "compile_s": 10.0, "eager_s": 0.02,
         "compiled_s": 0.01},
        {"arch": "deep", "batch": 256, "compile_s": 1.0, "eager_s": 0.01,
         "compiled_s": 0.012},
        {"arch": "shallow", "batch": 64, "error": "no compiler"}]}
    rows = benchtables.compile_rows(result, {("conv", 256): 2110,
                                             ("deep", 256): 2110,
                                             ("shallow", 64): 8440})
    assert [r[5] for r in rows[1:]] == ["1,105", "never", "never"]
    assert [r[6] for r in rows[1:]] == ["2,110", "2,110", "8,440"]
    from aecore import perf
    probe = result["rows"][0]
    assert not perf.compile_pays(probe, 1105) and perf.compile_pays(probe,
                                                                   1106)
