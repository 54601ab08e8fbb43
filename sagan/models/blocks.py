"""Building blocks shared by the generators (StarGAN-style conventions: bias-free convs + affine IN)."""

from __future__ import annotations

import torch
from torch import nn


def conv_in_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Conv -> InstanceNorm -> ReLU, 'same' padding for odd kernels, halving for 4x4 stride 2."""
    padding = (kernel - stride + 1) // 2 if stride > 1 else kernel // 2
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
        nn.InstanceNorm2d(c_out, affine=True),
        nn.ReLU(inplace=True),
    )


def up_in_relu(c_in: int, c_out: int) -> nn.Sequential:
    """4x4 stride-2 transposed conv (doubles H, W) -> InstanceNorm -> ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
        nn.InstanceNorm2d(c_out, affine=True),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """out = shortcut(x) + IN(conv3x3(ReLU(IN(conv3x3(x))))).

    With c_in == c_out the shortcut is the identity; otherwise the caller passes the tensor to add
    (`residual=`), e.g. the decoder feature whose concatenation with a skip feeds the block, or a
    1x1 projection is used.
    """

    def __init__(self, c_in: int, c_out: int | None = None, project: bool = False):
        super().__init__()
        c_out = c_out or c_in
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(c_out, affine=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(c_out, affine=True),
        )
        self.project = nn.Conv2d(c_in, c_out, 1, bias=False) if project else None

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if residual is None:
            residual = self.project(x) if self.project is not None else x
        return residual + self.body(x)
