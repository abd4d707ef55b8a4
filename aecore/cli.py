"""`python -m aecore`: train, train-all, evaluate, list, bench.

This module parses and dispatches. The names, defaults and checks of a
run come from `config` and `plan` (no torch, so `--help` and a bad
option answer at once); the work is done by `runs`, `train` and `bench`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from . import config, plan
from .errors import AecoreError, ConfigError

DEFAULTS = config.TrainConfig()
NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$", re.IGNORECASE)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # `--lr -1e-3` is a value (refused by the config), not an option
        self._negative_number_matcher = NUMBER

    def error(self, message):   # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def _number(kind):
    def parse(text):
        try:
            return kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(
                f"not {what}: {text!r}") from None
    return parse


def positive(text):
    value = _number(int)(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def jobs_option(text):
    return text if text == "auto" else positive(text)


def device_name(text):
    """A device this machine can train on, checked before any work."""
    if text in ("auto", "cpu"):
        return text
    from .runtime import device_problem
    problem = device_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def common(p):
    p.add_argument("--data", help="data root (default: $AECORE_DATA, "
                   "else ~/.pytorch/F_MNIST_data/)")
    p.add_argument("--results", help="results folder (default: "
                   "$AECORE_RESULTS, else results/ at the project root)")
    p.add_argument("--device", default="auto", type=device_name,
                   help="cpu, cuda, cuda:N, mps or auto (default)")


def run_options(p):
    d, integer, real = DEFAULTS, _number(int), _number(float)
    p.add_argument("--arch", required=True, choices=tuple(config.ARCHS))
    p.add_argument("--epochs", type=integer, default=d.epochs)
    p.add_argument("--batch-size", type=integer, default=d.batch_size)
    p.add_argument("--lr", type=real, default=d.lr)
    p.add_argument("--code-size", type=integer, default=None,
                   help="default: the architecture's own ("
                   + ", ".join(f"{a} {z}" for a, z in
                               config.DEFAULT_CODE_SIZE.items()) + ")")
    p.add_argument("--activation", choices=tuple(config.ACTIVATIONS),
                   default=None, help="default: the architecture's own")
    p.add_argument("--seed", type=integer, default=d.seed,
                   help=f"0 to 2**32 - 1 (default {d.seed})")
    p.add_argument("--beta", type=real, default=d.beta,
                   help="KL weight (VAE only)")
    p.add_argument("--noise", type=real, default=d.noise,
                   help="denoising: noise sigma on the [0, 1] scale")
    p.add_argument("--fixed-noise", action="store_true",
                   help="one noisy copy of the training set (the "
                   "TensorFlow tutorial) instead of fresh noise")
    p.add_argument("--normal-class", type=integer, default=None,
                   help="one-class run: train on this class only")
    p.add_argument("--precision", choices=(*config.PRECISIONS, "auto"),
                   default="auto",
                   help="auto (default): on a CPU, whichever a short "
                   "timed probe of this design finds faster (measured "
                   "once per machine), fp32 elsewhere")
    p.add_argument("--compile", choices=("auto", "on", "off"),
                   default="auto",
                   help="torch.compile the training steps; auto (default): "
                   "on a CPU, when a timed probe of this design (kept per "
                   "machine) shows the run finishing sooner, its compile "
                   "time counted")
    p.add_argument("--schedule", choices=config.SCHEDULES,
                   default=d.schedule)
    p.add_argument("--loader", choices=config.LOADERS, default=d.loader,
                   help="tensor (default): batches cut from the preloaded "
                   "data; torchvision: the assignment's DataLoader")


def config_from(args) -> config.TrainConfig:
    """The run the options name, checked by `TrainConfig.resolved`; an
    `auto` precision or compile stays fp32 or off until `measured`."""
    return config.TrainConfig(
        arch=args.arch, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, code_size=args.code_size, activation=args.activation,
        seed=args.seed, beta=args.beta, noise=args.noise,
        fresh_noise=not args.fixed_noise, normal_class=args.normal_class,
        precision="fp32" if args.precision == "auto" else args.precision,
        schedule=args.schedule, loader=args.loader,
        compile=args.compile == "on").resolved()


def measured(args, cfg: config.TrainConfig, data) -> config.TrainConfig:
    """`cfg` with its `auto` precision and compile chosen by the timed
    probes of `aecore.perf` (kept per machine): called once `data` has
    loaded, so a missing file is reported before any probe runs."""
    import math
    from dataclasses import replace

    from . import perf
    from .runtime import log, pick_device
    from .train import training_data
    device = pick_device(args.device)
    if args.precision == "auto":
        cfg = replace(cfg, precision=perf.auto_precision(
            device, cfg.arch, cfg.batch_size, log=log))
    if args.compile == "auto":
        steps = cfg.epochs * math.ceil(len(training_data(cfg, data).train)
                                       / cfg.batch_size)
        cfg = replace(cfg, compile=perf.auto_compile(
            device, cfg.arch, cfg.batch_size, cfg.precision, steps,
            log=log))
    return cfg


def build_parser():
    parser = Parser(prog="python -m aecore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True,
                                parser_class=Parser)
    p = sub.add_parser("train", help="train one architecture")
    run_options(p)
    common(p)
    p.add_argument("--force", action="store_true",
                   help="retrain even if a valid result is stored")
    p.add_argument("--threads", type=jobs_option, default="auto",
                   help="CPU threads (default auto: the cores no other "
                   "process is using)")
    p = sub.add_parser("train-all", help="train every run of a plan "
                       "that has no valid stored result")
    p.add_argument("--plan", default="book", choices=tuple(plan.PLANS))
    p.add_argument("--jobs", type=jobs_option, default="auto",
                   help="runs trained at once, each on its share of the "
                   "CPU cores (default auto: one per core on a CPU, 1 on "
                   "a GPU)")
    common(p)
    p = sub.add_parser("evaluate", help="test-set metrics of a stored run")
    run_options(p)
    common(p)
    p = sub.add_parser("list", help="stored runs of a plan and their state")
    p.add_argument("--plan", default="book", choices=tuple(plan.PLANS))
    common(p)
    p = sub.add_parser("bench", help="speed benchmark (see aecore.bench)")
    p.add_argument("--smoke", action="store_true",
                   help="one short epoch on a small subset, to prove it runs")
    p.add_argument("--repeats", type=positive, default=3)
    p.add_argument("--peer", action="store_true",
                   help="only TensorFlow's tutorial models beside aecore's "
                   "rebuilds (see aecore.peer; needs TensorFlow: pip "
                   "install -e '.[peer]')")
    p.add_argument("--compile", action="store_true",
                   help="only the torch.compile probes of the three "
                   "compared designs (see aecore.perf.probe_compile)")
    p.add_argument("--out", help="JSON file to write (default: "
                   "results/bench/<device>.json, peer-<device>.json "
                   "with --peer, compile-<device>.json with --compile)")
    common(p)
    return parser


def cmd_train(args):
    from . import data as fmnist
    from . import runs
    from .results import Store
    from .runtime import log, progress_wanted, set_threads, torch_note
    store = Store(args.results)
    data = fmnist.load(args.data)
    cfg = measured(args, args.config, data)
    run = None if args.force else runs.stored(cfg, data, store)
    if run is None:
        runs.prepare(cfg, store)        # before the classifier and epochs
        set_threads(args.threads)
        run = runs.load_or_train(cfg, data, store, args.device, log=log,
                                 progress=progress_wanted(),
                                 force=args.force)
    print(f"{cfg.name}: test " + ", ".join(
        f"{k} {v:.5g}" for k, v in run.test.items()
        if isinstance(v, float)) + torch_note(run.record))
    print(f"stored in {store.folder(cfg.name)}")


def cmd_train_all(args):
    from . import data as fmnist
    from . import runs
    from .results import Store
    from .runtime import log, pick_device, progress_wanted
    store = Store(args.results)
    store.check_writable()
    data = fmnist.load(args.data)
    out = runs.train_plan(args.plan, data, store, pick_device(args.device),
                          args.jobs, log, progress_wanted())
    n = len(out["runs"])
    print(f"plan {args.plan!r}: {n} runs, {out['trained_now']} trained "
          f"now ({out['jobs']} at a time), {n - out['trained_now']} valid "
          f"stored results; {out['this_call_seconds']:.0f} s in this call; "
          f"the stored runs took {out['stored_seconds']:.0f} s to train "
          "and evaluate, one after another")


def cmd_evaluate(args):
    from . import data as fmnist
    from . import runs
    from .classifier import load_or_train as reference
    from .results import Store
    from .runtime import pick_device, torch_note
    from .train import test_metrics, training_data
    store = Store(args.results)
    data = fmnist.load(args.data)
    cfg = measured(args, args.config, data)
    entry = runs.inspect(cfg, data, store)
    clf = runs.classifier_entry(data, store)
    if clf.status != "valid" and entry.status != "missing":
        raise AecoreError(
            f"the reference classifier is {clf.status} ({clf.reason}); "
            "evaluate never trains: rebuild it with `python -m aecore "
            "train-all` (which retrains the runs that name it)")
    if entry.status != "valid":
        raise AecoreError(f"{cfg.name}: no valid stored result "
                          f"({entry.status}); train it first with "
                          "`python -m aecore train` and the same options")
    run = runs.Run(entry.record, store)
    device = pick_device(args.device)
    test = test_metrics(run.model(device), cfg, data.test.to(device),
                        None if cfg.normal_class is not None
                        else reference(data, store, device),
                        training_data(cfg, data).train.to(device))
    test = {k: v for k, v in test.items() if not isinstance(v, list)
            or len(v) < 10}                    # not the per-image scores
    print(json.dumps({"name": run.name, "test": test}, indent=1))
    note = torch_note(run.record)
    if note:
        print("note:" + note, file=sys.stderr)


def cmd_list(args):
    from . import data as fmnist
    from . import runs
    from .results import Store
    from .runtime import torch_note
    store = Store(args.results)
    data = fmnist.load(args.data)
    entries = [("classifier", runs.classifier_entry(data, store))]
    entries += [(c.name, runs.inspect(c, data, store))
                for c in plan.get(args.plan)]
    for name, entry in entries:
        note = f"  ({entry.reason})" if entry.status == "damaged" else ""
        if entry.status == "valid":
            note = torch_note(entry.record)
        print(f"{entry.status:8s} {name}{note}")
    from .perf import describe_compile, measured_compiles, measured_precisions
    for design, precision in measured_precisions().items():
        print(f"precision auto on this machine, {design}: {precision} "
              "(measured)")
    for design, probe in measured_compiles().items():
        print(f"compile probe on this machine, {design}: "
              f"{describe_compile(probe)}")


def cmd_bench(args):
    from . import bench
    bench.main(args)


COMMANDS = {"train": cmd_train, "train-all": cmd_train_all,
            "evaluate": cmd_evaluate, "list": cmd_list, "bench": cmd_bench}
def main(argv=None) -> int:
    from .runtime import safe_streams
    streams = sys.stdout, sys.stderr
    safe_streams()
    try:
        return _main(argv)
    finally:
        sys.stdout.flush()
        sys.stdout, sys.stderr = streams


def _main(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("train", "evaluate"):
        try:
            args.config = config_from(args)
        except ConfigError as exc:
            parser.error(str(exc))
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
    return 0
