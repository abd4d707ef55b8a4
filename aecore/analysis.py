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
