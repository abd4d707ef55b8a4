"""The chapters' measurements of stored models, each computed once and
cached in results/cache/ (`report.Book.cached`), keyed on the runs it
reads, the data and the code. `book` is a `report.Book`: it serves the
runs, the reference classifier and the cache. Nothing here trains.

* `probes`: what the codes tell about the class (linear probe, 5-NN).
* `pca_test`: PCA fitted to the training split, scored on the test split.
* `test_outputs`: a model's reconstruction of every test image.
* `subset_gap`: how much the fixed training and validation subsets of
  the curves differ in difficulty, measured with PCA.
* `denoising`: the best linear (Wiener) denoiser at each noise level.
* `one_class`: the one-class scores' AUROCs, per normal class.
* `garments`: new garments drawn by the VAEs and by Gaussian mixtures
  fitted to deterministic autoencoders' codes.
"""

from __future__ import annotations

import statistics
from dataclasses import replace

import torch

from . import metrics, plan
from .analysis import (
    GaussianMixture,
    features,
    frechet,
    knn_accuracy,
    linear_probe,
    nearest,
    reconstruction_stats,
    standard_sum,
    wiener_apply,
    wiener_fit,
)
from .baselines import PCA

PCA_COMPONENTS = (2, 4, 8, 16, 32, 64, 128, 256)
NOISE_SEED = 7               # the Wiener filter's noisy training copy
SAMPLES = 10_000             # generated garments per generator
NOVELTY_SAMPLES = 1_000      # of which are matched to the training set
GMM_COMPONENTS = 10


def probes(book) -> dict:
    """Test accuracy of a linear probe and a 5-NN vote on the selected
    model's codes, on PCA-64 and (linear only) on raw pixels."""
    run = book.run(plan.final())

    def compute():
        train, test = book.data.train, book.data.test
        net = run.model()
        pca = PCA.fit(train.X)
        W = pca.components[:, :64].float()
        feats = {
            "conv AE code (64)": (metrics.encode(net, train.X),
                                  metrics.encode(net, test.X)),
            "PCA (64)": ((train.X.flatten(1) - pca.mean.float()) @ W,
                         (test.X.flatten(1) - pca.mean.float()) @ W),
            "raw pixels (784)": (train.X.flatten(1), test.X.flatten(1)),
        }
        return {
            "linear": {k: linear_probe(a, train.y, b, test.y)
                       for k, (a, b) in feats.items()},
            "knn": {k: knn_accuracy(a, train.y, b, test.y)
                    for k, (a, b) in feats.items() if "784" not in k}}

    return book.cached("probes", [run], compute)


def pca_test(book) -> dict:
    """PCA fitted to the training split, on the test split: every
    metric at 64 components ("64", recognition by the reference
    classifier) and the MSE at each number of components of
    `PCA_COMPONENTS` ("mse")."""
    ks = list(PCA_COMPONENTS)
    clf = book.classifier()

    def compute():
        pca = PCA.fit(book.data.train.X)
        test = book.data.test
        return {"64": pca.evaluate(test, 64, clf),
                "mse": {str(k): pca.evaluate(test, k)["mse"]
                        for k in ks}}

    value = book.cached("pca-test", [], compute, extra={
        "classifier": clf.record["weights"]["sha256"], "ks": ks})
    return {"64": value["64"],
            "mse": {int(k): v for k, v in value["mse"].items()}}


def test_outputs(book, run) -> dict:
    """`analysis.reconstruction_stats` of `run`'s model on the test
    split: per-image MSE (`err`) and the classifier's labels for outputs
    and inputs (`y_out`, `y_in`) as tensors, and the error-location
    shares and detail correlation as numbers."""
    test = book.data.test
    value = book.cached(
        f"test-outputs-{run.name}", [run],
        lambda: reconstruction_stats(
            run.model(), book.classifier(), test.X))
    out = dict(value)
    out["err"] = torch.tensor(value["err"])
    for k in ("y_out", "y_in"):
        out[k] = torch.tensor(value[k])
    return out


def subset_gap(book) -> dict:
    """PCA-64 (fitted to the training split) on the curves' two fixed
    subsets: its MSE on the training subset and on the validation
    subset. A model that learned nothing particular to its training
    images scores them alike, so their ratio is the subsets' own
    difference in difficulty."""
    from .train import EVAL_SIZE

    def compute():
        pca = PCA.fit(book.data.train.X)
        return {name: pca.evaluate(split.head(EVAL_SIZE), 64)["mse"]
                for name, split in (("train", book.data.train),
                                    ("val", book.data.val))}

    return book.cached("subset-gap", [], compute)


def denoising(book) -> dict:
    """The best linear denoiser (`analysis.wiener_fit`) at each noise
    level of the plan: fitted on one noisy copy of the training split,
    scored on the fixed noisy test inputs every denoiser of the book is
    scored on. Per level: the noisy input's test MSE and the filter's."""
    from .train import EVAL_NOISE_SEED, noisy
    levels = sorted(set(plan.NOISE_LEVELS) | set(plan.WIDE_NOISE))

    def compute():
        train, test = book.data.train, book.data.test
        out = {}
        for sigma in levels:
            cfg = replace(plan.selected("conv"), noise=sigma)
            W, b = wiener_fit(noisy(cfg, train.X, NOISE_SEED), train.X)
            X_in = noisy(cfg, test.X, EVAL_NOISE_SEED + 1)
            out[str(sigma)] = {
                "noisy_mse": metrics.per_image_mse(X_in, test.X).mean().item(),
                "mse": metrics.per_image_mse(wiener_apply(W, b, X_in),
                                             test.X).mean().item()}
        return out

    value = book.cached("denoising", [], compute, extra={"levels": levels})
    return {float(k): v for k, v in value.items()}


def one_class(book) -> dict:
    """AUROC of every one-class score, per normal class: the conv AE's
    reconstruction error ("rec"), the mean distance of its code to the 5
    nearest training codes ("code_knn"), both combined
    (`analysis.standard_sum`: "rec+code"), and two baselines on the same
    training images: the mean raw-pixel distance to the 5 nearest
    ("pixel_knn") and PCA-64's reconstruction error ("pca")."""
    one = book.runs(plan.one_class_runs())

    def compute():
        X, y = book.data.test.X, book.data.test.y
        out = {}
        for c, run in one.items():
            train_c = book.data.only_class(c).train.X
            anomalous = y != c
            rec = torch.tensor(run.test["scores"])
            code = torch.tensor(run.test["code_knn5"])
            pixel = metrics.knn_distances(X.flatten(1), train_c.flatten(1),
                                          k=5).mean(1)
            pca = metrics.per_image_mse(
                PCA.fit(train_c).reconstruct(X, 64), X)
            scores = {"rec": rec, "code_knn": code,
                      "rec+code": standard_sum(rec, code),
                      "pixel_knn": pixel, "pca": pca}
            out[str(c)] = {k: metrics.auroc(s, anomalous)
                           for k, s in scores.items()}
        return out

    value = book.cached("one-class", list(one.values()), compute)
    return {int(c): v for c, v in value.items()}


def _generated(book, images: torch.Tensor, test_feats, clf) -> dict:
    """Fréchet distance to the test images, class shares, and novelty:
    each of the first `NOVELTY_SAMPLES` images' MSE to its nearest
    training image."""
    labels = metrics.predict(clf, images)
    _, near = nearest(images[:NOVELTY_SAMPLES], book.data.train.X)
    return {"fd": frechet(features(clf, images), test_feats),
            "hist": (torch.bincount(labels, minlength=10)
                     / len(labels)).tolist(),
            "novelty": statistics.median(near.tolist())}


def garments(book) -> dict:
    """New garments, two ways, each `SAMPLES` strong (generator seeded
    0): decoded from each VAE's prior, and decoded from a Gaussian
    mixture (`GMM_COMPONENTS` components) fitted to the training codes of
    a deterministic autoencoder (the selected model, code 64, and the
    conv AE with the VAE's code size, 16). Per generator: `_generated`'s
    numbers, and the VAE's test MSE and KL. Yardsticks against the test
    images: 10,000 training images (Fréchet distance) and the test
    images' own nearest-training-image MSE ("test_novelty", the novelty
    of a new photograph), and the selected model's reconstructions."""
    vaes = book.runs(plan.vae_runs())
    aes = {"GMM on conv AE codes (64)": book.run(plan.final()),
           "GMM on conv AE codes (16)":
               book.run(plan.code_size_runs()[16])}
    clf = book.classifier()

    def compute():
        X = book.data.test.X
        test_feats = features(clf, X)
        g = torch.Generator().manual_seed(0)
        out = {}
        for beta in sorted(vaes, reverse=True):
            net = vaes[beta].model()
            with torch.no_grad():
                images = torch.cat([net.sample(1000, generator=g)
                                    for _ in range(SAMPLES // 1000)])
            out[f"VAE, beta = {beta:g}"] = {
                **_generated(book, images, test_feats, clf),
                "mse": vaes[beta].test["mse"], "kl": vaes[beta].test["kl"]}
        for name, run in aes.items():
            net = run.model()
            gmm = GaussianMixture(k=GMM_COMPONENTS).fit(
                metrics.encode(net, book.data.train.X))
            with torch.no_grad():
                images = torch.cat([net.decode(gmm.sample(1000, g))
                                    for _ in range(SAMPLES // 1000)])
            out[name] = {**_generated(book, images, test_feats, clf),
                         "mse": run.test["mse"]}
        _, test_near = nearest(X[:NOVELTY_SAMPLES], book.data.train.X)
        X_hat = metrics.reconstruct(aes["GMM on conv AE codes (64)"]
                                    .model(), X)
        return {"generators": out,
                "fd_floor": frechet(features(clf, book.data.train.X[:10_000]),
                                    test_feats),
                "fd_recon": frechet(features(clf, X_hat), test_feats),
                "test_novelty": statistics.median(test_near.tolist())}

    return book.cached("garments", [*vaes.values(), *aes.values()], compute,
                       extra={"samples": SAMPLES, "k": GMM_COMPONENTS})
