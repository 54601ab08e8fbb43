"""GANomaly (Akcay et al., ACCV 2018): an encoder-decoder-encoder generator trained adversarially on
normal images; anomaly score = mean (z - z_hat)^2, the distance of an image's code from the code of its
reconstruction.

Step order of the official code: one forward pass of G, then the generator step
(L_G = w_adv * L_adv + w_rec * L_rec + w_enc * L_enc), then the discriminator step (BCE, on the
reconstruction from before the generator step); the discriminator is re-initialised when its loss
collapses below 1e-5.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sagan.errors import ConfigError
from sagan.experiments import NORMAL_ONLY
from sagan.losses import anomaly_map, feature_residual
from sagan.methods import register
from sagan.methods.base import Batch, Method, Prediction
from sagan.methods.gan import frozen
from sagan.models.ganomaly import GanomalyDiscriminator, GanomalyGenerator, dcgan_init


@dataclass
class GANomalyConfig:
    latent_dim: int = 100  # nz
    width: int = 64  # ngf = ndf: first conv width, doubling per down-sampling
    lr: float = 2e-4  # Adam, G and D
    beta1: float = 0.5
    beta2: float = 0.999
    w_adv: float = 1.0  # adversarial (feature matching) weight
    w_rec: float = 50.0  # reconstruction (L1) weight, w_con in the code
    w_enc: float = 1.0  # latent (encoder) weight
    reinit_d_below: float = 1e-5  # re-initialise D when its loss falls below this (0 disables)


@register
class GANomaly(Method):
    """GANomaly: encoder-decoder-encoder GAN on normal images; score = latent distance |z - z_hat|^2."""

    name = "ganomaly"
    Config = GANomalyConfig
    group = NORMAL_ONLY
    # paper: 64 px, batch 64, 15k iterations (our choice, see docs/methods.md), constant learning rate.
    # demo (32 px, batch 16): 8-wide networks; the measured plateau is in docs/methods.md. Cost at the
    # demo preset, one thread (CPU time, benchmarks/train_speed.py --batch 16): 0.016 s/it (6.4 s a run)
    PRESETS = {
        "paper": {"train.iterations": 15_000},
        "demo": {"train.iterations": 400, "model.width": 8},
        # bench: the demo's networks; its curves flatten at 700 / 800 / 800 of 1200 (3 seeds), so 800 at
        # 75% of the run (benchmarks/RESULTS.md, "The bench budgets")
        "bench": {"train.iterations": 1100},
    }

    def __init__(self, cfg: GANomalyConfig, image_size: int, iterations: int):
        super().__init__(cfg, image_size, iterations)
        if image_size % 16 or image_size < 16:
            raise ConfigError(
                f"image size {image_size} must be divisible by 16 (GANomaly's four stride-2 convs)"
            )
        self.G = GanomalyGenerator(image_size, cfg.latent_dim, cfg.width)
        self.D = GanomalyDiscriminator(image_size, cfg.width)
        dcgan_init(self.G)
        dcgan_init(self.D)
        betas = (cfg.beta1, cfg.beta2)
        self.optimizers = {
            "g": torch.optim.Adam(self.G.parameters(), cfg.lr, betas, fused=True),
            "d": torch.optim.Adam(self.D.parameters(), cfg.lr, betas, fused=True),
        }

    def generator_losses(self, x: torch.Tensor, x_hat, z, z_hat) -> dict[str, torch.Tensor]:
        with frozen(self.D):  # D's features guide G; D itself learns only in its own step
            adv = feature_residual(self.D(x)[1], self.D(x_hat)[1]).mean()  # feature matching
        rec = F.l1_loss(x_hat, x)
        enc = F.mse_loss(z_hat, z)
        total = self.cfg.w_adv * adv + self.cfg.w_rec * rec + self.cfg.w_enc * enc
        return {"g_loss": total, "g_adv": adv, "g_rec": rec, "g_enc": enc}

    def discriminator_loss(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        real, fake = self.D(x)[0], self.D(x_hat)[0]
        ones, zeros = torch.ones_like(real), torch.zeros_like(fake)
        return 0.5 * (
            F.binary_cross_entropy_with_logits(real, ones) + F.binary_cross_entropy_with_logits(fake, zeros)
        )

    def training_step(self, batch: Batch, step: int, rng: torch.Generator) -> dict[str, torch.Tensor]:
        x = batch.normal
        x_hat, z, z_hat = self.G(x)
        g = self.generator_losses(x, x_hat, z, z_hat)
        self.optimizers["g"].zero_grad(set_to_none=True)
        g["g_loss"].backward()
        self.optimizers["g"].step()

        d_loss = self.discriminator_loss(x, x_hat.detach())
        self.optimizers["d"].zero_grad(set_to_none=True)
        d_loss.backward()
        self.optimizers["d"].step()
        if d_loss.item() < self.cfg.reinit_d_below:
            dcgan_init(self.D, rng)  # the official remedy for a discriminator that has won
        return {**{k: v.detach() for k, v in g.items()}, "d_loss": d_loss.detach()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, rng: torch.Generator | None = None) -> Prediction:
        x_hat, z, z_hat = self.G(images)
        score = ((z - z_hat) ** 2).mean(1)
        # GANomaly has no anomaly map of its own; ours: the reconstruction residual |x - x_hat| / 2
        return Prediction(score=score, map=anomaly_map(images, x_hat), restored=x_hat, extra={})
