"""SAGAN generator (paper Sec. 2.1-2.3, Fig. 2, Eq. 1-2), wired as the authors' network.

Per patch (ACM), with d = conv_dim:
  stem 7x7 conv (d) -> down 4x4/2 (2d) -> fuse code -> s1 -> down (4d) -> fuse code -> s2
  -> down (8d) -> fuse code -> bottleneck residual blocks -> e.
The fused maps feed the next encoder layer and are the skips (the paper: the code is added to "both
extracted features and skip-connections").
Decoder (ARRM), three levels: o1 = level(e, e) (the deepest gate gates the bottleneck output with
itself), o2 = level(o1, s2), o3 = level(o2, s1); a level is concat(f, gate(f, skip)) -> residual block
-> 4x4 stride-2 transposed conv. Multi-level fusion lifts o1 and o2 to the patch size, concatenates
them with o3 and fuses them to d channels; a 7x7 conv gives the additive map I(x).
Patches are stitched back, then the Bernoulli gate (Eq. 1) and x' = tanh(G(x) + x) (Eq. 2).

network="authors": exactly the authors' network (`tests/test_authors_network.py` reproduces their
output); network="paper": the same, but the position code survives the InstanceNorm that follows
each fusion (see `PositionFusion`), as the paper intends.
use_acm=False: the whole image is one patch and the fusions get no code (they stay 1x1 conv + IN +
ReLU, so only patching and code are removed). use_arrm=False: the three gates pass their skip
unchanged (alpha = 1) and there is no multi-level fusion (I(x) from o3).
"""

from __future__ import annotations

import torch
from torch import nn

from sagan.models.attention_gate import AttentionGate
from sagan.models.blocks import ProjectResidualBlock, ResidualBlock, conv_in_relu, stargan_trunk, up_in_relu
from sagan.models.position_code import PositionFusion, from_patches, position_codes, to_patches

NETWORKS = ("paper", "authors")


class DecoderLevel(nn.Module):
    """concat(f, gated skip) -> residual block -> 4x4 stride-2 transposed conv (halves the channels)."""

    def __init__(self, c: int, gated: bool):
        super().__init__()
        self.gate = AttentionGate(c, c) if gated else None
        self.block = ProjectResidualBlock(2 * c, c)
        self.up = up_in_relu(c, c // 2)

    def forward(self, f: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        g = self.gate(f, skip) if self.gate is not None else skip  # Eq. 8-9
        return self.up(self.block(torch.cat([f, g], dim=1)))  # (B', C/2, 2h, 2w)


class SAGANGenerator(nn.Module):
    def __init__(
        self,
        conv_dim: int = 64,
        n_res: int = 6,
        n_patches: int = 2,
        use_acm: bool = True,
        use_arrm: bool = True,
        network: str = "paper",
    ):
        super().__init__()
        if network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
        d = conv_dim
        self.n = n_patches if use_acm else 1
        self.use_arrm = use_arrm
        codes = position_codes(self.n) if use_acm else torch.zeros(1, 0)  # (N*N, bits); no ACM: no code
        self.stem = conv_in_relu(1, d, 7)
        self.down = nn.ModuleList([conv_in_relu(d * 2**i, d * 2 ** (i + 1), 4, 2) for i in range(3)])
        self.fuse = nn.ModuleList(
            [PositionFusion(c, codes, network == "paper") for c in (2 * d, 4 * d, 8 * d)]
        )
        self.bottleneck = nn.Sequential(*[ResidualBlock(8 * d) for _ in range(n_res)])
        self.levels = nn.ModuleList([DecoderLevel(c, gated=use_arrm) for c in (8 * d, 4 * d, 2 * d)])
        if use_arrm:
            # multi-level fusion: o1 (4d @ h/4) and o2 (2d @ h/2) lifted to d channels at the patch size
            self.lift = nn.ModuleList(
                [nn.Sequential(*up_in_relu(4 * d, 2 * d), *up_in_relu(2 * d, d)), up_in_relu(2 * d, d)]
            )
            self.merge = ProjectResidualBlock(3 * d, d)
        self.to_map = nn.Conv2d(d, 1, 7, 1, 3, bias=False)

    def additive_map(self, x: torch.Tensor) -> torch.Tensor:
        """I(x): (B, 1, H, W) -> (B, 1, H, W), computed per patch with shared weights."""
        p = to_patches(x, self.n)  # (B', 1, h, w), B' = B*N*N
        s1 = self.fuse[0](self.down[0](self.stem(p)))  # (B', 2d, h/2, w/2)
        s2 = self.fuse[1](self.down[1](s1))  # (B', 4d, h/4, w/4)
        e = self.bottleneck(self.fuse[2](self.down[2](s2)))  # (B', 8d, h/8, w/8)
        o1 = self.levels[0](e, e)  # (B', 4d, h/4, w/4): the bottleneck output gates itself
        o2 = self.levels[1](o1, s2)  # (B', 2d, h/2, w/2)
        o3 = self.levels[2](o2, s1)  # (B', d, h, w)
        if self.use_arrm:
            o3 = self.merge(torch.cat([self.lift[0](o1), self.lift[1](o2), o3], dim=1))  # (B', d, h, w)
        return from_patches(self.to_map(o3), self.n)

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
        self.main = stargan_trunk(conv_dim, n_res, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x + self.main(x))
