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

import math

import torch

from . import metrics


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
    (input at -1), and the background's share of pixels, all over the
    full 28 x 28 image; and the rank correlation between an image's MSE
    and its mean local gradient."""
    X_hat = metrics.reconstruct(model, X)
    err = metrics.per_image_mse(X_hat, X)
    # the gradient needs a right and a lower neighbour: pixels of the last
    # row and column get that of their left / upper neighbour
    gx = (X[..., :, 1:] - X[..., :, :-1]).abs()
    gy = (X[..., 1:, :] - X[..., :-1, :]).abs()
    gx = torch.cat([gx, gx[..., :, -1:]], -1)
    gy = torch.cat([gy, gy[..., -1:, :]], -2)
    grad = (gx + gy).flatten(1)
    sq = ((X_hat - X) / 2).pow(2).flatten(1)
    top = grad >= torch.quantile(grad.float(), 0.9)
    bg = (X == -1).flatten(1)

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


def paired_drop(ok_before: torch.Tensor, ok_after: torch.Tensor):
    """(drop, standard error) of an accuracy measured twice on the same
    images (booleans per image: right before, right after): the drop in
    share of images right, with the standard error for paired
    proportions, sqrt(b + c - (b - c)^2 / n) / n, where b images turned
    wrong and c turned right."""
    n = len(ok_before)
    b = int((ok_before & ~ok_after).sum())
    c = int((~ok_before & ok_after).sum())
    se = math.sqrt(max(b + c - (b - c) ** 2 / n, 0)) / n
    return (b - c) / n, se


def per_class(y: torch.Tensor, err: torch.Tensor, y_in: torch.Tensor,
              y_out: torch.Tensor) -> list[dict]:
    """Per true class: mean MSE, the classifier's accuracy on inputs and
    on outputs, and the paired drop with its standard error."""
    rows = []
    for c in range(int(y.max()) + 1):
        m = y == c
        ok_in, ok_out = y_in[m] == c, y_out[m] == c
        drop, se = paired_drop(ok_in, ok_out)
        rows.append({"mse": err[m].mean().item(),
                     "acc_in": ok_in.float().mean().item(),
                     "acc_out": ok_out.float().mean().item(),
                     "drop": drop, "se": se})
    return rows


def seed_difference(a, b) -> tuple[float, float]:
    """(mean(a) - mean(b), its standard error) for two independent groups
    of runs' values (Welch: sqrt(var_a / n_a + var_b / n_b))."""
    a, b = torch.tensor(list(a), dtype=torch.float64), \
        torch.tensor(list(b), dtype=torch.float64)
    se = (a.var() / len(a) + b.var() / len(b)).sqrt().item()
    return (a.mean() - b.mean()).item(), se


def lost_to(y: torch.Tensor, y_in: torch.Tensor, y_out: torch.Tensor,
            c: int, n: int = 2) -> list[tuple[int, int]]:
    """Where the reconstructions of class-`c` images went that the
    classifier recognised in the original and not after: the `n` labels
    it gives them most often, as (label, count), most frequent first."""
    lost = (y == c) & (y_in == c) & (y_out != c)
    counts = torch.bincount(y_out[lost], minlength=int(y.max()) + 1)
    top = counts.argsort(descending=True, stable=True)[:n]
    return [(int(k), int(counts[k])) for k in top if counts[k] > 0]


def confusion(y: torch.Tensor, pred: torch.Tensor, n=10) -> torch.Tensor:
    """Share of each true class (rows) given each label (columns)."""
    m = torch.zeros(n, n)
    m.index_put_((y, pred), torch.ones(len(y)), accumulate=True)
    return m / m.sum(1, keepdim=True).clamp_min(1)


def equivalent_k(mse: float, pca_mse: dict[int, float]) -> float:
    """The number of PCA components whose test MSE equals `mse`,
    interpolated linearly in log k and log MSE between the measured
    component counts (inf beyond the largest, the smallest below it)."""
    ks = sorted(pca_mse)
    if mse >= pca_mse[ks[0]]:
        return float(ks[0])
    for lo, hi in zip(ks, ks[1:]):
        if pca_mse[hi] <= mse:
            a, b = math.log(pca_mse[lo]), math.log(pca_mse[hi])
            t = (a - math.log(mse)) / (a - b)
            return math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo)))
    return math.inf


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
