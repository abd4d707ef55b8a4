import pytest
import torch
import torch.nn.functional as F

from aecore import config, describe, models
from aecore.errors import ConfigError
from aecore.train import objective

ARCHS = list(config.ARCHS)


def batch(n=32):
    g = torch.Generator().manual_seed(0)
    X = torch.rand(n, 1, 28, 28, generator=g) * 0.2 - 1
    for i in range(n):                  # a few shapes on a dark background
        X[i, 0, 4 + i % 10: 14 + i % 10, 6:20] = 0.8
    return X


@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_and_round_trip(arch):
    model = models.build(arch).eval()
    X = batch(8)
    code = model.encode(X)
    assert code.shape == (8, config.DEFAULT_CODE_SIZE[arch])
    out = model(X)
    assert out.shape == X.shape
    assert out.min() >= -1 and out.max() <= 1          # tanh output
    assert torch.allclose(model.decode(code), out)


def adam_losses(model, X, steps, lr):
    """The loss before each of `steps` Adam updates on the one batch X."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss, _ = objective(model, X)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("arch", ARCHS)
def test_loss_falls_on_one_batch(arch):
    torch.manual_seed(0)
    model = models.build(arch)
    X = batch()
    losses = adam_losses(model, X, steps=60, lr=2e-3)
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
    model.eval()
    assert F.mse_loss(model(X), X) < F.mse_loss(torch.zeros_like(X), X)


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh", "gelu"])
def test_deep_activation_option(act):
    model = models.build("deep", activation_name=act)
    kinds = {type(m) for m in model.modules()}
    assert getattr(torch.nn, config.ACTIVATIONS[act]) in kinds


def test_bad_names_rejected():
    with pytest.raises(ConfigError, match="unknown architecture"):
        models.build("transformer")
    with pytest.raises(ConfigError, match="unknown activation"):
        models.build("deep", activation_name="swishy")


def test_shallow_params_and_flops_known():
    model = models.build("shallow", code_size=64)
    dims = [(784, 256), (256, 64), (64, 256), (256, 784)]
    assert describe.n_params(model) == sum(a * b + b for a, b in dims)
    assert describe.forward_flops(model) == sum(2 * a * b for a, b in dims)


def test_tutorial_dense_is_the_keras_model():
    """Dense(64, relu) -> Dense(784, sigmoid) on [0, 1] pixels, Glorot
    uniform weights and zero biases (Keras' defaults)."""
    model = models.build("tf-dense")
    assert describe.n_params(model) == 784 * 64 + 64 + 64 * 784 + 784
    first = model.encoder[1]
    assert first.bias.abs().max() == 0
    bound = (6 / (784 + 64)) ** 0.5
    assert first.weight.abs().max() <= bound
    x = -torch.ones(2, 1, 28, 28)            # black on the [-1, 1] scale
    torch.testing.assert_close(model.encode(x), torch.zeros(2, 64))
    assert model(x).min() > -1 and model(x).max() < 1


def test_tutorial_denoiser_shapes():
    model = models.build("tf-denoiser")
    shapes = [r["output"] for r in describe.layer_table(model)]
    assert (16, 14, 14) in shapes and (8, 7, 7) in shapes
    assert describe.n_params(model) == (16 * 9 + 16) + (8 * 16 * 9 + 8) + (
        8 * 8 * 9 + 8) + (8 * 16 * 9 + 16) + (16 * 9 + 1)


def _conv_pair(batch_size=5, channels=16, seed=0):
    """A `OneChannelConv` and an `nn.Conv2d` with the same weights."""
    torch.manual_seed(seed)
    fast = models.OneChannelConv(channels)
    plain = torch.nn.Conv2d(channels, 1, 3, padding=1)
    plain.load_state_dict(fast.state_dict())
    fast.bias.data.fill_(0.3)
    plain.bias.data.fill_(0.3)
    x = torch.randn(batch_size, channels, 28, 28).relu()
    return fast, plain, x


@pytest.mark.parametrize("fmt", [torch.channels_last,
                                 torch.contiguous_format])
def test_one_channel_conv_is_nn_conv2d(fmt):
    """Outputs and all three gradients match nn.Conv2d, on the fast
    channels-last path and on the fallback."""
    fast, plain, x = _conv_pair()
    x = x.contiguous(memory_format=fmt)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = fast(x1), plain(x2)
    torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y2)
    y1.backward(g)
    y2.backward(g)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad,
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast.bias.grad, plain.bias.grad,
                               rtol=1e-4, atol=1e-4)


def test_one_channel_conv_edges_and_autocast():
    """Every border pixel sees only its in-image neighbours (a wrong
    offset would shift or wrap them), and bf16 autocast gives fp32."""
    fast, plain, x = _conv_pair(batch_size=2, channels=3)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fast.weight.copy_(torch.randn_like(fast.weight))
        plain.weight.copy_(fast.weight)
        want = plain(x)
        torch.testing.assert_close(fast(x), want, rtol=1e-5, atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = fast(x.bfloat16())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0.05, atol=0.05)


def test_tutorial_denoiser_trains_through_the_fast_conv():
    """The denoiser's last layer takes the fast path in training (its
    input is channels-last) and a few Adam steps lower the loss."""
    model = models.build("tf-denoiser").to(memory_format=torch.channels_last)
    seen = []
    model.decoder[-2].register_forward_hook(
        lambda m, i, o: seen.append(i[0].is_contiguous(
            memory_format=torch.channels_last)))
    X = batch(16).contiguous(memory_format=torch.channels_last)
    losses = adam_losses(model, X, steps=20, lr=1e-2)
    assert all(seen)
    assert losses[-1] < 0.5 * losses[0]


def test_every_compared_design_has_a_linear_code():
    """Same treatment of the code layer: the encoder ends in a Linear."""
    for arch in ("shallow", "deep", "conv", "resconv"):
        assert isinstance(models.build(arch).encoder[-1], torch.nn.Linear)


@pytest.mark.parametrize("arch", ARCHS)
def test_layer_table_accounts_for_every_parameter(arch):
    model = models.build(arch)
    rows = describe.layer_table(model)
    assert sum(r["params"] for r in rows) == describe.n_params(model)
    assert rows[-1]["output"] == (1, 28, 28)


def test_code_size_is_shared_by_deterministic_models():
    for arch in ("shallow", "deep", "conv", "resconv"):
        assert models.build(arch).encode(batch(2)).shape[1] == 64


def test_vae_samples_from_prior():
    vae = models.build("vae")
    g = torch.Generator().manual_seed(0)
    a, b = vae.sample(5, generator=g), vae.sample(5)
    assert a.shape == (5, 1, 28, 28) and not torch.equal(a, b)
    assert a.abs().max() <= 1


def test_layer_rows_group_residual_blocks():
    model = models.build("resconv")
    rows = describe.layer_table(model, group=(models.ResBlock,))
    assert sum(r["params"] for r in rows) == describe.n_params(model)
    assert [r["layer"] for r in rows].count("ResBlock") == 2
    assert len(rows) < len(describe.layer_table(model))


def test_merge_free_folds_parameter_free_layers_into_learned_ones():
    rows = describe.layer_table(models.build("conv"))
    merged = describe.merge_free(rows)
    assert [r["layer"] for r in merged] == [
        "Conv2d + GELU", "Conv2d + GELU + Flatten", "Linear",
        "Linear + GELU + Unflatten", "ConvTranspose2d + GELU",
        "ConvTranspose2d + Tanh"]
    assert merged[-1]["output"] == (1, 28, 28)
    assert sum(r["params"] for r in merged) == describe.n_params(
        models.build("conv"))
    # a leading parameter-free layer joins the first learned one
    lead = describe.merge_free([{"layer": "Flatten", "output": (784,),
                               "params": 0},
                              {"layer": "Linear", "output": (64,),
                               "params": 50240}])
    assert lead == [{"layer": "Flatten + Linear", "output": (64,),
                     "params": 50240}]


def test_markdown_table_marks_short_tables_whole():
    from aecore import report
    rows = [["a", 1], ["b", 2]]
    kept = report.markdown_table(["name", "n"], rows).data
    assert kept.startswith("::: {.whole}\n\n| name | n |")
    assert kept.endswith("| b | 2 |\n\n:::")
    loose = report.markdown_table(["name", "n"], rows, keep=False).data
    assert "whole" not in loose and loose.startswith("| name | n |")
    # a table too long for one page is left free to break
    long = report.markdown_table(["name", "n"], rows * 13).data
    assert "whole" not in long


def test_source_listings_are_whole_unbreakable_blocks(monkeypatch):
    import inspect
    import types

    from aecore import report
    md = report.source(models._conv_encoder, models.ConvAE).data
    html, pdf = md.split('when-format="pdf"')
    # HTML: one block per object; PDF: the same, each in a box LaTeX
    # cannot break, so it moves to the next page whole when it must
    assert html.count("```python") == 2 and "minipage" not in html
    assert pdf.count("```python") == 2
    assert pdf.count("\\begin{minipage}") == 2 == pdf.count("\\end{minipage}")
    assert inspect.getsource(models.ConvAE).rstrip() in html
    assert inspect.getsource(models.ConvAE).rstrip() in pdf
    # a listing longer than a page is left free to break
    fake, original = types.SimpleNamespace(), inspect.getsource
    long = "\n".join(f"x{i} = {i}" for i in range(60))
    monkeypatch.setattr(inspect, "getsource",
                        lambda o: long if o is fake else original(o))
    assert "minipage" not in report.source(fake).data


def test_long_listings_break_only_between_statements_after_a_blank_line():
    import inspect

    from aecore import report
    from aecore import text as aetext
    text = inspect.getsource(models.ConvVAE).rstrip()
    parts = aetext.pieces(text)
    # whole again when put back together, and cut before methods only
    assert "\n\n".join(parts) == text
    assert len(parts) == 2
    assert parts[0].startswith("class ConvVAE") and "def __init__" in parts[0]
    assert parts[1].lstrip().startswith("def encode_stats(")
    # a decorator stays with its function
    assert "@torch.no_grad()\n    def sample" in parts[1]
    pdf = report.source(models.ConvVAE).data.split('when-format="pdf"')[1]
    assert pdf.count("```python") == 2 == pdf.count("\\begin{minipage}")
    # on one page the two pieces join into one shaded box
    assert pdf.count(aetext.JOINED) == 1
    first, second = pdf.split(aetext.JOINED)
    assert first.rstrip().endswith("\\end{minipage}{\\parfillskip=0pt"
                                   "\\par}\n```")
    assert second.startswith("```{=latex}\n\\par\\noindent\\begin{minipage}")
    # no cut inside an expression, even after a blank line in it
    code = "def f():\n    x = [\n        1,\n\n        2]\n" + \
        "\n".join(f"    y{i} = {i}" for i in range(8)) + "\n\n    return x"
    assert aetext.break_points(code) == [14]    # "return x" only
    # every piece of every model class is at least MIN_PIECE lines long
    for cls in (getattr(models, c) for c in config.ARCHS.values()):
        src = inspect.getsource(cls).rstrip()
        parts = aetext.pieces(src)
        assert "\n\n".join(parts) == src
        if len(parts) > 1:
            assert min(p.count("\n") + 1 for p in parts) >= \
                aetext.MIN_PIECE


def test_negative_numbers_get_a_true_minus_sign():
    from aecore import report
    assert report.signed(-0.0123, "+.1%") == "\u22121.2%"
    assert report.signed(0.5, "+.1f") == "+0.5"
    assert report.signed(-0.0004, "+.1%") == "0.0%"
    assert report.signed(0.00004, "+.4f") == "0.0000"
    assert report.fmt(0.007363, 0.0000009, 5) == "0.00736 ± <0.00001"
    assert report.fmt(0.5, 0.0, 3) == "0.500 ± 0.000"
    assert report.fmt(0.5, 0.02, 3) == "0.500 ± 0.020"
    assert report.minus("-0.2 to -.5, 3-4, x-1") == \
        "\u22120.2 to \u2212.5, 3-4, x-1"
    table = report.markdown_table(["a", "b"], [["x-1", "-0.3"]]).data
    assert "| x-1 | \u22120.3 |" in table


def test_tables_of_eight_columns_or_more_are_set_smaller_in_the_pdf():
    from aecore import report
    wide = report.markdown_table(list("abcdefgh"), [list("12345678")]).data
    narrow = report.markdown_table(list("abcdefg"), [list("1234567")]).data
    assert "\\scriptsize" in wide and "\\scriptsize" not in narrow
    # and spread over the text width (filters/whole-tables.lua)
    assert "{.whole .wide}" in wide and "{.whole}" in narrow
    assert wide.rstrip().endswith("{\\footnotesize}\\setlength"
                                  "{\\aetabcolsep}{4pt}\n```")


def test_summary_counts_weight_layers_and_the_linear_share():
    from aecore import describe
    s = describe.summary(models.build("shallow"))
    assert s["weight_layers"] == 4 and s["linear_share"] == 1.0
    c = describe.summary(models.build("conv"))
    assert c["weight_layers"] == 6
    assert c["linear_params"] == 64 * 49 * 64 + 64 + 64 * 64 * 49 + 64 * 49
    assert c["linear_share"] == pytest.approx(c["linear_params"]
                                              / c["params"])
    rows = describe.layer_rows(models.build("conv"))
    assert sum(int(r[2].replace(",", "")) for r in rows) == c["params"]
