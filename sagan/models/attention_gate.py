"""Abnormal region restoration module (ARRM), paper Sec. 2.3, Eq. 8-9 (attention gate, Oktay et al.).

alpha = sigmoid(C3(ReLU(C1(f) + C2(g)))), g_out = alpha * g, where f is the decoder feature and g the
skip feature at the same level; C1, C2 are 1x1 convs to C/2 followed by IN, C3 a 1x1 conv to one
channel followed by IN (as in the authors' code).
"""

from __future__ import annotations

import torch
from torch import nn


class AttentionGate(nn.Module):
    def __init__(self, f_channels: int, g_channels: int):
        super().__init__()
        inter = max(g_channels // 2, 1)
        self.c1 = nn.Sequential(nn.Conv2d(f_channels, inter, 1), nn.InstanceNorm2d(inter, affine=True))
        self.c2 = nn.Sequential(nn.Conv2d(g_channels, inter, 1), nn.InstanceNorm2d(inter, affine=True))
        self.c3 = nn.Sequential(nn.Conv2d(inter, 1, 1), nn.InstanceNorm2d(1, affine=True))

    def coefficients(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Attention map alpha in [0, 1], shape (B, 1, H, W)."""
        return torch.sigmoid(self.c3(torch.relu(self.c1(f) + self.c2(g))))

    def forward(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.coefficients(f, g) * g  # Eq. 9
