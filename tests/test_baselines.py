import pytest
import torch

from aecore import metrics
from aecore.baselines import PCA


def test_pca_is_exact_with_all_components_and_improves_with_more():
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(5, 784, generator=g)
    X = (torch.randn(300, 5, generator=g) @ basis * 0.05).clamp(-1, 1)
    X = X.view(-1, 1, 28, 28)
    pca = PCA.fit(X)
    assert torch.allclose(pca.reconstruct(X, 784), X, atol=1e-5)
    errors = [metrics.per_image_mse(pca.reconstruct(X, k), X).mean().item()
              for k in (1, 2, 3, 4)]
    assert errors == sorted(errors, reverse=True)
    assert pca.explained.sum().item() == pytest.approx(1.0)
    assert pca.explained[:5].sum() > 0.99     # the data has rank 5
