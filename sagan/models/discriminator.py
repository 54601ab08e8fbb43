"""WGAN critic (paper Sec. 3.1 "PatchGAN"; StarGAN-style, as in the authors' code).

Six 4x4 stride-2 convs 1->64->...->2048 with LeakyReLU(0.01) and no normalisation, then a 3x3 conv to
one channel. At 64 px the output is 1x1: a global critic.
"""

from __future__ import annotations

import torch
from torch import nn


class Discriminator(nn.Module):
    def __init__(self, conv_dim: int = 64, repeat_num: int = 6):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c_out = 1, conv_dim
        for _ in range(repeat_num):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.01)]
            c_in, c_out = c_out, c_out * 2
        self.main = nn.Sequential(*layers)
        self.head = nn.Conv2d(c_in, 1, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.main(x)).flatten(1).mean(1)  # (B,) critic value
