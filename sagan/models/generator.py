"""SAGAN generator (paper Sec. 2.1-2.3, Fig. 2, Eq. 1-2).

Per patch (ACM): encoder 7x7 conv -> three 4x4 stride-2 convs; the position code is fused after the
first two downsamplings and at the bottleneck (these fused maps are the skips); 6 residual blocks.
Decoder (ARRM): three levels (bottleneck size, x2, x4), each concat(decoder feature, gated skip) ->
residual block -> 4x4 stride-2 transposed conv; multi-level fusion upsamples the three level outputs
to the patch size, concatenates and fuses them, and a 7x7 conv gives the additive map I(x).
Patches are stitched back, then the Bernoulli gate (Eq. 1) and x' = tanh(G(x) + x) (Eq. 2).

use_acm=False: the whole image is one patch and no code is fused (the baseline structure).
use_arrm=False: ungated skips and no multi-level fusion (I(x) from the last decoder level).
"""

from __future__ import annotations

import torch
from torch import nn

from sagan.models.attention_gate import AttentionGate
from sagan.models.blocks import ResidualBlock, conv_in_relu, up_in_relu
from sagan.models.position_code import PositionFusion, from_patches, to_patches


class DecoderLevel(nn.Module):
    """concat(f, gated skip) -> residual block (shortcut f) -> 4x4 stride-2 transposed conv."""

    def __init__(self, c: int, gated: bool):
        super().__init__()
        self.gate = AttentionGate(c, c) if gated else None
        self.res = ResidualBlock(2 * c, c)
        self.up = up_in_relu(c, c // 2)

    def forward(self, f: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        g = self.gate(f, skip) if self.gate is not None else skip  # Eq. 8-9
        return self.up(self.res(torch.cat([f, g], dim=1), residual=f))  # (B', C/2, 2h, 2w)


class SAGANGenerator(nn.Module):
    def __init__(
        self,
        conv_dim: int = 64,
        n_res: int = 6,
        n_patches: int = 2,
        use_acm: bool = True,
        use_arrm: bool = True,
        position_code: str = "effective",
    ):
        super().__init__()
        d = conv_dim
        self.n = n_patches if use_acm else 1
        self.use_arrm = use_arrm
        self.stem = conv_in_relu(1, d, 7)
        self.down = nn.ModuleList([conv_in_relu(d * 2**i, d * 2 ** (i + 1), 4, 2) for i in range(3)])
        # ACM: fuse the position code into the three skip maps (2d, 4d, 8d channels)
        self.fuse = (
            nn.ModuleList([PositionFusion(d * 2 ** (i + 1), self.n, position_code) for i in range(3)])
            if use_acm
            else None
        )
        self.bottleneck = nn.Sequential(*[ResidualBlock(8 * d) for _ in range(n_res)])
        self.levels = nn.ModuleList([DecoderLevel(c, gated=use_arrm) for c in (8 * d, 4 * d, 2 * d)])
        if use_arrm:
            # multi-level fusion: level outputs (4d @ x2, 2d @ x4, d @ x8) -> d channels at patch size
            self.lift = nn.ModuleList(
                [
                    nn.Sequential(up_in_relu(4 * d, 2 * d), up_in_relu(2 * d, d)),
                    up_in_relu(2 * d, d),
                    nn.Identity(),
                ]
            )
            self.merge = ResidualBlock(3 * d, d, project=True)
        self.to_map = nn.Conv2d(d, 1, 7, 1, 3, bias=False)

    def additive_map(self, x: torch.Tensor) -> torch.Tensor:
        """I(x): (B, 1, H, W) -> (B, 1, H, W), computed per patch with shared weights."""
        p = to_patches(x, self.n)  # (B*N*N, 1, h, w)
        h = self.stem(p)  # (B*N*N, d, h, w)
        skips = []
        for i, down in enumerate(self.down):
            h = down(h)  # (B*N*N, 2^(i+1) d, h/2^(i+1), w/2^(i+1))
            skips.append(self.fuse[i](h) if self.fuse is not None else h)
        f = self.bottleneck(skips[-1])  # (B*N*N, 8d, h/8, w/8)
        outs = []
        for level, skip in zip(self.levels, reversed(skips)):
            f = level(f, skip)  # the deepest gate gates the bottleneck with its own skip
            outs.append(f)
        if self.use_arrm:
            f = self.merge(
                torch.cat([lift(o) for lift, o in zip(self.lift, outs)], dim=1)
            )  # (B*N*N, d, h, w)
        return from_patches(self.to_map(f), self.n)

    def forward(
        self, x: torch.Tensor, gate_p: float | None = None, rng: torch.Generator | None = None
    ) -> torch.Tensor:
        """x' = tanh(G(x) + x) with G(x) = I(x)*delta + (1-delta)*x, delta ~ Bernoulli(gate_p) per pixel.

        gate_p=None means delta = 1 everywhere (test time).
        """
        i_x = self.additive_map(x)
        if gate_p is None:
            g_x = i_x
        else:
            delta = torch.bernoulli(torch.full_like(x, gate_p), generator=rng)
            g_x = i_x * delta + (1 - delta) * x  # Eq. 1
        return torch.tanh(g_x + x)  # Eq. 2


class StarGANGenerator(nn.Module):
    """Brainomaly's generator (StarGAN style): 7x7 conv, two stride-2 downs, residual blocks, two ups,
    7x7 conv to one channel; x' = tanh(x + G(x))."""

    def __init__(self, conv_dim: int = 64, n_res: int = 6):
        super().__init__()
        d = conv_dim
        self.main = nn.Sequential(
            conv_in_relu(1, d, 7),
            conv_in_relu(d, 2 * d, 4, 2),
            conv_in_relu(2 * d, 4 * d, 4, 2),
            *[ResidualBlock(4 * d) for _ in range(n_res)],
            up_in_relu(4 * d, 2 * d),
            up_in_relu(2 * d, d),
            nn.Conv2d(d, 1, 7, 1, 3, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x + self.main(x))
