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
    """StarGAN's residual block: out = x + IN(conv3x3(ReLU(IN(conv3x3(x)))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ProjectResidualBlock(nn.Module):
    """The authors' decoder and fusion block, which changes the channel count:
    a = ReLU(IN(conv3x3(x))) projects x to c_out channels, out = a + IN(conv3x3(a)).

    The shortcut is the first conv's output, not the block input (whose width differs).
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.project = conv_in_relu(c_in, c_out, 3)
        self.refine = nn.Sequential(
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.InstanceNorm2d(c_out, affine=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.project(x)  # (B, c_out, H, W)
        return a + self.refine(a)


def stargan_trunk(conv_dim: int, n_res: int, c_out: int) -> nn.Sequential:
    """StarGAN generator body: 7x7 conv, two stride-2 downs, n_res residual blocks at 4*conv_dim, two
    ups, 7x7 conv to c_out channels (Brainomaly: 1, the additive map; HealthyGAN: 2, image and mask)."""
    d = conv_dim
    return nn.Sequential(
        conv_in_relu(1, d, 7),
        conv_in_relu(d, 2 * d, 4, 2),
        conv_in_relu(2 * d, 4 * d, 4, 2),
        *[ResidualBlock(4 * d) for _ in range(n_res)],
        up_in_relu(4 * d, 2 * d),
        up_in_relu(2 * d, d),
        nn.Conv2d(d, c_out, 7, 1, 3, bias=False),
    )
