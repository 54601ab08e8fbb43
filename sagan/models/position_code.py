"""Anatomical consistency module (ACM), paper Sec. 2.2: patching and positional condition codes.

The image is cut into N x N non-overlapping patches (order TL, TR, BL, BR at N = 2) that share the
encoder weights; patch k carries the binary digits of k in ceil(log2(N*N) + 1) bits as constant
feature channels, concatenated to the features and fused by a 1x1 conv.

In the authors' network an InstanceNorm right after that 1x1 fusion subtracts the per-channel
spatial mean, which removes the spatially constant code exactly, so the code has no effect.
This project's default network (`model.network: paper`) adds the code's term after the norm, so it
survives (`PositionFusion`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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
    """Concatenate the patch code to a feature map and fuse it: ReLU(IN(1x1 conv(concat(f, code)))).

    The 1x1 conv (with bias) splits into a feature term and a code term: conv(concat(f, c)) =
    W_f f + (W_c c + b). The code term is constant over the patch, so an InstanceNorm after the conv
    removes it exactly. `code_after_norm=False` is the authors' network (the code has no effect);
    `code_after_norm=True` adds the code term after the norm, where it survives as a learned shift
    per patch position: ReLU(IN(W_f f) + W_c c + b). Same parameters, same shapes in both.
    An empty code (0 bits: no ACM) leaves a 1x1 conv + IN + ReLU.
    """

    def __init__(self, channels: int, codes: torch.Tensor, code_after_norm: bool):
        super().__init__()
        self.code_after_norm = code_after_norm
        self.register_buffer("codes", codes.float(), persistent=False)  # (N*N, bits)
        self.conv = nn.Conv2d(channels + codes.shape[1], channels, 1)
        self.norm = nn.InstanceNorm2d(channels)  # no affine parameters (authors' network)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        bnn, c, h, w = f.shape
        code = self.codes.repeat(bnn // self.codes.shape[0], 1).to(f.dtype)  # (B*N*N, bits)
        if self.code_after_norm:
            w_f, w_c = self.conv.weight.flatten(1).split([c, code.shape[1]], dim=1)
            shift = code @ w_c.T + self.conv.bias  # (B*N*N, C): the code term
            out = self.norm(F.conv2d(f, w_f[:, :, None, None])) + shift[:, :, None, None]
        else:
            code_map = code[:, :, None, None].expand(-1, -1, h, w)  # (B*N*N, bits, h, w)
            out = self.norm(self.conv(torch.cat([f, code_map], dim=1)))  # the norm removes the code
        return torch.relu(out)  # (B*N*N, C, h, w)
