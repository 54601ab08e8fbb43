"""What the benchmark's reconstruction methods share (AE, MemAE, DDAD's ensembles): the autoencoder's
settings, the paper budget, and one network trained on labelled normals and scored by its squared
reconstruction error. Not a method itself: `ae.py` and `memae.py` register its subclasses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sagan.errors import ConfigError
from sagan.methods.base import Batch, Method, Prediction
from sagan.models.autoencoder import DOWNSAMPLINGS

# 250 epochs of RSNA's 3851 labelled normals at batch 64 (60 full batches an epoch); constant lr
PAPER_BUDGET = {"train.iterations": 250 * 60, "train.batch_size": 64, "train.lr_decay": "none"}


@dataclass
class AutoEncoderConfig:
    base_width: int = 16  # channels 16-32-64-64
    hidden_dim: int = 1024  # MedIAnomaly --hidden-num (DDAD-ASR: 2048)
    latent_dim: int = 16  # MedIAnomaly / AE4AD latent size
    lr: float = 1e-3  # MedIAnomaly --train-lr
    beta1: float = 0.9  # Adam defaults (MedIAnomaly)
    beta2: float = 0.999


def check_image_size(image_size: int) -> None:
    if image_size % 2**DOWNSAMPLINGS:
        raise ConfigError(
            f"image size {image_size} must be divisible by {2**DOWNSAMPLINGS} (the AE's 4 downsamplings)"
        )


def squared_error_prediction(x: torch.Tensor, restored: torch.Tensor) -> Prediction:
    """The benchmark's reconstruction score: per-pixel squared error, averaged per image."""
    err = (x - restored) ** 2  # (B, 1, H, W)
    return Prediction(score=err.flatten(1).mean(1), map=err, restored=restored)


class Reconstruction(Method):
    """One autoencoder on labelled normals; subclasses build it and name its loss terms."""

    def __init__(self, cfg: AutoEncoderConfig, image_size: int, iterations: int):
        super().__init__(cfg, image_size, iterations)
        check_image_size(image_size)
        self.net = self.build_network(cfg, image_size)
        betas = (cfg.beta1, cfg.beta2)
        self.optimizers = {"ae": torch.optim.Adam(self.net.parameters(), cfg.lr, betas=betas, fused=True)}

    def build_network(self, cfg: AutoEncoderConfig, image_size: int) -> nn.Module:
        raise NotImplementedError

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named loss terms of a batch of normals; "loss" is the one minimised."""
        raise NotImplementedError

    def training_step(self, batch: Batch, step: int, rng: torch.Generator) -> dict[str, torch.Tensor]:
        terms = self.losses(batch.normal)
        opt = self.optimizers["ae"]
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        return {k: v.detach() for k, v in terms.items()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, rng: torch.Generator | None = None) -> Prediction:
        return squared_error_prediction(images, self.net(images))
