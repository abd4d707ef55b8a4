"""What the chapters display: the plan's stored runs, aggregated, as
Markdown tables. Loading never trains when valid results are stored."""

from __future__ import annotations

import json
import statistics
from functools import cached_property

import torch

from . import data as fmnist
from . import plan
from .classifier import load_or_train as load_classifier
from .results import Store
from .runs import Run, load_or_train
from .text import (  # noqa: F401  (the chapters use them as ae.report.*)
    ACT_LABELS,
    LABELS,
    METRIC_NAMES,
    fmt,
    markdown_table,
    mean_std,
    minus,
    signed,
    source,
)


class Book:
    """Every stored result the book reads, loaded once per chapter."""

    def __init__(self, root=None, results=None, log=print):
        self.data = fmnist.load(root)
        self.store = Store(results)
        self.log = log
        self._cache: dict[str, Run] = {}

    def run(self, cfg) -> Run:
        if cfg.name not in self._cache:
            self._cache[cfg.name] = load_or_train(
                cfg, self.data, self.store, log=self.log)
        return self._cache[cfg.name]

    def main(self, precision=plan.PRECISION
             ) -> dict[tuple[str, str], list[Run]]:
        """(architecture, activation) -> three seeds: the controlled
        comparison (in fp32 too: the evidence for training in bf16)."""
        return {k: [self.run(c) for c in cfgs]
                for k, cfgs in plan.main_runs(precision).items()}

    def selected(self) -> dict[str, list[Run]]:
        """Each architecture at its own activation, three seeds."""
        main = self.main()
        return {a: main[(a, plan.DEFAULT_ACT[a])] for a in plan.ARCHS}

    def strong(self) -> Run:
        return self.run(plan.strong_run())

    def batch64(self) -> dict[str, Run]:
        return {a: self.run(c) for a, c in plan.batch64_runs().items()}

    def tutorial_dense(self) -> Run:
        return self.run(plan.tutorial_dense())

    def tutorial_denoiser(self) -> Run:
        return self.run(plan.tutorial_denoiser())

    def denoisers(self) -> dict[float, Run]:
        return {s: self.run(c) for s, c in plan.denoiser_runs().items()}

    def one_class(self) -> dict[int, Run]:
        return {c: self.run(cfg) for c, cfg in plan.one_class_runs().items()}

    def activations(self) -> dict[str, Run]:
        return {a: self.run(c) for a, c in plan.activation_runs().items()}

    def code_sizes(self) -> dict[int, Run]:
        return {z: self.run(c) for z, c in plan.code_size_runs().items()}

    def vaes(self) -> dict[float, Run]:
        return {b: self.run(c) for b, c in plan.vae_runs().items()}

    def plan_record(self) -> dict:
        """What the last `train-all --plan book` that trained stored:
        its call time, runs trained, and `jobs` (runs at once)."""
        path = self.store.root / "plans" / "book.json"
        return json.loads(path.read_text())

    def plan_minutes(self) -> float:
        """Wall minutes of the whole book plan from its stored runs'
        times (training, per-epoch evaluation and test evaluation),
        scheduled as `train-all` schedules them: longest first, as many
        at once as the stored plan record's `jobs` (`plan.schedule`)."""
        walls = {c.name: self.run(c).record["wall_seconds"]
                 for c in plan.book()}
        jobs = self.plan_record().get("jobs", 1)
        return plan.schedule(walls, jobs)[1] / 60

    def vae(self) -> Run:
        return self.vaes()[1.0]

    def cached(self, name: str, runs: list[Run], compute, extra=None):
        """`compute()` (a JSON-able value: numbers, lists, dicts), stored
        in results/cache/<name>.json and keyed on the runs it reads (and
        on `extra`, a JSON-able dict of anything else it depends on), the
        data, and the code of the modules that produce results and of
        `analysis` and `baselines`. A stale or damaged entry is computed
        again and replaced; nothing is served under another key."""
        from .results import TRAINING_MODULES, atomic_save_json, make_key
        key = make_key({"name": name, **({"extra": extra} if extra else {}),
                        "runs": [r.record["key"] for r in runs]},
                       self.data.fingerprint,
                       TRAINING_MODULES + ("analysis", "baselines"))
        path = self.store.root / "cache" / f"{name}.json"
        try:
            entry = json.loads(path.read_text())
            if isinstance(entry, dict) and entry.get("key") == key:
                return entry["value"]
        except (OSError, ValueError):
            pass
        value = compute()
        atomic_save_json(path, {"key": key, "value": value})
        return value

    def probes(self) -> dict:
        """Test accuracy of a linear probe and a 5-NN vote on the selected
        model's codes, on PCA-64 and (linear only) on raw pixels; cached
        (about half a minute to compute)."""
        from . import analysis
        from .baselines import PCA
        run = self.selected()["conv"][0]

        def compute():
            train, test = self.data.train, self.data.test
            net = run.model()
            pca = PCA.fit(train.X)
            W = pca.components[:, :64].float()
            feats = {
                "conv AE code (64)": (codes(net, train.X),
                                      codes(net, test.X)),
                "PCA (64)": ((train.X.flatten(1) - pca.mean.float()) @ W,
                             (test.X.flatten(1) - pca.mean.float()) @ W),
                "raw pixels (784)": (train.X.flatten(1), test.X.flatten(1)),
            }
            return {
                "linear": {k: analysis.linear_probe(a, train.y, b, test.y)
                           for k, (a, b) in feats.items()},
                "knn": {k: analysis.knn_accuracy(a, train.y, b, test.y)
                        for k, (a, b) in feats.items() if "784" not in k}}

        return self.cached("probes", [run], compute)

    def generation(self) -> dict:
        """Sample quality of each VAE of the plan, in the reference
        classifier's feature space: 10,000 samples from its prior
        (generator seeded 0, VAEs in decreasing beta) against the 10,000
        test images (Frechet distance, class histogram of the samples),
        with its test MSE and KL; and two yardsticks against the test
        images: 10,000 training images and the selected model's test
        reconstructions. Cached (several seconds to compute)."""
        from . import analysis, metrics
        vaes = {b: self.run(c) for b, c in plan.vae_runs().items()}
        selected = self.selected()["conv"][0]
        clf = self.classifier()

        def compute():
            X = self.data.test.X
            test_feats = analysis.features(clf, X)
            g = torch.Generator().manual_seed(0)
            out = {}
            for beta in sorted(vaes, reverse=True):
                net = vaes[beta].model()
                with torch.no_grad():
                    many = torch.cat([net.sample(1000, generator=g)
                                      for _ in range(10)])
                lab = metrics.predict(clf, many)
                out[str(beta)] = {
                    "mse": vaes[beta].test["mse"],
                    "kl": vaes[beta].test["kl"],
                    "fd": analysis.frechet(analysis.features(clf, many),
                                           test_feats),
                    "hist": (torch.bincount(lab, minlength=10)
                             / len(lab)).tolist()}
            train_feats = analysis.features(clf,
                                            self.data.train.X[:10_000])
            X_hat = metrics.reconstruct(selected.model(), X)
            return {"vaes": out,
                    "fd_floor": analysis.frechet(train_feats, test_feats),
                    "fd_recon": analysis.frechet(
                        analysis.features(clf, X_hat), test_feats)}

        return self.cached("generation", [*vaes.values(), selected],
                           compute)

    def pca_test(self) -> dict:
        """PCA fitted to the training split, on the test split: every
        metric at 64 components ("64", recognition by the reference
        classifier) and the MSE at each code size of the plan's study and
        twice it ("mse", by number of components); cached."""
        from .baselines import PCA
        ks = sorted({k for z in plan.CODE_SIZES for k in (z, 2 * z)})
        clf = self.classifier()

        def compute():
            pca = PCA.fit(self.data.train.X)
            test = self.data.test
            return {"64": pca.evaluate(test, 64, clf),
                    "mse": {str(k): pca.evaluate(test, k)["mse"]
                            for k in ks}}

        value = self.cached("pca-test", [], compute, extra={
            "classifier": clf.record["weights"]["sha256"], "ks": ks})
        return {"64": value["64"],
                "mse": {int(k): v for k, v in value["mse"].items()}}

    @cached_property
    def _classifier(self):
        clf = load_classifier(self.data, self.store)
        return clf.to(memory_format=torch.channels_last)

    def test_outputs(self, run: Run) -> dict:
        """`analysis.reconstruction_stats` of `run`'s model on the test
        split, cached: per-image MSE (`err`) and the classifier's labels
        for outputs and inputs (`y_out`, `y_in`) as tensors, and the
        error-location shares and detail correlation as numbers."""
        from . import analysis
        test = self.data.test
        value = self.cached(
            f"test-outputs-{run.name}", [run],
            lambda: analysis.reconstruction_stats(
                run.model(), self.classifier(), test.X))
        out = dict(value)
        out["err"] = torch.tensor(value["err"])
        for k in ("y_out", "y_in"):
            out[k] = torch.tensor(value[k])
        return out

    def classifier(self):
        """The frozen reference classifier (trained once if missing)."""
        return self._classifier


@torch.inference_mode()
def codes(model, X: torch.Tensor, batch_size=5000) -> torch.Tensor:
    """A model's codes of every image of X, in evaluation mode."""
    model.eval()
    return torch.cat([model.encode(X[i:i + batch_size])
                      for i in range(0, len(X), batch_size)])


def test_summary(runs: list[Run]) -> dict:
    """Mean and standard deviation over seeds of every test metric, the
    epoch time, the parameter count, and seed 0's 95 % bootstrap
    intervals over test images (`mse_ci`, `recog_acc_ci`)."""
    out = {k: mean_std(r.test[k] for r in runs) for k in METRIC_NAMES}
    out["seconds"] = mean_std(
        statistics.median(r.curve("seconds")) for r in runs)
    out["eval_seconds"] = mean_std(
        statistics.median(r.curve("eval_seconds")) for r in runs)
    for k in ("mse_ci", "recog_acc_ci"):
        out[k] = runs[0].test[k]
    out["params"] = runs[0].record["params"]
    out["flops"] = runs[0].record["flops"]
    out["n"] = len(runs)
    return out


def seconds_per_epoch(run: Run) -> float:
    """The one definition of a run's training time per epoch: the median
    over its epochs of the gradient steps' wall time (evaluation not
    included)."""
    return statistics.median(run.curve("seconds"))


def layer_rows(model, group=()) -> list[dict]:
    """Like `models.layer_table`, but a module of a type in `group` (a
    residual block, say) is one row instead of one row per layer in it.
    (It repeats layer_table's hook rather than extending it, because
    `models` is part of every result's key: an edit there would retrain
    the whole plan.)"""
    rows, hooks = [], []

    def hook(module, _inputs, output):
        rows.append({"layer": type(module).__name__,
                     "output": tuple(output.shape[1:]),
                     "params": sum(p.numel() for p in module.parameters())})

    def visit(module):
        if isinstance(module, group) or not list(module.children()):
            hooks.append(module.register_forward_hook(hook))
            return
        for child in module.children():
            visit(child)

    visit(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, 28, 28,
                              device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def merge_free(rows: list[dict]) -> list[dict]:
    """Fold each parameter-free layer (an activation, a reshape) into the
    row of the layer before it ("Linear + ReLU"), or into the next one if
    it comes first, so that a layer table has one row per learned layer."""
    out, waiting = [], []
    for r in rows:
        if r["params"] == 0 and out:
            last = out[-1]
            out[-1] = {**last, "layer": f"{last['layer']} + {r['layer']}",
                       "output": r["output"]}
        elif r["params"] == 0:
            waiting.append(r["layer"])
        else:
            out.append({**r, "layer": " + ".join([*waiting, r["layer"]])})
            waiting = []
    return out


# -- what the chapters that only print numbers read (see `facts`) ----------

def preface_facts(book: Book) -> dict:
    """The preface's headline table: each design at its own activation
    (`test_summary` over three seeds)."""
    return {"summary": {a: test_summary(rs)
                        for a, rs in book.selected().items()}}


def conclusions_facts(book: Book) -> dict:
    """Every number the conclusions print."""
    summary = {k: test_summary(rs) for k, rs in book.main().items()}
    order = sorted(summary, key=lambda k: summary[k]["mse"][0])
    one = book.one_class()
    return {
        "ranking": " < ".join(f"{LABELS[a]} ({ACT_LABELS[x]})"
                              for a, x in order),
        "conv": summary[("conv", plan.DEFAULT_ACT["conv"])],
        "deep": summary[("deep", plan.DEFAULT_ACT["deep"])],
        "pca64_mse": book.pca_test()["64"]["mse"],
        "tf_mse": book.tutorial_dense().test["mse"],
        "strong_mse": book.strong().test["mse"],
        "probe_acc": book.probes()["linear"]["conv AE code (64)"],
        "mean_auroc": statistics.fmean(r.test["auroc"]
                                       for r in one.values()),
        "epochs": plan.EPOCHS,
        "plan_minutes": book.plan_minutes(),
    }
