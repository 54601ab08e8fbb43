"""MemAE (Gong et al., ICCV 2019) as the Med-AD benchmark runs it: the benchmark AE with a memory of
normal latent codes between encoder and decoder (MedIAnomaly `networks/mem_ae.py`,
`base_units/memory_module.py`).

Addressing (Gong et al. Eq. 4-7): w = softmax(z M^T); hard shrinkage w' = relu(w - lambda) w / (|w - lambda|
+ eps), renormalised to sum 1; z_hat = w' M. The entropy of w' is the sparsity loss (Eq. 9).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sagan.models.autoencoder import AutoEncoder

EPS = 1e-12


class Memory(nn.Module):
    """slots x dim memory; (B, dim) codes -> (B, dim) codes rebuilt from the memory and (B, slots) weights."""

    def __init__(self, slots: int = 25, dim: int = 16, shrink: float = 0.0025):
        super().__init__()
        bound = 1 / math.sqrt(dim)
        self.items = nn.Parameter(torch.empty(slots, dim).uniform_(-bound, bound))  # M
        self.shrink = shrink

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = F.softmax(z @ self.items.T, dim=1)  # (B, slots), Eq. 5
        if self.shrink > 0:
            w = F.relu(w - self.shrink) * w / ((w - self.shrink).abs() + EPS)  # Eq. 7
            w = F.normalize(w, p=1, dim=1)
        return w @ self.items, w  # z_hat (B, dim), Eq. 4


def addressing_entropy(w: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the entropy of the memory weights (MemAE Eq. 9)."""
    return -(w * torch.log(w + EPS)).sum(1).mean()


class MemAutoEncoder(AutoEncoder):
    """The benchmark AE whose decoder only sees latent codes rebuilt from the memory."""

    def __init__(
        self,
        image_size: int = 64,
        base_width: int = 16,
        hidden_dim: int = 1024,
        latent_dim: int = 16,
        slots: int = 25,
        shrink: float = 0.0025,
    ):
        super().__init__(image_size, base_width, hidden_dim, latent_dim)
        self.memory = Memory(slots, latent_dim, shrink)

    def forward_with_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z_hat, w = self.memory(self.encode(x))  # (B, latent), (B, slots)
        return self.decode(z_hat), w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_weights(x)[0]
