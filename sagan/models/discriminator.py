"""WGAN critic (paper Sec. 3.1 "PatchGAN"; StarGAN-style, as in the authors' code).

Six 4x4 stride-2 convs 1->64->...->2048 with LeakyReLU(0.01) and no normalisation, then a 3x3 conv to
one channel. At 64 px the output is 1x1: a global critic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DownConv(nn.Conv2d):
    """The critic's 4x4 stride-2 conv (padding 1). On a 2x2 map, which the last one always sees (its
    output is 1x1), only the kernel's central 2x2 taps meet the input and the other 12 meet padding:
    the conv is then a linear map of the flattened input by those taps' weights, computed here as one
    matrix product. That is the conv exactly in real arithmetic (in float32 the sums run in another
    order, so the last bits differ), and on CPU oneDNN's backward of this shape is several times
    slower than the product (benchmarks/RESULTS.md, "The critic's last conv"). The weight keeps the
    conv's shape, so state dicts and the authors' weights are unchanged, and the outer taps get the
    zero gradient the conv gives them."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (2, 2):
            return super().forward(x)
        w = self.weight[:, :, 1:3, 1:3].reshape(self.out_channels, -1)  # (C_out, C_in * 2 * 2)
        return F.linear(x.flatten(1), w, self.bias)[:, :, None, None]  # (B, C_out, 1, 1)


INITS = ("default", "kaiming")  # PyTorch's default (the authors'), He init for LeakyReLU(0.01)


class Discriminator(nn.Module):
    def __init__(self, conv_dim: int = 64, repeat_num: int = 6, init: str = "default"):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"critic init {init!r}: choose one of {', '.join(INITS)}")
        layers: list[nn.Module] = []
        c_in, c_out = 1, conv_dim
        for _ in range(repeat_num):
            layers += [DownConv(c_in, c_out), nn.LeakyReLU(0.01)]
            c_in, c_out = c_out, c_out * 2
        self.main = nn.Sequential(*layers)
        self.head = nn.Conv2d(c_in, 1, 3, 1, 1, bias=False)
        if init == "kaiming":
            self.kaiming_init()

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
