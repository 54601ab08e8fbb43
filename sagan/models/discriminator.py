"""WGAN critic (paper Sec. 3.1 "PatchGAN"; StarGAN-style, as in the authors' code).

Six 4x4 stride-2 convs 1->64->...->2048 with LeakyReLU(0.01) and no normalisation, then a 3x3 conv to
one channel. At 64 px the output is 1x1: a global critic. When the image is 2**repeat_num px (64 px
with 6 layers), the last conv keeps only the kernel taps that meet its 2x2 input (`CentralTaps`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CentralTaps(nn.Module):
    """The critic's last 4x4 stride-2 conv (padding 1) on the 2x2 map it sees when the image is
    2**repeat_num px (64 px with 6 layers, the demo's 32 px with 5): its output is 1x1, and only the
    kernel's central 2x2 taps meet the input, the other 12 meet the padding. Those 12 never change the
    output, get a zero gradient, and Adam never moves them, so this layer keeps only the 4 taps that
    act, weight (C_out, C_in, 2, 2), and computes the conv as one matrix product of the flattened input.
    That is the conv exactly in real arithmetic (in float32 the sums run in another order). It saves,
    per step, the weight-sized gradient that slicing a full kernel creates (zeroed, then filled) and
    three quarters of the layer's Adam state; on CPU oneDNN's backward of this shape is also several
    times slower than the product (benchmarks/RESULTS.md, "The critic's last conv")."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.kernel_size != (4, 4) or conv.stride != (2, 2) or conv.padding != (1, 1):
            raise ValueError("CentralTaps replaces a 4x4 stride-2 conv with padding 1")
        self.weight = nn.Parameter(conv.weight.detach()[:, :, 1:3, 1:3].clone())  # (C_out, C_in, 2, 2)
        self.bias = nn.Parameter(conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (2, 2):
            raise ValueError(f"the critic's last conv sees a 2x2 map, got {tuple(x.shape[-2:])}")
        return F.linear(x.flatten(1), self.weight.flatten(1), self.bias)[:, :, None, None]  # (B, C_out, 1, 1)

    def as_conv(self) -> nn.Conv2d:
        """The 4x4 conv this layer computes (outer taps zero; on a 2x2 input any outer taps do)."""
        c_out, c_in = self.weight.shape[:2]
        conv = nn.Conv2d(c_in, c_out, 4, 2, 1).to(self.weight)
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[:, :, 1:3, 1:3] = self.weight
            conv.bias.copy_(self.bias)
        return conv


INITS = ("default", "kaiming")  # PyTorch's default (the authors'), He init for LeakyReLU(0.01)


class Discriminator(nn.Module):
    def __init__(self, conv_dim: int = 64, repeat_num: int = 6, init: str = "default", image_size: int = 64):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"critic init {init!r}: choose one of {', '.join(INITS)}")
        layers: list[nn.Module] = []
        c_in, c_out = 1, conv_dim
        for _ in range(repeat_num):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.01)]
            c_in, c_out = c_out, c_out * 2
        self.main = nn.Sequential(*layers)
        self.head = nn.Conv2d(c_in, 1, 3, 1, 1, bias=False)
        if init == "kaiming":
            self.kaiming_init()
        if image_size == 2**repeat_num:  # the last conv sees 2x2 (initialised as the full conv first)
            self.main[-2] = CentralTaps(self.main[-2])

    def kaiming_init(self) -> None:
        """He initialisation for LeakyReLU(0.01), zero biases. The authors keep PyTorch's default
        (kaiming-uniform with a = sqrt(5)), which shrinks the signal about 6x in variance per layer:
        the critic then starts nearly constant (input-gradient norm ~1e-3, gradient penalty ~1) and
        spends its first hundreds of steps growing its weights before it gives G any signal. He
        initialisation starts it at an input-gradient norm of ~0.15 (tests/test_models.py)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.01, nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.main(x)).flatten(1).mean(1)  # (B,) critic value
