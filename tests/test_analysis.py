"""Chapter-side measurements against cases with a known answer."""

import json

import pytest
import torch

from aecore import analysis


def test_frechet_distance_of_commuting_gaussians_is_closed_form():
    """Covariances with the same eigenvectors: the distance is
    |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2 over their eigenvalues."""
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g,
                                       dtype=torch.float64))
    a = torch.tensor([1., 2., 3., 4., 5., 6.], dtype=torch.float64)
    b = torch.tensor([4., 1., 1., 9., 0.5, 2.], dtype=torch.float64)
    S1, S2 = Q @ torch.diag(a) @ Q.T, Q @ torch.diag(b) @ Q.T
    mu1 = torch.zeros(6, dtype=torch.float64)
    mu2 = torch.arange(6, dtype=torch.float64)
    expected = (mu2 @ mu2 + ((a.sqrt() - b.sqrt()) ** 2).sum()).item()
    assert analysis.frechet_distance(mu1, S1, mu2, S2) == pytest.approx(
        expected, rel=1e-9)
    assert analysis.frechet_distance(mu1, S1, mu1, S1) == pytest.approx(
        0, abs=1e-9)


def test_frechet_of_samples_approaches_the_closed_form():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200_000, 2, generator=g, dtype=torch.float64)
    y = torch.randn(200_000, 2, generator=g, dtype=torch.float64) * 2 + 1
    # N(0, I) vs N(1, 4I): 2 * 1^2 + 2 * (1 - 2)^2 = 4
    assert analysis.frechet(x, y) == pytest.approx(4, rel=0.02)


def test_nearest_finds_the_copy_and_its_distance():
    g = torch.Generator().manual_seed(2)
    pool = torch.rand(50, 1, 28, 28, generator=g) * 2 - 1
    queries = pool[[7, 31]] + 0.02
    idx, mse = analysis.nearest(queries, pool, batch_size=16)
    assert idx.tolist() == [7, 31]
    assert mse.tolist() == pytest.approx([0.0001, 0.0001], rel=1e-6)


def test_smoothness_of_a_straight_even_path_and_of_a_jump():
    a, b = torch.zeros(1, 4), torch.ones(1, 4)
    t = torch.linspace(0, 1, 8).view(-1, 1)
    assert analysis.smoothness((1 - t) * a + t * b) == pytest.approx(1 / 7)
    jump = torch.cat([a, a, a, b, b, b])
    assert analysis.smoothness(jump) == pytest.approx(1.0)


def _blobs(n=600, d=8, seed=3):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.randn(3, d, generator=g) * 4
    return centres[y] + torch.randn(n, d, generator=g), y


def test_probes_separate_separable_classes_and_not_noise():
    Z, y = _blobs()
    assert analysis.linear_probe(Z[:400], y[:400], Z[400:], y[400:]) > 0.95
    assert analysis.knn_accuracy(Z[:400], y[:400], Z[400:], y[400:]) > 0.95
    noise = torch.randn(600, 8, generator=torch.Generator().manual_seed(4))
    acc = analysis.linear_probe(noise[:400], y[:400], noise[400:], y[400:])
    assert acc < 0.6                      # chance is 1/3


def test_neighbour_mix_rows_sum_to_one_and_see_overlap():
    Z, y = _blobs()
    mix = analysis.neighbour_mix(Z, y, k=5, batch_size=128)
    assert torch.allclose(mix.sum(1), torch.ones(3, dtype=torch.float64))
    assert mix.diag().min() > 0.95
    Z[y == 1] = Z[y == 0]                 # classes 0 and 1 identical
    mix = analysis.neighbour_mix(Z + 0.01 * torch.randn_like(Z), y, k=5)
    assert 0.3 < mix[0, 1] < 0.7 and mix[2, 2] > 0.95


def test_pca_2d_keeps_the_main_direction():
    t = torch.linspace(-1, 1, 100)
    Z = torch.stack([t, 2 * t, torch.zeros(100)], 1)
    P = analysis.pca_2d(Z)
    assert P.shape == (100, 2)
    assert P[:, 0].abs().max() == pytest.approx(5 ** 0.5, rel=1e-4)
    assert P[:, 1].abs().max() < 1e-5


def test_book_cache_is_keyed_and_heals(synthetic_root, tmp_path):
    """A cached chapter computation is served while its key holds, and
    computed again when the runs it reads change or the file is damaged."""
    from aecore.report import Book

    book = Book(synthetic_root, tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"value": len(calls)}

    class FakeRun:
        def __init__(self, key):
            self.record = {"key": key}

    assert book.cached("x", [FakeRun("a")], compute) == {"value": 1}
    assert book.cached("x", [FakeRun("a")], compute) == {"value": 1}
    assert len(calls) == 1
    assert book.cached("x", [FakeRun("b")], compute) == {"value": 2}
    (tmp_path / "cache" / "x.json").write_text("{not json")
    assert book.cached("x", [FakeRun("b")], compute) == {"value": 3}
    # what it depends on besides runs (a classifier's weights, say)
    extra = {"classifier": "sha-1"}
    assert book.cached("x", [FakeRun("b")], compute, extra) == {"value": 4}
    assert book.cached("x", [FakeRun("b")], compute, extra) == {"value": 4}
    assert book.cached("x", [FakeRun("b")], compute,
                       {"classifier": "sha-2"}) == {"value": 5}
    # an entry without its value is damage too
    path = tmp_path / "cache" / "x.json"
    entry = json.loads(path.read_text())
    del entry["value"]
    path.write_text(json.dumps(entry))
    assert book.cached("x", [FakeRun("b")], compute,
                       {"classifier": "sha-2"}) == {"value": 6}


def test_book_never_trains(synthetic_root, tmp_path):
    """A missing result stops the chapter with one line naming the
    command that trains it; nothing is trained or written."""
    from aecore import plan
    from aecore.errors import AecoreError
    from aecore.report import Book

    book = Book(synthetic_root, tmp_path)
    with pytest.raises(AecoreError, match="train-all --plan report"):
        book.run(plan.selected("conv"))
    with pytest.raises(AecoreError, match="train-all --plan book"):
        book.plan_record("book")
    assert not any(tmp_path.iterdir())


def test_wiener_filter_is_the_least_squares_denoiser():
    """On data with a known linear relation it recovers the map; on
    independent pixels with additive noise it reaches the Wiener error
    sigma^2 v / (v + sigma^2)."""
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(2000, 1, 4, 4, generator=g) * 1.6 - 0.8
    noisy = clean + 0.2 * torch.randn(clean.shape, generator=g)
    W, b = analysis.wiener_fit(noisy, clean, ridge=1e-6)
    out = analysis.wiener_apply(W, b, noisy)
    assert out.shape == clean.shape and out.abs().max() <= 1
    mse_out = (out - clean).pow(2).mean().item()
    v, s2 = 1.6 ** 2 / 12, 0.2 ** 2
    assert mse_out == pytest.approx(s2 * v / (v + s2), rel=0.05)
    exact = analysis.wiener_fit(clean, 0.5 * clean + 0.1, ridge=1e-9)
    assert torch.allclose(exact[0], 0.5 * torch.eye(16, dtype=torch.float64),
                          atol=1e-5)
    assert torch.allclose(exact[1], torch.full((16,), 0.1,
                                               dtype=torch.float64),
                          atol=1e-5)


def test_gaussian_mixture_finds_and_samples_two_clusters():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 2, generator=g) * 0.1 + torch.tensor([3.0, 0.0])
    b = torch.randn(100, 2, generator=g) * 0.1 - torch.tensor([3.0, 0.0])
    gmm = analysis.GaussianMixture(k=2, seed=1).fit(torch.cat([a, b]))
    assert sorted(gmm.weights.tolist()) == pytest.approx([0.25, 0.75],
                                                         abs=0.01)
    draws = gmm.sample(4000, generator=torch.Generator().manual_seed(2))
    right = (draws[:, 0] > 0).float().mean().item()
    assert right == pytest.approx(0.75, abs=0.03)
    near = gmm.log_prob(torch.tensor([[3.0, 0.0]]))
    far = gmm.log_prob(torch.tensor([[0.0, 3.0]]))
    assert near > far + 10


def test_standard_sum_weighs_scores_of_any_unit_alike():
    s1 = torch.tensor([1.0, 2.0, 4.0, 8.0])
    combined = analysis.standard_sum(s1, 1000 * s1)
    assert torch.allclose(combined, 2 * analysis.standard_sum(s1))


def test_raw_pixel_knn_score_ranks_outliers_first():
    from aecore import metrics
    g = torch.Generator().manual_seed(0)
    train = torch.randn(200, 10, generator=g) * 0.1
    test = torch.cat([torch.randn(50, 10, generator=g) * 0.1,
                      torch.randn(50, 10, generator=g) * 0.1 + 1])
    score = metrics.knn_distances(test, train, k=5).mean(1)
    outlier = torch.arange(100) >= 50
    assert metrics.auroc(score, outlier) == 1.0


def test_paired_drop_counts_only_images_that_changed():
    before = torch.tensor([True] * 80 + [False] * 20)
    after = before.clone()
    after[:10] = False            # 10 turned wrong
    after[80:85] = True           # 5 turned right
    drop, se = analysis.paired_drop(before, after)
    assert drop == pytest.approx(0.05)
    n, b, c = 100, 10, 5
    assert se == pytest.approx((b + c - (b - c) ** 2 / n) ** 0.5 / n)
    assert analysis.paired_drop(before, before) == (0.0, 0.0)


def test_per_class_rows_match_a_hand_count():
    y = torch.tensor([0, 0, 1, 1])
    err = torch.tensor([1.0, 3.0, 2.0, 2.0])
    y_in = torch.tensor([0, 0, 1, 0])
    y_out = torch.tensor([0, 1, 1, 1])
    rows = analysis.per_class(y, err, y_in, y_out)
    assert [r["mse"] for r in rows] == [2.0, 2.0]
    assert rows[0]["acc_in"] == 1.0 and rows[0]["acc_out"] == 0.5
    assert rows[0]["drop"] == 0.5
    assert rows[1]["acc_in"] == 0.5 and rows[1]["acc_out"] == 1.0
    assert rows[1]["drop"] == -0.5


def test_confusion_rows_are_shares_of_each_true_class():
    y = torch.tensor([0, 0, 0, 1])
    pred = torch.tensor([0, 1, 1, 1])
    m = analysis.confusion(y, pred, n=3)
    assert torch.allclose(m[0], torch.tensor([1 / 3, 2 / 3, 0]))
    assert torch.allclose(m[1], torch.tensor([0.0, 1.0, 0.0]))
    assert m[2].sum() == 0          # a class never seen: a row of zeros


def test_equivalent_k_interpolates_a_power_law_exactly():
    pca = {k: 0.1 * k ** -0.5 for k in (2, 4, 8, 16, 32)}
    for k in (3.0, 6.0, 20.0):
        assert analysis.equivalent_k(0.1 * k ** -0.5, pca) == \
            pytest.approx(k)
    assert analysis.equivalent_k(1.0, pca) == 2          # worse than all
    assert analysis.equivalent_k(1e-6, pca) == float("inf")


def test_seed_difference_is_welchs():
    a, b = [1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0]
    d, se = analysis.seed_difference(a, b)
    assert d == pytest.approx(2.0)
    assert se == pytest.approx((1.0 / 3) ** 0.5)


def test_reconstruction_stats_count_the_whole_image():
    """Background share and error shares are over all 28 x 28 pixels:
    an error only in the last row is found."""
    class Shift(torch.nn.Module):
        def forward(self, x):
            out = x.clone()
            out[..., -1, :] = 1.0          # error only in the last row
            return out

    class Clf(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(len(x), 10)

    X = -torch.ones(4, 1, 28, 28)
    X[:, :, 5:20, 5:20] = 0.5
    stats = analysis.reconstruction_stats(Shift(), Clf(), X)
    bg = (X == -1).float().mean().item()
    assert stats["bg_pixels"] == pytest.approx(bg)
    assert stats["bg_share"] == pytest.approx(1.0)   # all of it on the border


def test_lost_to_names_where_lost_images_went():
    y = torch.tensor([0, 0, 0, 0, 1])
    y_in = torch.tensor([0, 0, 0, 1, 1])
    y_out = torch.tensor([2, 2, 1, 2, 1])     # the fourth 0 was never right
    assert analysis.lost_to(y, y_in, y_out, 0) == [(2, 2), (1, 1)]
    assert analysis.lost_to(y, y_in, y_out, 0, n=1) == [(2, 2)]
    assert analysis.lost_to(y, y_in, y_out, 1) == []   # none lost
