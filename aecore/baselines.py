"""Baselines every autoencoder has to beat.

* PCA with k components (Jolliffe, 2002): the best *linear* code of size k
  in the squared-error sense. Fitted on the training split; reconstructions
  are clipped to [-1, 1] like the autoencoders' tanh outputs.
* The TensorFlow "Intro to Autoencoders" tutorial's dense autoencoder
  (code 64, 10 epochs): its published validation MSE on the [0, 1] scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import metrics

TF_TUTORIAL = {
    "mse": 0.0089,
    "epochs": 10,
    "code_size": 64,
    "model": "Dense(64, relu) encoder, Dense(784, sigmoid) decoder",
    "source": "https://www.tensorflow.org/tutorials/generative/autoencoder",
}
TF_DENOISER = {        # the same tutorial's convolutional denoiser
    "mse": 0.0068,
    "noise": 0.2,
    "epochs": 10,
    "source": TF_TUTORIAL["source"],
}


@dataclass(frozen=True)
class PCA:
    mean: torch.Tensor        # (784,)
    components: torch.Tensor  # (784, 784), columns by decreasing variance
    explained: torch.Tensor   # variance share of each component

    @classmethod
    def fit(cls, X: torch.Tensor) -> PCA:
        flat = X.flatten(1).double()
        mean = flat.mean(0)
        centered = flat - mean
        cov = centered.T @ centered / (len(flat) - 1)
        values, vectors = torch.linalg.eigh(cov)      # ascending order
        values, vectors = values.flip(0), vectors.flip(1)
        return cls(mean, vectors, values / values.sum())

    def reconstruct(self, X: torch.Tensor, k: int) -> torch.Tensor:
        W = self.components[:, :k]
        flat = X.flatten(1).double() - self.mean
        out = (flat @ W) @ W.T + self.mean
        return out.float().clamp(-1, 1).view_as(X)

    def evaluate(self, split, k: int, classifier=None) -> dict:
        X_hat = self.reconstruct(split.X, k)
        return metrics.summarize(X_hat, split.X, split.y, classifier)
