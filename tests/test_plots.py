import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from aecore import plots  # noqa: E402


def test_pairs_draws_each_row_as_one_image_with_its_labels():
    X = torch.full((3, 1, 28, 28), -1.0)        # three black garments
    X_hat = X.clone()
    X_hat[1] = 0.0          # the second one mid-grey: |error| 0.5 on [0, 1]
    fig = plots.pairs(X, X_hat, [0, 1, 2], [0, 5, 2])
    *rows, bar = fig.axes
    assert [r.get_ylabel() for r in rows] == ["input", "output", "|error|"]
    assert all(len(r.images) == 1 for r in rows)
    assert [t.get_text() for t in rows[0].texts] == \
        ["T-shirt", "Trouser", "Pullover"]
    # the classifier's label over the output, marked where it is wrong
    assert [t.get_text() for t in rows[1].texts] == \
        ["T-shirt", "Sandal x", "Pullover"]
    # the error row is on the [0, 1] scale, with masked gaps between
    err = rows[2].images[0].get_array()
    assert err.shape == (28, 3 * 31 - 3)
    assert err[:, :28].max() == 0
    assert err[:, 31:59].min() == err[:, 31:59].max() == 0.5
    assert err.mask[:, 28:31].all() and not err.mask[:, :28].any()
    assert bar.get_ylabel() == "|error|, [0, 1] scale"
    # ten to a block: a twelfth image starts a second block of rows
    fig = plots.pairs(X.repeat(4, 1, 1, 1), X_hat.repeat(4, 1, 1, 1),
                      [0] * 12, [0] * 12, errors=False)
    assert len(fig.axes) == 4


def test_gallery_puts_each_class_in_its_own_named_column():
    from types import SimpleNamespace
    y = torch.arange(10).repeat(3)               # three images per class
    X = (y.float() / 4.5 - 1).view(-1, 1, 1, 1).expand(-1, 1, 28, 28)
    fig = plots.gallery(SimpleNamespace(X=X, y=y), per_class=3)
    ax, = fig.axes
    names = [t.get_text() for t in ax.get_xticklabels()]
    assert names == list(plots.SHORT)
    image = ax.images[0].get_array()
    assert image.shape == (3 * 31 - 3, 10 * 31 - 3)
    for c in range(10):           # column c holds only class c's images
        for k in range(3):
            tile = image[k * 31:k * 31 + 28, c * 31:c * 31 + 28]
            assert abs(tile.min() - c / 9) < 1e-6
            assert abs(tile.max() - c / 9) < 1e-6
    # wide and short: it shares a PDF page with text
    width, height = fig.get_size_inches()
    assert width == plots.WIDTH and height < width / 2
