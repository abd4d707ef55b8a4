"""The autoencoders, in a registry by name.

Every model maps images in [-1, 1] of shape (N, 1, 28, 28) to images of the
same shape, through `encode` (image -> code) and `decode` (code -> image).
Outputs go through `tanh`, because the inputs were normalised to [-1, 1].
The three compared designs share the code size (64 by default) and its
treatment: the code layer is linear, every hidden layer carries the chosen
activation. Layers, widths and (as an option) the activation differ.

Two models are the TensorFlow autoencoder tutorial's, layer for layer, as
baselines (`TFDense`, `TFDenoiser`): they work on [0, 1] pixels with a
sigmoid output and Keras' default initialisation (Glorot uniform weights,
zero biases); `unit_scale` tells the training loss to use that scale.
"""

from __future__ import annotations

import torch
from torch import nn

from . import config
from .errors import ConfigError


def activation(name: str) -> nn.Module:
    if name not in config.ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose from "
                          f"{', '.join(config.ACTIVATIONS)}")
    return getattr(nn, config.ACTIVATIONS[name])()


class Autoencoder(nn.Module):
    """Base class: `forward` is `decode(encode(x))`."""

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        return self.decode(self.encode(x))


class ShallowMLP(Autoencoder):
    """784 -> 256 -> code -> 256 -> 784: one hidden layer on each side.

    Question: how far does one non-linear layer around a linear code get?
    It has about as many parameters as the convolutional model, so it
    isolates what the convolutions' structure buys.
    """

    def __init__(self, code_size=64, activation_name="relu", width=256):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(784, width), activation(activation_name),
            nn.Linear(width, code_size),
        )
        self.decoder = nn.Sequential(
            nn.Linear(code_size, width), activation(activation_name),
            nn.Linear(width, 784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28)),
        )


class DeepMLP(Autoencoder):
    """784 -> 512 -> 256 -> code, and the mirror image back.

    Question: do depth and width help when the model still ignores that
    pixels have neighbours? The hidden activation is an option (ReLU,
    Sigmoid, Tanh, GELU, SiLU), so the activation study is one argument away.
    The code layer itself is linear, as in Hinton & Salakhutdinov (2006).
    """

    def __init__(self, code_size=64, activation_name="relu",
                 widths=(512, 256)):
        super().__init__()
        dims = (784, *widths)
        enc: list[nn.Module] = [nn.Flatten()]
        for d_in, d_out in zip(dims, dims[1:]):
            enc += [nn.Linear(d_in, d_out), activation(activation_name)]
        enc.append(nn.Linear(dims[-1], code_size))
        dec: list[nn.Module] = []
        back = (code_size, *reversed(widths))
        for d_in, d_out in zip(back, back[1:]):
            dec += [nn.Linear(d_in, d_out), activation(activation_name)]
        dec += [nn.Linear(back[-1], 784), nn.Tanh(),
                nn.Unflatten(1, (1, 28, 28))]
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)


def _conv_encoder(channels, out_dim, act):
    c1, c2 = channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, stride=2, padding=1), activation(act),    # 14x14
        nn.Conv2d(c1, c2, 3, stride=2, padding=1), activation(act),   # 7x7
        nn.Flatten(), nn.Linear(c2 * 49, out_dim),
    )


def _conv_decoder(channels, code_size, act):
    c1, c2 = channels
    return nn.Sequential(
        nn.Linear(code_size, c2 * 49), activation(act),
        nn.Unflatten(1, (c2, 7, 7)),
        nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1,
                           output_padding=1), activation(act),        # 14x14
        nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1,
                           output_padding=1), nn.Tanh(),              # 28x28
    )


class ConvAE(Autoencoder):
    """Strided convolutions down (28 -> 14 -> 7), a linear code, and
    transposed convolutions back up (Masci et al., 2011).

    Question: what does building in locality and weight sharing buy at the
    same code size? Each filter sees a 3x3 neighbourhood and is reused at
    every position, so the model spends its parameters on shapes, not on
    individual pixels.
    """

    def __init__(self, code_size=64, activation_name="gelu",
                 channels=(32, 64)):
        super().__init__()
        self.encoder = _conv_encoder(channels, code_size, activation_name)
        self.decoder = _conv_decoder(channels, code_size, activation_name)


class ConvVAE(Autoencoder):
    """The convolutional autoencoder made variational (Kingma & Welling).

    The encoder outputs a mean and a log-variance per code dimension; a code
    is drawn with the reparameterisation trick during training, the mean is
    used at evaluation. Trained on reconstruction + KL divergence to a
    standard normal prior, so `sample(n)` can decode codes drawn from that
    prior into garments nobody photographed.
    """

    def __init__(self, code_size=16, activation_name="gelu",
                 channels=(32, 64)):
        super().__init__()
        self.code_size = code_size
        self.encoder = _conv_encoder(channels, 2 * code_size, activation_name)
        self.decoder = _conv_decoder(channels, code_size, activation_name)

    def encode_stats(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 12.0)

    def encode(self, x):
        return self.encode_stats(x)[0]

    def forward(self, x):
        mu, logvar = self.encode_stats(x)
        z = mu
        if self.training:
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        self.kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
        return self.decode(z)

    @torch.no_grad()
    def sample(self, n, generator=None):
        device = next(self.parameters()).device
        z = torch.randn(n, self.code_size, generator=generator)
        return self.decode(z.to(device))


class ResBlock(nn.Module):
    """x + conv(act(norm(conv(act(norm(x)))))): a pre-activation residual
    block (He et al., 2016) that keeps the shape."""

    def __init__(self, channels, act):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(channels), activation(act),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels), activation(act),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x):
        return x + self.body(x)


class ResConvAE(Autoencoder):
    """The convolutional model with the capacity in its convolutions:
    a residual block at 7 x 7 on each side of a linear code, batch
    normalisation, and the same strided (transposed) convolutions.
    """

    def __init__(self, code_size=64, activation_name="gelu",
                 channels=(32, 64)):
        super().__init__()
        c1, c2 = channels
        act = activation_name
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1), activation(act),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1),               # 7x7
            ResBlock(c2, act), nn.BatchNorm2d(c2), activation(act),
            nn.Flatten(), nn.Linear(c2 * 49, code_size),
        )
        self.decoder = nn.Sequential(
            nn.Linear(code_size, c2 * 49), nn.Unflatten(1, (c2, 7, 7)),
            ResBlock(c2, act), nn.BatchNorm2d(c2), activation(act),
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1,
                               output_padding=1), activation(act),
            nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1,
                               output_padding=1), nn.Tanh(),
        )


class WideDenoiser(Autoencoder):
    """A denoiser with no narrow code: 32 channels at 28 x 28, then 32 at
    14 x 14 (the code: 6,272 numbers, eight times the pixels), and the
    mirror image back.

    Question: how much better than the best linear filter can a small
    convolutional network denoise? A 64-number code cannot even
    reproduce a clean image as well as a linear filter fitted to
    lightly noisy ones, so this model keeps every position and learns
    only what noise looks like.
    """

    def __init__(self, code_size=6272, activation_name="gelu", channels=32):
        super().__init__()
        c, a = channels, activation_name
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), activation(a),
            nn.Conv2d(c, c, 3, stride=2, padding=1), activation(a),   # 14
            nn.Flatten())
        self.decoder = nn.Sequential(
            nn.Unflatten(1, (c, 14, 14)),
            nn.ConvTranspose2d(c, c, 3, stride=2, padding=1,
                               output_padding=1), activation(a),      # 28
            nn.Conv2d(c, 1, 3, padding=1), nn.Tanh())


class UnitScale(Autoencoder):
    """Base of the tutorial baselines: [-1, 1] in and out, [0, 1] inside,
    Keras' default initialisation."""

    unit_scale = True

    def encode(self, x):
        return self.encoder((x + 1) / 2)

    def decode(self, z):
        return 2 * self.decoder(z) - 1

    def keras_init(self):
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)


class TFDense(UnitScale):
    """The TensorFlow tutorial's first autoencoder: Flatten,
    Dense(code, relu), Dense(784, sigmoid), Reshape."""

    def __init__(self, code_size=64, activation_name="relu"):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(784, code_size),
            activation(activation_name))
        self.decoder = nn.Sequential(
            nn.Linear(code_size, 784), nn.Sigmoid(),
            nn.Unflatten(1, (1, 28, 28)))
        self.keras_init()


_TAPS = [(di, dj) for di in range(3) for dj in range(3)]


def _shifts(d: int, n: int) -> tuple[slice, slice]:
    """Where a 3x3 tap at offset `d` (0..2) writes and reads along an
    axis of length `n`, zero padding 1."""
    s = d - 1
    return slice(max(0, -s), n - max(0, s)), slice(max(0, s), n + min(0, s))


class _ToOneChannel(torch.autograd.Function):
    """3x3 convolution, padding 1, many channels -> one, on the CPU for a
    channels-last input: one matrix product of the pixels' channel
    vectors with the nine taps (9 x C), then the nine tap planes summed
    at their offsets. oneDNN pads the single output channel to a full
    vector and so does 16x the work; this does the same arithmetic once
    (forward and backward 2-3x faster, timed in `OneChannelConv`)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        B, C, H, W = x.shape
        x2 = x.permute(0, 2, 3, 1).reshape(B * H * W, C)   # a view (NHWC)
        taps = weight.reshape(C, 9).t()                   # 9 x C
        planes = torch.mm(taps, x2.t()).view(9, B, H, W)
        out = bias.expand(B, H, W).clone()
        for k, (di, dj) in enumerate(_TAPS):
            (oi, ii), (oj, ij) = _shifts(di, H), _shifts(dj, W)
            out[:, oi, oj] += planes[k, :, ii, ij]
        ctx.save_for_backward(x2, taps)
        ctx.shape = (B, C, H, W)
        return out.unsqueeze(1)

    @staticmethod
    def backward(ctx, grad):
        x2, taps = ctx.saved_tensors
        B, C, H, W = ctx.shape
        g = nn.functional.pad(grad[:, 0], (1, 1, 1, 1))
        g_planes = torch.stack([g[:, 2 - di:2 - di + H, 2 - dj:2 - dj + W]
                                for di, dj in _TAPS]).view(9, -1)
        g_x = torch.mm(g_planes.t(), taps).view(B, H, W, C)
        g_w = torch.mm(g_planes, x2).t().reshape(1, C, 3, 3)
        return g_x.permute(0, 3, 1, 2), g_w, grad.sum().view(1)


class OneChannelConv(nn.Conv2d):
    """`nn.Conv2d(C, 1, 3, padding=1)` (same weights, same initialisation)
    computed by `_ToOneChannel` on the CPU for channels-last inputs;
    elsewhere, plain `nn.Conv2d`. Under bf16 autocast it runs in fp32.

    On the book's CPU, one thread, C = 16 on 28 x 28, forward and
    backward took 1.4 ms instead of 3.1 at batch 32, 3.6 instead of 6.7
    at 64, 10.8 instead of 21.8 at 256; outputs agree with `nn.Conv2d`
    to float rounding (`tests/test_models.py`)."""

    def __init__(self, in_channels: int):
        super().__init__(in_channels, 1, 3, padding=1)

    def forward(self, x):
        if (x.device.type != "cpu" or x.dim() != 4
                or not x.is_contiguous(memory_format=torch.channels_last)):
            return super().forward(x)
        if torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return _ToOneChannel.apply(x.float(), self.weight,
                                           self.bias)
        return _ToOneChannel.apply(x, self.weight, self.bias)


class TFDenoiser(UnitScale):
    """The tutorial's convolutional denoiser: Conv2D(16, 3, stride 2)
    and Conv2D(8, 3, stride 2) with ReLU, their transposed mirror, then
    Conv2D(1, 3, sigmoid); every layer 'same'-padded. Its code is the
    8 x 7 x 7 feature map (392 numbers, fixed)."""

    # Weights and batches in channels-last order: on the book's CPU, one
    # thread, its training steps took 6.5 ms instead of 8.3 at batch 32,
    # 13.0 instead of 16.8 at 64, 45 instead of 63 at 256, while the conv
    # AE, the residual AE and the VAE ran 1.1-1.2x slower so (timed step
    # by step before the book's runs were trained).
    channels_last = True

    def __init__(self, code_size=392, activation_name="relu"):
        super().__init__()
        a = activation_name
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), activation(a),
            nn.Conv2d(16, 8, 3, stride=2, padding=1), activation(a),
            nn.Flatten())

        self.decoder = nn.Sequential(
            nn.Unflatten(1, (8, 7, 7)),
            nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1,
                               output_padding=1), activation(a),
            nn.ConvTranspose2d(8, 16, 3, stride=2, padding=1,
                               output_padding=1), activation(a),
            OneChannelConv(16), nn.Sigmoid())
        self.keras_init()


def build(arch: str, code_size: int | None = None,
          activation_name: str | None = None) -> Autoencoder:
    """Instantiate an architecture of `config.ARCHS` by name."""
    if arch not in config.ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}; choose from "
                          f"{', '.join(config.ARCHS)}")
    if code_size is None:
        code_size = config.DEFAULT_CODE_SIZE[arch]
    if code_size < 1:
        raise ConfigError(f"code size must be positive, got {code_size}")
    act = activation_name or config.DEFAULT_ACTIVATION[arch]
    return globals()[config.ARCHS[arch]](code_size=code_size,
                                         activation_name=act)
