"""f-AnoGAN networks (Schlegl et al., MedIA 2019; layout of the official tSchlegl/f-AnoGAN code,
`wgangp_64x64.py` and `z_encoding_izif.py`, which run natively at 64x64x1).

- Generator: z (128) -> linear to an (S/16)^2 grid of 8*dim channels -> four residual up-blocks
  (8d, 8d, 4d, 2d, d) -> BN, ReLU, 3x3 conv to one channel -> tanh.
- Critic: 3x3 conv to dim -> four residual down-blocks (d, 2d, 4d, 8d, 8d) with layer norm ->
  flattened features f(x) -> linear to the critic value. f(x) is also the feature space of the
  izi_f loss and of the anomaly score.
- Encoder: the critic's layout with batch norm, linear to z (no squashing: the official default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def batch_norm(c: int) -> nn.BatchNorm2d:
    """tf.layers.batch_normalization defaults: eps 1e-3, moving-average decay 0.99."""
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


def layer_norm(c: int) -> nn.GroupNorm:
    """tflib Layernorm over (C, H, W) per sample with a per-channel scale and offset (the critic's norm)."""
    return nn.GroupNorm(1, c, eps=1e-5)


class ResBlockUp(nn.Module):
    """up(conv1x1(x)) + conv3x3(ReLU(BN(conv3x3(up(ReLU(BN(x))))))): doubles H, W (nearest neighbour)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.shortcut = nn.Conv2d(c_in, c_out, 1)
        self.body = nn.Sequential(
            batch_norm(c_in),
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False),
            batch_norm(c_out),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # a 1x1 conv commutes with nearest upsampling, so the shortcut convolves first (cheaper)
        return F.interpolate(self.shortcut(x), scale_factor=2, mode="nearest") + self.body(x)


class ResBlockDown(nn.Module):
    """conv1x1(pool(x)) + pool(conv3x3(ReLU(N(conv3x3(ReLU(N(x))))))): halves H, W (2x2 mean pool)."""

    def __init__(self, c_in: int, c_out: int, norm, bias: bool = True):
        super().__init__()
        self.shortcut = nn.Conv2d(c_in, c_out, 1, bias=bias)
        self.body = nn.Sequential(
            norm(c_in),
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, 3, 1, 1, bias=False),
            norm(c_in),
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias),
            nn.AvgPool2d(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(F.avg_pool2d(x, 2)) + self.body(x)


class Generator(nn.Module):
    def __init__(self, latent_dim: int = 128, dim: int = 64, image_size: int = 64):
        super().__init__()
        self.side, self.c = image_size // 16, 8 * dim
        self.fc = nn.Linear(latent_dim, self.side**2 * self.c)
        widths = [8 * dim, 8 * dim, 4 * dim, 2 * dim, dim]
        self.blocks = nn.Sequential(*[ResBlockUp(a, b) for a, b in zip(widths[:-1], widths[1:])])
        self.out = nn.Sequential(batch_norm(dim), nn.ReLU(), nn.Conv2d(dim, 1, 3, 1, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, self.c, self.side, self.side)  # (B, 8d, S/16, S/16)
        return torch.tanh(self.out(self.blocks(h)))  # (B, 1, S, S)


class ResNetTrunk(nn.Module):
    """Image -> flattened features (B, (S/16)^2 * 8d): the shared layout of the critic and the encoder.

    `last_bias=False` drops the biases of the last block's two output convs (see `Critic`).
    """

    def __init__(self, dim: int, norm, last_bias: bool = True):
        super().__init__()
        widths = [dim, 2 * dim, 4 * dim, 8 * dim, 8 * dim]
        self.stem = nn.Conv2d(1, dim, 3, 1, 1)
        biases = [True, True, True, last_bias]
        self.blocks = nn.Sequential(
            *[ResBlockDown(a, b, norm, bias) for a, b, bias in zip(widths[:-1], widths[1:], biases)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).flatten(1)  # (B, F)


class Critic(nn.Module):
    """No biases after the last norm: they would shift every critic value by one constant, which the
    WGAN loss and the gradient penalty ignore, and f(x) and f(G(E(x))) alike, which the feature residual
    ignores; they would never receive a gradient (the official code has them, untrained)."""

    def __init__(self, dim: int = 64, image_size: int = 64):
        super().__init__()
        self.trunk = ResNetTrunk(dim, layer_norm, last_bias=False)
        self.head = nn.Linear((image_size // 16) ** 2 * 8 * dim, 1, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """f(x), the features of the izi_f loss and the anomaly score, (B, F)."""
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x)).squeeze(1)  # (B,) critic value


class Encoder(nn.Module):
    def __init__(self, latent_dim: int = 128, dim: int = 64, image_size: int = 64):
        super().__init__()
        self.trunk = ResNetTrunk(dim, batch_norm)
        self.head = nn.Linear((image_size // 16) ** 2 * 8 * dim, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))  # (B, latent)
