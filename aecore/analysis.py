"""Measurements the chapters make on stored models: sample quality,
nearest neighbours, the smoothness of interpolations. Nothing here
trains or changes a stored result.

* `frechet_distance`: the Fréchet distance between two Gaussians,
  ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) (Heusel et al., 2017),
  here fitted to the reference classifier's 128-number penultimate
  features. It is *not* the Inception-based FID of the literature, so it
  does not compare with published FIDs.
* `nearest`: for each query image, the closest image of a pool in pixels.
* `smoothness`: the largest step between neighbouring frames of a path,
  over the distance between its two ends (1/(n-1) for evenly spaced
  frames on a straight line; larger means a jump).
"""

from __future__ import annotations

import torch

from . import metrics, plan
from .baselines import PCA

PCA_COMPONENTS = (2, 4, 8, 16, 32, 64, 128, 256)


@torch.inference_mode()
def features(classifier, X: torch.Tensor, batch_size=1000) -> torch.Tensor:
    """The reference classifier's penultimate features (after the hidden
    ReLU), one row per image, in evaluation mode."""
    classifier.eval()
    body = classifier.net[:-1]
    cl = torch.channels_last
    return torch.cat([
        body(X[i:i + batch_size].contiguous(memory_format=cl)).double()
        for i in range(0, len(X), batch_size)])


def gaussian(F: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance (unbiased) of the rows of F."""
    F = F.double()
    mu = F.mean(0)
    C = F - mu
    return mu, C.T @ C / (len(F) - 1)


def _sqrt_psd(S: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh((S + S.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(mu1, S1, mu2, S2) -> float:
    """Fréchet distance of N(mu1, S1) and N(mu2, S2). The trace of
    (S1 S2)^(1/2) is computed as that of the symmetric
    (S1^(1/2) S2 S1^(1/2))^(1/2), which has the same eigenvalues."""
    r1 = _sqrt_psd(S1.double())
    middle = r1 @ S2.double() @ r1
    vals = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0)
    d = (mu1 - mu2).double()
    return (d @ d + torch.trace(S1) + torch.trace(S2)
            - 2 * vals.sqrt().sum()).item()


def frechet(F1: torch.Tensor, F2: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets."""
    return frechet_distance(*gaussian(F1), *gaussian(F2))


@torch.inference_mode()
def nearest(queries: torch.Tensor, pool: torch.Tensor,
            batch_size=5000) -> tuple[torch.Tensor, torch.Tensor]:
    """(index into pool, per-pixel MSE on the [0, 1] scale) of each
    query's nearest pool image in Euclidean pixel distance."""
    q = queries.flatten(1).double()
    best_d = torch.full((len(q),), float("inf"), dtype=torch.float64)
    best_i = torch.zeros(len(q), dtype=torch.long)
    for start in range(0, len(pool), batch_size):
        p = pool[start:start + batch_size].flatten(1).double()
        d = torch.cdist(q, p).pow(2)
        val, idx = d.min(1)
        better = val < best_d
        best_d[better] = val[better]
        best_i[better] = idx[better] + start
    return best_i, best_d / q.shape[1] / 4


def smoothness(frames: torch.Tensor) -> float:
    """Largest step between neighbouring frames over the distance
    between the first and the last frame (pixel Euclidean distance)."""
    flat = frames.flatten(1).double()
    steps = (flat[1:] - flat[:-1]).norm(dim=1)
    return (steps.max() / (flat[-1] - flat[0]).norm()).item()


def standardize(train: torch.Tensor, *others: torch.Tensor):
    """Features scaled by the training set's mean and standard deviation."""
    mu = train.mean(0)
    sd = train.std(0).clamp_min(1e-6)
    return [(t - mu) / sd for t in (train, *others)]


def linear_probe(Z_train, y_train, Z_test, y_test, weight_decay=1e-4,
                 steps=200) -> float:
    """Test accuracy of a multinomial logistic regression (a linear
    classifier with softmax) fitted to standardised training features by
    full-batch L-BFGS with a small L2 penalty."""
    Z_train, Z_test = standardize(Z_train.double(), Z_test.double())
    n_classes = int(y_train.max()) + 1
    W = torch.zeros(Z_train.shape[1], n_classes, dtype=torch.float64,
                    requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=steps,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(Z_train @ W + b, y_train)
        loss = loss + weight_decay * W.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return ((Z_test @ W + b).argmax(1) == y_test).double().mean().item()


@torch.inference_mode()
def knn_accuracy(Z_train, y_train, Z_test, y_test, k=5,
                 batch_size=2000) -> float:
    """Test accuracy of a k-nearest-neighbour vote (Euclidean, on
    standardised features)."""
    Z_train, Z_test = standardize(Z_train.float(), Z_test.float())
    hits = 0
    for i in range(0, len(Z_test), batch_size):
        d = torch.cdist(Z_test[i:i + batch_size], Z_train)
        idx = d.topk(k, largest=False).indices
        votes = torch.nn.functional.one_hot(y_train[idx], int(y_train.max())
                                            + 1).sum(1)
        hits += (votes.argmax(1) == y_test[i:i + batch_size]).sum().item()
    return hits / len(Z_test)


@torch.inference_mode()
def neighbour_mix(Z: torch.Tensor, y: torch.Tensor, k=10,
                  batch_size=2000) -> torch.Tensor:
    """(classes, classes) matrix: row c is how the k nearest neighbours
    (in code space, the image itself excluded) of the images of class c
    are spread over the classes; the off-diagonal part of row c is the
    share of class c's neighbours that belong to another class."""
    n_classes = int(y.max()) + 1
    mix = torch.zeros(n_classes, n_classes, dtype=torch.float64)
    Z = Z.float()
    for i in range(0, len(Z), batch_size):
        d = torch.cdist(Z[i:i + batch_size], Z)
        rows = torch.arange(len(d))
        d[rows, rows + i] = float("inf")
        idx = d.topk(k, largest=False).indices
        for c in range(n_classes):
            own = y[i:i + batch_size] == c
            if own.any():
                mix[c] += torch.bincount(y[idx[own]].flatten(),
                                         minlength=n_classes).double()
    return mix / mix.sum(1, keepdim=True)


def pca_2d(Z: torch.Tensor) -> torch.Tensor:
    """The first two principal components of the rows of Z."""
    C = Z.double() - Z.double().mean(0)
    _, _, V = torch.linalg.svd(C, full_matrices=False)
    return (C @ V[:2].T).float()


@torch.inference_mode()
def reconstruction_stats(model, classifier, X: torch.Tensor) -> dict:
    """What the chapters measure on a model's reconstructions of X (the
    test split), as JSON-able values: each image's MSE on the [0, 1]
    scale; the reference classifier's labels for the outputs and for the
    inputs; the share of the squared error on the tenth of pixels with the
    largest local gradient of the input (edges) and on the background
    (input at -1), the background's share of pixels; and the rank
    correlation between an image's MSE and its mean local gradient."""
    from . import metrics
    X_hat = metrics.reconstruct(model, X)
    err = metrics.per_image_mse(X_hat, X)
    gx = (X[..., :, 1:] - X[..., :, :-1]).abs()[..., :-1, :]
    gy = (X[..., 1:, :] - X[..., :-1, :]).abs()[..., :, :-1]
    grad = (gx + gy).flatten(1)
    sq = ((X_hat - X) / 2).pow(2)[..., :-1, :-1].flatten(1)
    top = grad >= torch.quantile(grad.float(), 0.9)
    bg = (X[..., :-1, :-1] == -1).flatten(1)

    def rank(v):
        return v.argsort().argsort().double()
    rho = torch.corrcoef(torch.stack([rank(grad.mean(1)), rank(err)]))
    return {"err": [float(f"{e:.7g}") for e in err.tolist()],
            "y_out": metrics.predict(classifier, X_hat).tolist(),
            "y_in": metrics.predict(classifier, X).tolist(),
            "edge_share": (sq[top].sum() / sq.sum()).item(),
            "bg_share": (sq[bg].sum() / sq.sum()).item(),
            "bg_pixels": bg.float().mean().item(),
            "rho_detail": rho[0, 1].item()}


# -- cached measurements of stored models, for the chapters (`book` is a
# `report.Book`: it serves the runs, the classifier and the cache) -------

def probes(book) -> dict:
    """Test accuracy of a linear probe and a 5-NN vote on the selected
    model's codes, on PCA-64 and (linear only) on raw pixels; cached
    (about half a minute to compute)."""
    run = book.run(plan.selected("conv"))

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


def generation(book) -> dict:
    """Sample quality of each VAE of the plan, in the reference
    classifier's feature space: 10,000 samples from its prior
    (generator seeded 0, VAEs in decreasing beta) against the 10,000
    test images (Frechet distance, class histogram of the samples),
    with its test MSE and KL; and two yardsticks against the test
    images: 10,000 training images and the selected model's test
    reconstructions. Cached (several seconds to compute)."""
    vaes = book.runs(plan.vae_runs())
    selected = book.run(plan.selected("conv"))
    clf = book.classifier()

    def compute():
        X = book.data.test.X
        test_feats = features(clf, X)
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
                "fd": frechet(features(clf, many),
                                       test_feats),
                "hist": (torch.bincount(lab, minlength=10)
                         / len(lab)).tolist()}
        train_feats = features(clf,
                                        book.data.train.X[:10_000])
        X_hat = metrics.reconstruct(selected.model(), X)
        return {"vaes": out,
                "fd_floor": frechet(train_feats, test_feats),
                "fd_recon": frechet(
                    features(clf, X_hat), test_feats)}

    return book.cached("generation", [*vaes.values(), selected],
                       compute)


def pca_test(book) -> dict:
    """PCA fitted to the training split, on the test split: every
    metric at 64 components ("64", recognition by the reference
    classifier) and the MSE at each number of components of
    `PCA_COMPONENTS` ("mse"); cached."""
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
    """`reconstruction_stats` of `run`'s model on the test
    split, cached: per-image MSE (`err`) and the classifier's labels
    for outputs and inputs (`y_out`, `y_in`) as tensors, and the
    error-location shares and detail correlation as numbers."""
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


# -- baselines and generators of the "beyond" part --------------------------

def wiener_fit(noisy: torch.Tensor, clean: torch.Tensor, ridge=1e-3):
    """The best linear denoiser (a Wiener filter): `W`, `b` minimising the
    squared error of `noisy @ W + b` against `clean` (images flattened),
    by least squares with a small ridge (relative to the inputs' mean
    square) that keeps the normal equations well posed."""
    A = noisy.flatten(1).double()
    Y = clean.flatten(1).double()
    mean_a, mean_y = A.mean(0), Y.mean(0)
    A, Y = A - mean_a, Y - mean_y
    gram = A.T @ A
    gram += ridge * gram.diagonal().mean() * torch.eye(len(gram),
                                                       dtype=gram.dtype)
    W = torch.linalg.solve(gram, A.T @ Y)
    return W, mean_y - mean_a @ W


def wiener_apply(W, b, noisy: torch.Tensor) -> torch.Tensor:
    """The linear denoiser's output, clipped to the pixel range [-1, 1]."""
    out = noisy.flatten(1).double() @ W + b
    return out.clamp(-1, 1).float().reshape(noisy.shape)


class GaussianMixture:
    """A mixture of `k` full-covariance Gaussians fitted by EM: the
    density a deterministic autoencoder's codes are sampled from, after
    training ("ex-post density estimation", Ghosh et al., 2020)."""

    def __init__(self, k=10, iters=100, seed=0, reg=1e-6):
        self.k, self.iters, self.seed, self.reg = k, iters, seed, reg

    def fit(self, Z: torch.Tensor) -> GaussianMixture:
        Z = Z.double()
        n, d = Z.shape
        g = torch.Generator().manual_seed(self.seed)
        self.means = Z[torch.randperm(n, generator=g)[:self.k]].clone()
        cov = torch.cov(Z.T).reshape(d, d) + self.reg * torch.eye(d)
        self.covs = cov.expand(self.k, d, d).clone()
        self.weights = torch.full((self.k,), 1 / self.k, dtype=Z.dtype)
        previous = -torch.inf
        for _ in range(self.iters):
            log_r = self._joint(Z)                        # E step
            total = torch.logsumexp(log_r, 1, keepdim=True)
            r = (log_r - total).exp()
            mean_ll = total.mean().item()
            nk = r.sum(0) + 1e-12                          # M step
            self.weights = nk / n
            self.means = (r.T @ Z) / nk[:, None]
            for j in range(self.k):
                D = Z - self.means[j]
                self.covs[j] = (r[:, j, None] * D).T @ D / nk[j] \
                    + self.reg * torch.eye(d, dtype=Z.dtype)
            if abs(mean_ll - previous) < 1e-6 * abs(mean_ll):
                break
            previous = mean_ll
        return self

    def _joint(self, Z):
        dist = torch.distributions.MultivariateNormal(self.means,
                                                      self.covs)
        return dist.log_prob(Z[:, None, :]) + self.weights.log()

    def log_prob(self, Z: torch.Tensor) -> torch.Tensor:
        """Log density of each row of `Z`."""
        return torch.logsumexp(self._joint(Z.double()), 1)

    def sample(self, n: int, generator=None) -> torch.Tensor:
        """`n` draws from the mixture."""
        which = torch.multinomial(self.weights, n, replacement=True,
                                  generator=generator)
        L = torch.linalg.cholesky(self.covs)
        eps = torch.randn(n, self.means.shape[1], generator=generator,
                          dtype=torch.float64)
        return (self.means[which]
                + (L[which] @ eps[:, :, None]).squeeze(-1)).float()


def standard_sum(*scores: torch.Tensor) -> torch.Tensor:
    """Anomaly scores combined: the sum of each score's logarithm
    standardised over the scored images (no labels used), so scores of
    different units weigh alike."""
    out = 0
    for s in scores:
        s = torch.as_tensor(s, dtype=torch.float64).clamp_min(1e-12).log()
        out = out + (s - s.mean()) / s.std()
    return out
