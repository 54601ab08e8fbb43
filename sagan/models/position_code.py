"""Anatomical consistency module (ACM), paper Sec. 2.2: patching and positional condition codes.

The image is cut into N x N non-overlapping patches (order TL, TR, BL, BR at N = 2) that share the
encoder weights; patch k carries the binary digits of k in ceil(log2(N*N) + 1) bits as constant
feature channels, concatenated to the features and fused by a 1x1 conv.

`official` reproduces the authors' code: the InstanceNorm right after the 1x1 fusion subtracts the
per-channel spatial mean, which removes a spatially constant code exactly, so the code has no effect.
`effective` (default) adds a learned per-channel embedding of the code after that norm, so it survives.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def code_bits(n: int) -> int:
    """Number of code bits for N x N patches: ceil(log2(N*N) + 1) (3 at N = 2)."""
    return math.ceil(math.log2(n * n) + 1)


def position_codes(n: int) -> torch.Tensor:
    """(N*N, bits) binary codes, most significant bit first: TL 000, TR 001, BL 010, BR 011 at N = 2."""
    bits = code_bits(n)
    k = torch.arange(n * n)
    return torch.stack([(k >> (bits - 1 - b)) & 1 for b in range(bits)], dim=1).float()


def to_patches(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, C, H, W) -> (B*N*N, C, H/N, W/N), patch order row-major (TL, TR, BL, BR)."""
    b, c, h, w = x.shape
    x = x.view(b, c, n, h // n, n, w // n)  # (B, C, N, h, N, w)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, N, N, C, h, w)
    return x.reshape(b * n * n, c, h // n, w // n)


def from_patches(x: torch.Tensor, n: int) -> torch.Tensor:
    """Exact inverse of to_patches: (B*N*N, C, h, w) -> (B, C, h*N, w*N)."""
    bnn, c, h, w = x.shape
    b = bnn // (n * n)
    x = x.view(b, n, n, c, h, w).permute(0, 3, 1, 4, 2, 5)  # (B, C, N, h, N, w)
    return x.reshape(b, c, n * h, n * w)


class PositionFusion(nn.Module):
    """Concatenate the patch code to a feature map and fuse: 1x1 conv (C+bits -> C) + IN (+ code) + ReLU."""

    def __init__(self, channels: int, n: int, mode: str = "effective"):
        super().__init__()
        self.n, self.mode = n, mode
        self.register_buffer("codes", position_codes(n), persistent=False)  # (N*N, bits)
        bits = self.codes.shape[1]
        self.fuse = nn.Conv2d(channels + bits, channels, 1, bias=False)
        self.norm = nn.InstanceNorm2d(channels, affine=True)
        # effective mode: a learned per-channel shift per code, added after the norm so it is not removed
        self.embed = nn.Linear(bits, channels, bias=False) if mode == "effective" else None

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        bnn, _, h, w = f.shape
        code = self.codes.repeat(bnn // self.codes.shape[0], 1).to(f.dtype)  # (B*N*N, bits)
        code_map = code[:, :, None, None].expand(-1, -1, h, w)  # (B*N*N, bits, h, w)
        out = self.norm(self.fuse(torch.cat([f, code_map], dim=1)))
        if self.embed is not None:
            out = out + self.embed(code)[:, :, None, None]
        return torch.relu(out)
