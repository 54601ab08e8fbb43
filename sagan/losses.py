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


# --- baselines (Table 2) ---


def feature_residual(f_a: torch.Tensor, f_b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of two (B, ...) feature tensors, per sample (B,): the critic-feature term
    of f-AnoGAN's izi_f loss and score, and GANomaly's adversarial (feature-matching) loss when averaged."""
    return ((f_a - f_b) ** 2).flatten(1).mean(1)


def mask_area_loss(mask: torch.Tensor) -> torch.Tensor:
    """HealthyGAN: keep the changed area small, (mean of the mask over the whole batch)^2."""
    return mask.mean() ** 2


def mask_binary_loss(mask: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
    """HealthyGAN: push mask values away from 0.5 toward 0 or 1; zero when the mask is binary.

    mean(1 / (|m - 0.5| + eps)) - 1 / (0.5 + eps), with eps = 0.01 as in the official code.
    """
    return (1 / ((mask - 0.5).abs() + eps)).mean() - 1 / (0.5 + eps)
