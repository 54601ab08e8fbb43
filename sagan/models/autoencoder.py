"""The Med-AD benchmark's autoencoder (AE), the backbone of the AE, MemAE and DDAD rows of Table 2.

As MedIAnomaly `networks/ae.py` and DDAD-ASR `models/autoencoder.py` build it: four 4x4 stride-2
convs (16-32-64-64 channels, BN + ReLU, no bias), a dense bottleneck Linear -> BN1d -> ReLU -> Linear
to a 16-d latent and back, a mirrored decoder of transposed convs and a linear 1-channel output.
"""

from __future__ import annotations

import torch
from torch import nn

DOWNSAMPLINGS = 4  # stride-2 convs: 64 px -> 4 x 4 feature maps


def conv_stage(c_in: int, c_out: int, transpose: bool = False) -> nn.Sequential:
    conv = nn.ConvTranspose2d if transpose else nn.Conv2d
    return nn.Sequential(conv(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def dense_stage(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, d_out)
    )


class AutoEncoder(nn.Module):
    """x (B, 1, S, S) -> latent z (B, latent_dim) -> reconstruction (B, 1, S, S), S divisible by 16."""

    def __init__(
        self, image_size: int = 64, base_width: int = 16, hidden_dim: int = 1024, latent_dim: int = 16
    ):
        super().__init__()
        w = [base_width, 2 * base_width, 4 * base_width, 4 * base_width]  # 16, 32, 64, 64
        self.side = image_size // 2**DOWNSAMPLINGS
        self.channels = w[-1]
        flat = w[-1] * self.side**2
        self.encoder = nn.Sequential(*(conv_stage(a, b) for a, b in zip([1] + w[:-1], w)))
        self.to_latent = dense_stage(flat, hidden_dim, latent_dim)
        self.from_latent = dense_stage(latent_dim, hidden_dim, flat)
        self.decoder = nn.Sequential(
            *(conv_stage(a, b, transpose=True) for a, b in zip(w[::-1][:-1], w[::-1][1:])),
            nn.ConvTranspose2d(w[0], 1, 4, 2, 1, bias=False),  # linear output, as both codes
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.encoder(x).flatten(1))  # (B, latent)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_latent(z).view(-1, self.channels, self.side, self.side)  # (B, 64, S/16, S/16)
        return self.decoder(h)  # (B, 1, S, S)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
