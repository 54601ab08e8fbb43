"""Loss functions, each a small named function (paper Eq. 3-7)."""

from __future__ import annotations

import torch
from torch import nn


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator
) -> torch.Tensor:
    """WGAN-GP term mean((||grad D(x_hat)||_2 - 1)^2), x_hat = a*real + (1-a)*fake, a ~ U(0,1) per sample."""
    a = torch.rand(
        real.shape[0], *([1] * (real.dim() - 1)), generator=rng, device=real.device, dtype=real.dtype
    )
    x_hat = (a * real + (1 - a) * fake).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out, x_hat, grad_outputs=torch.ones_like(out), create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def wgan_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Critic loss (Eq. 7 without the penalty): -E[D(real)] + E[D(fake)]."""
    return d_fake.mean() - d_real.mean()


def wgan_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Adversarial generator loss (Eq. 5): -E[D(x'_u)]."""
    return -d_fake.mean()


def identity_loss(restored: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Eq. 3: L1 between a normal image and its reconstruction."""
    return (restored - original).abs().mean()


def restoration_loss(restored_pseudo: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Eq. 4 as the authors' code computes it: MSE between the restored pseudo anomaly and its normal source."""
    return ((restored_pseudo - original) ** 2).mean()


def anomaly_map(x: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
    """|x - x'| / 2 per pixel (images in [-1, 1], so the map is in [0, 1])."""
    return (x - restored).abs() / 2


def anomaly_score(x: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
    """Image-level score: mean of the anomaly map, (B,)."""
    return anomaly_map(x, restored).flatten(1).mean(1)
