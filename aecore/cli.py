"""`python -m aecore`: train, train-all, evaluate, list, bench."""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time

from .errors import AecoreError

# Known without importing torch, so that `--help` and a bad option answer
# at once; tests/test_cli.py checks them against models, plan and
# TrainConfig. Everything that needs torch is imported by the command.
ARCHS = ("shallow", "deep", "conv", "resconv", "vae", "tf-dense",
         "tf-denoiser")
ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "silu")
PLANS = ("book", "fp32", "smoke")
PRECISIONS = ("fp32", "bf16")
SCHEDULES = ("onecycle", "constant")
DEFAULTS = {"epochs": 20, "batch_size": 256, "lr": 3e-3, "seed": 0,
            "beta": 1.0, "noise": 0.0, "precision": "auto",
            "schedule": "onecycle"}


class Parser(argparse.ArgumentParser):
    def error(self, message):   # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def _integer(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an integer: {text!r}") from None


def positive_int(text):
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _finite(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(
            f"must be a finite number, got {text}")
    return value


def positive_float(text):
    value = _finite(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def nonnegative_float(text):
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


SEED_MAX = 2**32 - 1   # torch keeps the low 32 bits: larger seeds alias


def noise_level(text):
    value = _finite(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(
            f"must be between 0 and 1 (a standard deviation on the [0, 1] "
            f"pixel scale), got {value}")
    return value


def class_index(text):
    value = _integer(text)
    if not 0 <= value <= 9:
        raise argparse.ArgumentTypeError(
            f"must be a class 0-9, got {value}")
    return value


def jobs_option(text):
    return "auto" if text == "auto" else positive_int(text)


def seed_int(text):
    value = _integer(text)
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(
            f"must be between 0 and 2**32 - 1 = {SEED_MAX}, got {value}")
    return value


def devices_here() -> str:
    import torch
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append(f"cuda (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if torch.backends.mps.is_available():
        found.append("mps")
    return "devices here: " + ", ".join(found) + ", or auto"


def device_name(text):
    """A device this machine can train on, checked before any work."""
    if text in ("auto", "cpu"):
        return text
    import torch
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"not a device: {text!r}; {devices_here()}") from None
    if dev.type == "cpu":
        return text
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(
                f"{text!r}: CUDA is not available on this machine "
                f"(no NVIDIA GPU or driver, or a CPU-only PyTorch); "
                f"{devices_here()}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"{text!r}: no such GPU; {devices_here()}")
        return text
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError(
                f"{text!r}: Apple's MPS is not available on this machine; "
                f"{devices_here()}")
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a device aecore can train on; {devices_here()}")


def common(p):
    p.add_argument("--data", help="data root (default: $AECORE_DATA, "
                   "else ~/.pytorch/F_MNIST_data/)")
    p.add_argument("--results", help="results folder (default: "
                   "$AECORE_RESULTS, else results/ at the project root)")
    p.add_argument("--device", default="auto", type=device_name,
                   help="cpu, cuda, cuda:N, mps or auto (default)")


def run_options(p):
    d = DEFAULTS
    p.add_argument("--arch", required=True, choices=ARCHS)
    p.add_argument("--epochs", type=positive_int, default=d["epochs"])
    p.add_argument("--batch-size", type=positive_int,
                   default=d["batch_size"])
    p.add_argument("--lr", type=positive_float, default=d["lr"])
    p.add_argument("--code-size", type=positive_int, default=None,
                   help="default: 64 (16 for the VAE)")
    p.add_argument("--activation", choices=ACTIVATIONS,
                   default=None, help="default: the architecture's own")
    p.add_argument("--seed", type=seed_int, default=d["seed"],
                   help=f"0 to 2**32 - 1 (default {d['seed']})")
    p.add_argument("--beta", type=nonnegative_float, default=d["beta"],
                   help="KL weight (VAE only)")
    p.add_argument("--noise", type=noise_level, default=d["noise"],
                   help="denoising: noise sigma on the [0, 1] scale")
    p.add_argument("--fixed-noise", action="store_true",
                   help="one noisy copy of the training set (the "
                   "TensorFlow tutorial) instead of fresh noise")
    p.add_argument("--normal-class", type=class_index, default=None,
                   help="one-class run: train on this class only")
    p.add_argument("--precision", choices=(*PRECISIONS, "auto"),
                   default=d["precision"],
                   help="auto (default): bf16 autocast on a CPU with "
                   "native bf16, else fp32")
    p.add_argument("--schedule", choices=SCHEDULES, default=d["schedule"])


def config_from(args):
    from .perf import auto_precision
    from .train import TrainConfig, pick_device
    precision = args.precision
    if precision == "auto":
        precision = auto_precision(pick_device(args.device))
    return TrainConfig(arch=args.arch, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr,
                       code_size=args.code_size, activation=args.activation,
                       seed=args.seed, beta=args.beta, noise=args.noise,
                       fresh_noise=not args.fixed_noise,
                       normal_class=args.normal_class,
                       precision=precision,
                       schedule=args.schedule).resolved()


def build_parser():
    parser = Parser(prog="python -m aecore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True,
                                parser_class=Parser)

    p = sub.add_parser("train", help="train one architecture")
    run_options(p)
    common(p)
    p.add_argument("--force", action="store_true",
                   help="retrain even if a valid result is stored")

    p = sub.add_parser("train-all", help="train every run of a plan "
                       "that has no valid stored result")
    p.add_argument("--plan", default="book", choices=PLANS)
    p.add_argument("--jobs", type=jobs_option, default="auto",
                   help="runs trained at once, each on its share of the "
                   "CPU cores (default auto: one per core on a CPU, 1 on "
                   "a GPU)")
    common(p)

    p = sub.add_parser("evaluate", help="test-set metrics of a stored run")
    run_options(p)
    common(p)

    p = sub.add_parser("list", help="stored runs of a plan and their state")
    p.add_argument("--plan", default="book", choices=PLANS)
    common(p)

    p = sub.add_parser("bench", help="speed benchmark (see aecore.bench)")
    p.add_argument("--smoke", action="store_true",
                   help="one short epoch on a small subset, to prove it runs")
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--out", help="JSON file to write (default: "
                   "results/bench/<device>.json)")
    common(p)
    return parser


class SafeStdout(io.TextIOBase):
    """stdout that survives its reader going away (`... | head -1`):
    after a broken pipe, output goes to /dev/null and the work goes on,
    so a closed stdout never stops training or loses a result."""

    def __init__(self, stream):
        self.stream, self.broken = stream, False

    def writable(self):
        return True

    def write(self, text):
        if not self.broken:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._detach()
        return len(text)

    def flush(self):
        if not self.broken:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._detach()

    def _detach(self):
        self.broken = True
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())   # quiet exit-time flush
            os.close(null)
        except (OSError, ValueError):
            pass


def log(line):
    print(line, flush=True)


PROGRESS = sys.stderr.isatty()   # a bar in a terminal, none in logs


def cmd_train(args):
    from . import data as fmnist
    from . import runs
    from .results import Store
    from .train import fit
    cfg = config_from(args)
    store = Store(args.results)
    runs.prepare(cfg, store)            # before data, classifier, epochs
    data = fmnist.load(args.data)
    if args.force:
        record = fit(cfg, data, store, args.device, progress=PROGRESS,
                     log=log)
        run_test = record["test"]
    else:
        run = runs.load_or_train(cfg, data, store, args.device, log=log,
                                 progress=PROGRESS)
        run_test = run.test
    print(f"{cfg.name}: test " + ", ".join(
        f"{k} {v:.5g}" for k, v in run_test.items()
        if isinstance(v, float)))
    print(f"stored in {store.folder(cfg.name)}")


def cmd_train_all(args):
    from datetime import datetime

    from . import data as fmnist
    from . import plan, runs
    from .results import Store, atomic_save_json
    from .train import pick_device
    store = Store(args.results)
    store.check_writable()
    data = fmnist.load(args.data)
    configs = plan.get(args.plan)
    todo = [c for c in configs if runs.status(c, data, store) != "valid"]
    device = pick_device(args.device)
    jobs, threads = split_cores(args.jobs, device, len(todo))
    if any(c.precision == "bf16" for c in todo):
        from .perf import auto_precision
        if device.type == "cpu" and auto_precision(device) == "fp32":
            log("note: this plan trains in bf16 autocast, and this CPU has "
                "no native bf16 instructions, so it will run slower than "
                "fp32 would (the stored times come from a CPU that has them)")
    start = time.perf_counter()
    times = {}
    if jobs > 1:
        log(f"training {len(todo)} runs, {jobs} at a time, {threads} "
            f"CPU thread{'s' if threads > 1 else ''} each")
        times = train_parallel(todo, args, data, store, device, jobs,
                               threads)
    for i, cfg in enumerate(configs, 1):
        if cfg.name in times:
            continue
        log(f"[{i}/{len(configs)}] {cfg.name}")
        tick = time.perf_counter()
        run = runs.load_or_train(cfg, data, store, device, log=log,
                                 progress=PROGRESS,
                                 keep_weights=plan.keeps_weights(
                                     cfg, args.plan))
        times[cfg.name] = {"now": time.perf_counter() - tick,
                           "trained": cfg in todo,
                           "stored": run.record.get("wall_seconds")}
        if cfg in todo:
            log(f"{cfg.name}: {times[cfg.name]['now']:.0f} s")
    total = time.perf_counter() - start
    times = {c.name: times[c.name] for c in configs}
    stored = sum(t["stored"] or 0 for t in times.values())
    if todo:   # a call that trained nothing leaves the last record alone
        atomic_save_json(store.root / "plans" / f"{args.plan}.json", {
            "plan": args.plan, "date": datetime.now().astimezone().isoformat(
                timespec="seconds"),
            "runs": times, "this_call_seconds": total,
            "trained_now": len(todo), "jobs": jobs,
            "threads_per_job": threads, "stored_seconds": stored})
    print(f"plan {args.plan!r}: {len(configs)} runs, {len(todo)} trained "
          f"now ({jobs} at a time), {len(configs) - len(todo)} valid "
          f"stored results; {total:.0f} s in this call; the stored runs "
          f"took {stored:.0f} s to train and evaluate, one after another")


def split_cores(jobs, device, n_todo: int) -> tuple[int, int]:
    """(runs at once, threads per run). On a CPU, `auto` trains one run
    per core, one thread each: small models use two threads poorly, so
    two one-thread runs side by side finish sooner than two two-thread
    runs one after the other (the Performance appendix measures it). On
    a GPU runs go one at a time."""
    import torch
    cores = torch.get_num_threads()
    if device.type != "cpu":
        if jobs not in ("auto", 1):
            raise AecoreError(f"--jobs {jobs}: runs on {device} train one "
                              "at a time; use --jobs 1 or auto")
        return 1, cores
    if jobs == "auto":
        jobs = cores
    jobs = max(1, min(jobs, n_todo, 8))
    return jobs, max(1, cores // jobs)


_WORKER = {}


def _worker_start(data_root, results_root, device, threads):
    import torch

    from . import data as fmnist
    from .results import Store
    torch.set_num_threads(threads)
    _WORKER.update(data=fmnist.load(data_root), store=Store(results_root),
                   device=device)


def _worker_train(cfg, keep_weights) -> dict:
    from . import runs
    if _WORKER.get("interrupted"):     # a run queued before Ctrl-C
        raise KeyboardInterrupt
    tick = time.perf_counter()
    try:
        run = runs.load_or_train(cfg, _WORKER["data"], _WORKER["store"],
                                 _WORKER["device"], log=log,
                                 keep_weights=keep_weights)
    except KeyboardInterrupt:
        _WORKER["interrupted"] = True
        raise
    return {"now": time.perf_counter() - tick, "trained": True,
            "stored": run.record.get("wall_seconds")}


def train_parallel(todo, args, data, store, device, jobs, threads) -> dict:
    """Train `todo` in `jobs` worker processes, longest run first (the
    order `plan.schedule` predicts). A failed run stops the runs not yet
    started, while those in progress finish and are stored; Ctrl-C
    reaches the workers too, and each run resumes from its last completed
    epoch next time."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from . import plan
    from .classifier import load_or_train as reference
    reference(data, store, device, log=log)   # once, before the workers
    costs = {}
    for c in todo:
        old = store.read(c.name)    # a stale record still says how long
        costs[c.name] = (old or {}).get("wall_seconds") \
            or plan.estimated_seconds(c)
    order, _ = plan.schedule(costs, jobs)
    by_name = {c.name: c for c in todo}
    times = {}
    pool = ProcessPoolExecutor(
        jobs, mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_start,
        initargs=(args.data, args.results, str(device), threads))
    try:
        futures = {}
        for name in order:
            cfg = by_name[name]
            futures[pool.submit(_worker_train, cfg, plan.keeps_weights(
                cfg, args.plan))] = name
        for f in as_completed(futures):
            if f.exception() is not None:
                log(f"{futures[f]} failed; the runs in progress finish, "
                    "the others are not started")
                raise f.exception()         # `finally` shuts the pool
            times[futures[f]] = f.result()
            log(f"{futures[f]}: {times[futures[f]]['now']:.0f} s "
                f"({len(times)}/{len(todo)} trained)")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return times


def cmd_evaluate(args):
    from . import data as fmnist
    from . import runs
    from .classifier import load_or_train as reference
    from .results import Store
    from .train import pick_device, test_metrics
    cfg = config_from(args)
    store = Store(args.results)
    data = fmnist.load(args.data)
    state, reason = runs.classifier_status(data, store)
    if state != "valid" and store.read(cfg.name) is not None:
        raise AecoreError(
            f"the reference classifier is {state} ({reason}); evaluate "
            "never trains, so rebuild it first with `python -m aecore "
            "train-all` (about 2 minutes; every stored run is then "
            "retrained too, since its key names the classifier), then "
            "evaluate again")
    run = runs.stored(cfg, data, store)
    if run is None:
        raise AecoreError(f"{cfg.name}: no valid stored result "
                          f"({runs.status(cfg, data, store)}); train it "
                          "first with `python -m aecore train` and the "
                          "same options")
    device = pick_device(args.device)
    clf = reference(data, store, device)
    test = test_metrics(run.model(device), cfg, data.test.to(device),
                        None if cfg.normal_class is not None else clf)
    test.pop("scores", None)
    print(json.dumps({"name": run.name, "test": test}, indent=1))


def cmd_list(args):
    import torch

    from . import data as fmnist
    from . import plan, runs
    from .results import Store
    store = Store(args.results)
    data = fmnist.load(args.data)
    entries = [("classifier", runs.classifier_status(data, store))]
    entries += [(cfg.name, runs.diagnose(cfg, data, store))
                for cfg in plan.get(args.plan)]
    for name, (state, reason) in entries:
        note = f"  ({reason})" if state == "damaged" else ""
        record = store.read(name)
        if state == "valid":
            made = record.get("environment", {}).get("torch")
            if made and made != torch.__version__:
                note = (f"  (made with torch {made}; this is "
                        f"{torch.__version__})")
        print(f"{state:8s} {name}{note}")


def cmd_bench(args):
    from . import bench
    bench.main(args)


COMMANDS = {"train": cmd_train, "train-all": cmd_train_all,
            "evaluate": cmd_evaluate, "list": cmd_list, "bench": cmd_bench}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    stdout = sys.stdout
    sys.stdout = SafeStdout(stdout)
    try:
        COMMANDS[args.command](args)
    except AecoreError as exc:
        print(f"aecore: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aecore: interrupted. Autoencoder runs resume from their "
              "last completed epoch next time; an interrupted reference "
              "classifier starts again (about 2 minutes).", file=sys.stderr)
        return 130
    except OSError as exc:             # disk full, permissions, ...
        where = f": {exc.filename}" if exc.filename else ""
        print(f"aecore: error: {exc.strerror or exc}{where}",
              file=sys.stderr)
        return 1
    finally:
        sys.stdout.flush()
        sys.stdout = stdout
    return 0
