"""`facts`: the preface's and the conclusions' numbers, served without
torch while nothing they depend on has changed, recomputed otherwise."""

import json
import subprocess
import sys

import pytest
from conftest import REAL_ROOT, make_root, real_data_or_skip

from aecore import data as fmnist
from aecore import facts, plan, report


@pytest.fixture
def demo(monkeypatch, tmp_path):
    """A results folder, data files, and a `report.demo_facts` that counts
    how often it is computed."""
    calls = []
    monkeypatch.setattr(report, "Book", lambda data, res: (data, res))
    monkeypatch.setattr(report, "demo_facts",
                        lambda book: calls.append(book) or {"n": (1, 2)},
                        raising=False)
    res = tmp_path / "results"
    (res / "run").mkdir(parents=True)
    (res / "run" / "result.json").write_text("{}")
    data = make_root(tmp_path / "data", n_train=20, n_test=10)
    return res, data, calls


def test_facts_are_computed_once_then_read_back(demo):
    res, data, calls = demo
    first = facts.load("demo", res, data)
    assert first == {"n": [1, 2]}          # as JSON reads it back
    assert calls == [(data, res)]
    assert facts.load("demo", res, data) == first
    assert len(calls) == 1
    entry = json.loads((res / "cache" / "facts-demo.json").read_text())
    assert entry["stamp"] == facts.stamp(res, data)


@pytest.mark.parametrize("change", ["result", "new file", "data", "damage"])
def test_facts_are_computed_again_when_anything_changes(demo, change):
    res, data, calls = demo
    facts.load("demo", res, data)
    if change == "result":
        (res / "run" / "result.json").write_text('{"key": 1}')
    elif change == "new file":
        (res / "run" / "weights-abc.pt").write_bytes(b"w")
    elif change == "data":
        path = fmnist.raw_folder(data) / "t10k-labels-idx1-ubyte"
        path.write_bytes(path.read_bytes()[:-1] + b"\x01")
    else:
        (res / "cache" / "facts-demo.json").write_text("{not json")
    facts.load("demo", res, data)
    assert len(calls) == 2


def test_the_cache_folder_and_a_missing_data_file_do_not_stamp(demo):
    res, data, _ = demo
    before = facts.stamp(res, data)
    (res / "cache").mkdir()
    (res / "cache" / "other.json").write_text("{}")
    assert facts.stamp(res, data) == before
    (fmnist.raw_folder(data) / "train-labels-idx1-ubyte").unlink()
    assert facts.stamp(res, data) is None


def test_the_book_reads_stored_facts_without_torch():
    real_data_or_skip()
    for name in ("preface", "conclusions"):
        facts.load(name, data=REAL_ROOT)        # computed if stale
    code = ("import sys, aecore as ae; ae.setup(torch=False); "
            f"f = ae.facts.load('conclusions', data={str(REAL_ROOT)!r}); "
            f"p = ae.facts.load('preface', data={str(REAL_ROOT)!r}); "
            "print('torch' in sys.modules, f['final_epochs'], "
            "sorted(p['equal']), p['equal']['conv']['n'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", str(plan.FINAL_EPOCHS), "['conv',", "'deep',",
                   "'shallow']", "3"]
