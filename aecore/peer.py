"""TensorFlow's own tutorial models beside aecore's rebuilds of them:
`python -m aecore bench --peer` (writes results/bench/peer-cpu.json).

Both sides train the same two models (`models.TFDense` and
`models.TFDenoiser` against the tutorial's Keras code in `peer_tf.py`)
on the same images ([0, 1] scale, the first `IMAGES` of the training
split), at the same batch size and thread count, with Adam at 1e-3 and
fp32, each measurement in a fresh process (both frameworks fix their
threads at start-up). The two frameworks take turns, the first of each
pair alternating, so a change in the machine's load hits both alike.

s/epoch: the median over repeats of each process's median epoch, its
first epoch left out (graph tracing, kernel selection), scaled to 60,000
images. `under_load` repeats the batch-32 rows on all cores with a
CPU-bound process beside them: TensorFlow as a user would run it (every
core), aecore as `python -m aecore train` runs it (`--threads auto`, the
cores no other process is using).

TensorFlow is optional (`pip install -e ".[peer]"`); it may also live in
another interpreter, named by AECORE_PEER_PYTHON. Without it the result
is one line saying so.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .errors import AecoreError

MODELS = ("tf-dense", "tf-denoiser")
BATCHES = (32, 64, 256)
IMAGES = 12_000      # per epoch; times are scaled to 60,000
EPOCHS = 3           # per process; the first is left out
REPEATS = 3          # processes per framework and setting (bench --repeats)
SCRIPT = Path(__file__).with_name("peer_tf.py")
SKIPPED = ("TensorFlow is not installed, so the peer was not measured: "
           "pip install -e \".[peer]\", or name an interpreter that has it "
           "in AECORE_PEER_PYTHON")


def peer_python() -> str | None:
    """The interpreter that runs TensorFlow, or None without one."""
    named = os.environ.get("AECORE_PEER_PYTHON")
    if named:
        return named
    return sys.executable if importlib.util.find_spec("tensorflow") else None


def aecore_epochs(spec: dict) -> list[float]:
    """Seconds of each epoch of aecore's rebuild of `spec["model"]`,
    trained by `train.train_epoch` as every stored run is."""
    import torch

    from . import bench
    from . import train as trainer
    from .runtime import threads_for_load
    threads = spec["threads"]
    torch.set_num_threads(threads_for_load() if threads == "auto"
                          else threads)
    X = torch.from_numpy(np.load(spec["images"]))[:, None] * 2 - 1
    options = dict(epochs=spec["epochs"], batch_size=spec["batch"],
                   lr=1e-3, schedule="constant", precision="fp32", seed=0)
    if spec["model"] == "tf-denoiser":
        options.update(noise=0.2, fresh_noise=False)
    device = torch.device("cpu")
    cfg, s = bench.fresh(spec["model"], X, device, **options)
    seconds = []
    for _ in range(spec["epochs"]):
        start = time.perf_counter()
        trainer.train_epoch(s, cfg, X, device)    # ends in one .item()
        seconds.append(time.perf_counter() - start)
    return seconds


def run_one(framework: str, spec: dict, python: str) -> list[float]:
    """Epoch seconds of one measurement, in its own process."""
    if framework == "tensorflow":
        cmd = [python, str(SCRIPT), json.dumps(spec)]
    else:
        cmd = [sys.executable, "-m", "aecore.peer", json.dumps(spec)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise AecoreError(f"peer measurement failed ({framework}, "
                          f"{spec['model']}, batch {spec['batch']}):\n{tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def per_epoch(seconds: list[float], images: int) -> float:
    """A process's median epoch after the first, scaled to 60,000."""
    return statistics.median(seconds[1:]) * 60_000 / images


def compare(spec: dict, python: str, repeats: int, log) -> dict:
    """Both frameworks on one setting, taking turns."""
    got = {"tensorflow": [], "aecore": []}
    for r in range(repeats):
        order = ("tensorflow", "aecore")[::1 if r % 2 == 0 else -1]
        for framework in order:
            threads = spec["threads"]
            if framework == "tensorflow" and threads == "auto":
                threads = os.cpu_count() or 1     # what a user would run
            got[framework].append(per_epoch(
                run_one(framework, {**spec, "threads": threads}, python),
                spec["images_n"]))
    tf_s = statistics.median(got["tensorflow"])
    ae_s = statistics.median(got["aecore"])
    row = {"model": spec["model"], "batch": spec["batch"],
           "threads": spec["threads"], "tensorflow_s": tf_s,
           "aecore_s": ae_s, "ratio": tf_s / ae_s, "samples": got}
    log(f"  {spec['model']:12s} batch {spec['batch']:3d}, threads "
        f"{spec['threads']}: TensorFlow {tf_s:.2f} s/epoch, aecore "
        f"{ae_s:.2f}, TF / aecore {tf_s / ae_s:.2f}")
    return row


def measure(root=None, *, models=MODELS, batches=BATCHES, threads=None,
            images=IMAGES, epochs=EPOCHS, repeats=REPEATS, load=True,
            log=print) -> dict:
    """Every row; `{"skipped": ...}` without TensorFlow."""
    python = peer_python()
    if python is None:
        log(SKIPPED)
        return {"skipped": SKIPPED}
    from . import data as fmnist
    cores = os.cpu_count() or 1
    threads = threads or sorted({1, cores})
    train = fmnist.load(root).train.X[:images, 0]
    result = {"images": int(len(train)), "epochs": epochs,
              "repeats": repeats, "cores": cores, "rows": [],
              "under_load": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "images.npy"
        np.save(path, ((train + 1) / 2).numpy().astype(np.float32))
        base = {"images": str(path), "images_n": int(len(train)),
                "epochs": epochs}
        versions = subprocess.run(
            [python, "-c", "import tensorflow as tf; print(tf.__version__)"],
            capture_output=True, text=True).stdout.strip()
        result["tensorflow"] = versions
        log(f"peer: TensorFlow {versions}, {len(train):,} images per epoch")
        for model in models:
            for batch in batches:
                for n in threads:
                    spec = {**base, "model": model, "batch": batch,
                            "threads": n}
                    result["rows"].append(compare(spec, python, repeats,
                                                  log))
        if load and cores > 1:
            log("  beside a CPU-bound process:")
            spin = subprocess.Popen([sys.executable, "-c",
                                     "while True: pass"])
            try:
                for model in models:
                    spec = {**base, "model": model, "batch": batches[0],
                            "threads": "auto"}
                    result["under_load"].append(
                        compare(spec, python, repeats, log))
            finally:
                spin.kill()
                spin.wait()
    return result


if __name__ == "__main__":       # one aecore measurement (see run_one)
    print(json.dumps({"seconds": aecore_epochs(json.loads(sys.argv[1]))}))
