"""Abnormal region restoration module (ARRM), paper Sec. 2.3, Eq. 8-9 (attention gate, Oktay et al.).

alpha = sigmoid(C3(ReLU(C1(f) + C2(g)))), g_out = alpha * g, where f is the decoder feature (the
gating signal) and g the skip feature at the same level. As in the authors' network, C1 and C2 are
1x1 convs to C/2 and C3 a 1x1 conv to one channel, each followed by an InstanceNorm without affine
parameters: the norm after C3 standardises the attention logits of each patch, so the gate ranks the
positions of a patch against each other (or, with a constant logit map, passes all at 0.5).
"""

from __future__ import annotations

import torch
from torch import nn


def _conv1x1_in(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.InstanceNorm2d(c_out))  # IN: no affine parameters


class AttentionGate(nn.Module):
    def __init__(self, f_channels: int, g_channels: int):
        super().__init__()
        inter = max(g_channels // 2, 1)
        self.c1 = _conv1x1_in(f_channels, inter)
        self.c2 = _conv1x1_in(g_channels, inter)
        self.c3 = _conv1x1_in(inter, 1)

    def coefficients(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Attention map alpha in [0, 1], shape (B, 1, H, W)."""
        return torch.sigmoid(self.c3(torch.relu(self.c1(f) + self.c2(g))))  # Eq. 8

    def forward(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.coefficients(f, g) * g  # Eq. 9
