"""Convolutional autoencoder with a dense bottleneck: the reconstruction baseline (AE) of Table 2."""

from __future__ import annotations

import torch
from torch import nn


class AutoEncoder(nn.Module):
    """Four stride-2 conv downs (BN, LeakyReLU) -> dense latent -> mirror-image decoder -> tanh."""

    def __init__(self, image_size: int = 64, conv_dim: int = 32, latent_dim: int = 16, depth: int = 4):
        super().__init__()
        chans = [1] + [conv_dim * 2**i for i in range(depth)]
        enc: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            enc += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
        self.encoder = nn.Sequential(*enc)
        self.side = image_size // 2**depth
        flat = chans[-1] * self.side**2
        self.to_latent = nn.Linear(flat, latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(latent_dim, flat), nn.ReLU())
        dec: list[nn.Module] = []
        rev = chans[::-1]
        for c_in, c_out in zip(rev[:-2], rev[1:-1]):
            dec += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        dec += [nn.ConvTranspose2d(rev[-2], 1, 4, 2, 1)]
        self.decoder = nn.Sequential(*dec)
        self.channels = chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.to_latent(self.encoder(x).flatten(1))  # (B, latent)
        h = self.from_latent(z).view(-1, self.channels, self.side, self.side)
        return torch.tanh(self.decoder(h))  # (B, 1, H, W)
