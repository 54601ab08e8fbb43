"""AE: the reconstruction baseline of Table 2, trained on labelled normal images only.

Score = mean squared reconstruction error (the "AE" row of the DDAD benchmark the paper compares to).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sagan.errors import ConfigError
from sagan.experiments import NORMAL_ONLY
from sagan.methods import register
from sagan.methods.base import Batch, Method, Prediction
from sagan.models.autoencoder import AutoEncoder


@dataclass
class AEConfig:
    conv_dim: int = 32
    latent_dim: int = 16
    depth: int = 4  # stride-2 downsamplings
    lr: float = 5e-4
    beta1: float = 0.9
    beta2: float = 0.999

    def validate(self) -> None:
        if self.depth < 1 or self.latent_dim < 1 or self.conv_dim < 1:
            raise ConfigError("model.depth, model.latent_dim and model.conv_dim must be >= 1")


@register
class AE(Method):
    """Convolutional autoencoder on normal images; anomaly score = reconstruction error."""

    name = "ae"
    group = NORMAL_ONLY
    Config = AEConfig
    # a constant learning rate (the trainer's default schedule, "none"), in both presets
    PRESETS = {"demo": {"model.conv_dim": 8}}

    def __init__(self, cfg: AEConfig, image_size: int, iterations: int):
        super().__init__(cfg, image_size, iterations)
        if image_size % 2**cfg.depth:
            raise ConfigError(f"image size {image_size} must be divisible by 2**model.depth = {2**cfg.depth}")
        self.net = AutoEncoder(image_size, cfg.conv_dim, cfg.latent_dim, cfg.depth)
        self.optimizers = {"ae": torch.optim.Adam(self.net.parameters(), cfg.lr, (cfg.beta1, cfg.beta2))}

    def training_step(self, batch: Batch, step: int, rng: torch.Generator) -> dict[str, torch.Tensor]:
        loss = ((self.net(batch.normal) - batch.normal) ** 2).mean()
        opt = self.optimizers["ae"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"rec_loss": loss.detach()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, rng: torch.Generator | None = None) -> Prediction:
        restored = self.net(images)
        sq = (images - restored) ** 2 / 4  # in [0, 1] for images in [-1, 1]
        return Prediction(score=sq.flatten(1).mean(1), map=sq, restored=restored)
