"""`python -m aecore`: train, train-all, evaluate, list, bench."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from . import data as fmnist
from . import models, plan, runs
from .classifier import load_or_train as reference
from .errors import AecoreError
from .results import Store
from .runs import load_or_train
from .train import TrainConfig, evaluate, fit, pick_device


class Parser(argparse.ArgumentParser):
    def error(self, message):   # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def common(p):
    p.add_argument("--data", help="data root (default: $AECORE_DATA, "
                   "else ~/.pytorch/F_MNIST_data/)")
    p.add_argument("--results", help="results folder (default: "
                   "$AECORE_RESULTS, else results/ at the project root)")
    p.add_argument("--device", default="auto",
                   help="cpu, cuda, mps or auto (default)")


def run_options(p):
    d = TrainConfig()
    p.add_argument("--arch", required=True, choices=list(models.REGISTRY))
    p.add_argument("--epochs", type=positive_int, default=d.epochs)
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--lr", type=positive_float, default=d.lr)
    p.add_argument("--code-size", type=positive_int, default=None,
                   help="default: 64 (16 for the VAE)")
    p.add_argument("--activation", choices=list(models.ACTIVATIONS),
                   default=None, help="default: the architecture's own")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--beta", type=float, default=d.beta,
                   help="KL weight (VAE only)")


def config_from(args) -> TrainConfig:
    return TrainConfig(arch=args.arch, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr,
                       code_size=args.code_size, activation=args.activation,
                       seed=args.seed, beta=args.beta).resolved()


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
    p.add_argument("--plan", default="book", choices=list(plan.PLANS))
    common(p)

    p = sub.add_parser("evaluate", help="test-set metrics of a stored run")
    run_options(p)
    common(p)

    p = sub.add_parser("list", help="stored runs of a plan and their state")
    p.add_argument("--plan", default="book", choices=list(plan.PLANS))
    common(p)

    p = sub.add_parser("bench", help="speed benchmark (see aecore.bench)")
    p.add_argument("--smoke", action="store_true",
                   help="one short epoch on a small subset, to prove it runs")
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--out", help="JSON file to write (default: "
                   "results/bench/<device>.json)")
    common(p)
    return parser


def log(line):
    print(line, flush=True)


PROGRESS = sys.stderr.isatty()   # a bar in a terminal, none in logs


def cmd_train(args):
    cfg = config_from(args)
    store = Store(args.results)
    data = fmnist.load(args.data)
    if args.force:
        record = fit(cfg, data, store, args.device, progress=PROGRESS,
                     log=log)
        run_test = record["test"]
    else:
        run = load_or_train(cfg, data, store, args.device, log=log,
                            progress=PROGRESS)
        run_test = run.test
    print(f"{cfg.name}: test " + ", ".join(
        f"{k} {v:.5g}" for k, v in run_test.items()))
    print(f"stored in {store.folder(cfg.name)}")


def cmd_train_all(args):
    store = Store(args.results)
    data = fmnist.load(args.data)
    configs = plan.get(args.plan)
    todo = [c for c in configs if runs.status(c, data, store) != "valid"]
    start = time.perf_counter()
    for i, cfg in enumerate(configs, 1):
        log(f"[{i}/{len(configs)}] {cfg.name}")
        load_or_train(cfg, data, store, args.device, log=log,
                      progress=PROGRESS)
    print(f"plan {args.plan!r}: {len(configs)} runs, {len(todo)} trained "
          f"now, {len(configs) - len(todo)} valid stored results; "
          f"{time.perf_counter() - start:.0f} s in total")


def cmd_evaluate(args):
    cfg = config_from(args)
    store = Store(args.results)
    data = fmnist.load(args.data)
    run = runs.stored(cfg, data, store)
    if run is None:
        raise AecoreError(f"{cfg.name}: no valid stored result "
                          f"({runs.status(cfg, data, store)}); train it "
                          "first with `python -m aecore train` and the "
                          "same options")
    device = pick_device(args.device)
    clf = reference(data, store, device)
    test = evaluate(run.model(device), data.test.to(device), clf,
                    cfg.beta)
    print(json.dumps({"name": run.name, "test": test}, indent=1))


def cmd_list(args):
    store = Store(args.results)
    data = fmnist.load(args.data)
    for cfg in plan.get(args.plan):
        print(f"{runs.status(cfg, data, store):8s} {cfg.name}")


def cmd_bench(args):
    from . import bench
    bench.main(args)


COMMANDS = {"train": cmd_train, "train-all": cmd_train_all,
            "evaluate": cmd_evaluate, "list": cmd_list, "bench": cmd_bench}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except AecoreError as exc:
        print(f"aecore: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:            # e.g. `python -m aecore list | head`
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("aecore: interrupted; completed epochs are checkpointed and "
              "the next run resumes from them", file=sys.stderr)
        return 130
    return 0
