"""NSA's segmentation network: a ResNet encoder, a 1x1 bottleneck and a transposed-ResNet decoder that
predicts a per-pixel anomaly map (hmsch/natural-synthetic-anomalies and MedIAnomaly
`ssl/one_stage/model/resnet.py`, `resnet18_enc_dec`: blocks (2, 2, 2, 2), up-blocks (1, 1, 1)).

Widths scale with `width` (64 = ResNet-18). `pool` is the stem's 3x3 max-pool (with its matching
bilinear upsampling before the output layer); without it a 64 px input keeps a 4x4 bottleneck.
The network returns logits; NSA's final sigmoid is applied by the method (so that the loss can be the
autocast-safe binary_cross_entropy_with_logits, the same function as NSA's BCELoss on the sigmoid).
"""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with BN, identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(c_in, c_out, stride),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            conv3x3(c_out, c_out),
            nn.BatchNorm2d(c_out),
        )
        needs_projection = stride != 1 or c_in != c_out
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if needs_projection
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class UpBlock(nn.Module):
    """Transposed basic block: a stride-2 3x3 transposed conv doubles the side, 1x1 transposed shortcut."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, output_padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            conv3x3(c_out, c_out),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = nn.Sequential(
            nn.ConvTranspose2d(c_in, c_out, 1, 2, output_padding=1, bias=False), nn.BatchNorm2d(c_out)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def stage(block: type[nn.Module], c_in: int, c_out: int, n: int, **first) -> nn.Sequential:
    return nn.Sequential(block(c_in, c_out, **first), *(block(c_out, c_out) for _ in range(n - 1)))


class ResNetEncoderDecoder(nn.Module):
    """x (B, 1, S, S) -> anomaly-map logits (B, 1, S, S); S divisible by 32 (16 without the pool)."""

    def __init__(self, width: int = 64, blocks: int = 2, up_blocks: int = 1, pool: bool = True):
        super().__init__()
        w = width
        self.stem = nn.Sequential(
            nn.Conv2d(1, w, 7, 2, 3, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1) if pool else nn.Identity(),
        )
        self.encoder = nn.Sequential(
            stage(BasicBlock, w, w, blocks),
            stage(BasicBlock, w, 2 * w, blocks, stride=2),
            stage(BasicBlock, 2 * w, 4 * w, blocks, stride=2),
            stage(BasicBlock, 4 * w, 8 * w, blocks, stride=2),
        )
        self.bottleneck = nn.Sequential(  # "nin": 1x1 convs 8w -> 4w -> 2w
            nn.Conv2d(8 * w, 4 * w, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(4 * w, 2 * w, 1, bias=False),
            nn.ReLU(inplace=True),
        )
        self.decoder = nn.Sequential(
            stage(UpBlock, 2 * w, w, up_blocks),
            stage(UpBlock, w, w // 2, up_blocks),
            stage(UpBlock, w // 2, w // 4, up_blocks),
        )
        self.head = nn.Sequential(
            nn.UpsamplingBilinear2d(scale_factor=2) if pool else nn.Identity(),
            nn.ConvTranspose2d(w // 4, 1, 7, 2, 3, output_padding=1, bias=False),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.stem(x))  # (B, 8w, S/32, S/32) with the pool, S/16 without
        h = self.decoder(self.bottleneck(h))  # (B, w/4, S/4, S/4) or (B, w/4, S/2, S/2)
        return self.head(h)  # (B, 1, S, S) logits
