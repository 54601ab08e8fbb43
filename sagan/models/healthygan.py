"""HealthyGAN's generator (Siddiquee et al., 2022; official mahfuzmohammad/HealthyGAN `model.py`).

StarGAN layout (7x7 conv, two stride-2 downs, residual blocks, two ups) whose last 7x7 conv gives two
channels: an image I(x) and a mask logit M(x). The restored image keeps the input where the mask is 0:
    x' = tanh(I(x)) * m + x * (1 - m),   m = (tanh(M(x)) + 1) / 2.
The official code has three image channels (RGB); here one.
"""

from __future__ import annotations

import torch
from torch import nn

from sagan.models.blocks import stargan_trunk


def compose(x: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x' = image * m + x * (1 - m): the generator's image where the mask is on, the input elsewhere."""
    return image * mask + x * (1 - mask)


class MaskedGenerator(nn.Module):
    def __init__(self, conv_dim: int = 64, n_res: int = 6):
        super().__init__()
        self.main = stargan_trunk(conv_dim, n_res, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns tanh(I(x)) and m = (tanh(M(x)) + 1) / 2, each (B, 1, H, W)."""
        image, mask = self.main(x).split(1, dim=1)
        return torch.tanh(image), (torch.tanh(mask) + 1) / 2

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        image, mask = self(x)
        return compose(x, image, mask)  # (B, 1, H, W)
