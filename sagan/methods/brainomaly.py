"""Brainomaly (Siddiquee et al., WACV 2024), the Table 3 baseline: StarGAN-style additive generator,
WGAN-GP, identity L1 on normals, no cycle loss, no pseudo anomalies."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sagan.losses import identity_loss, wgan_g_loss
from sagan.methods import register
from sagan.methods.base import Batch
from sagan.methods.gan import GANConfig, Part, RestorationGAN, check_stargan_size
from sagan.models.generator import StarGANGenerator


@dataclass
class BrainomalyConfig(GANConfig):
    lr_g: float = 1e-4  # official code: 1e-4 for G and D
    lr_d: float = 1e-4


@register
class Brainomaly(RestorationGAN):
    """Brainomaly: additive-map GAN trained on normal + unlabelled images (the paper's baseline)."""

    name = "brainomaly"
    Config = BrainomalyConfig
    # bench: the demo's networks; in a 2400-iteration study (3 seeds) its curves flatten at 1300 / 1300 /
    # 200 (synth-rsna / synth-vindr / synth-lag), so 1300 at 75% of the run, rounded up to 100
    # (benchmarks/RESULTS.md, third session, "... bench budgets, measured")
    PRESETS = {**RestorationGAN.PRESETS, "bench": {"train.iterations": 1800}}

    def build_generator(self) -> StarGANGenerator:
        check_stargan_size(self.image_size)
        return StarGANGenerator(self.cfg.conv_dim, self.cfg.n_res)

    def restore(self, x: torch.Tensor, rng: torch.Generator | None, train: bool) -> torch.Tensor:
        return self.G(x)

    def generator_parts(self, batch: Batch) -> list[Part]:
        x_n = batch.normal

        def normal(x_n_r: torch.Tensor) -> dict[str, torch.Tensor]:
            idt = identity_loss(x_n_r, x_n)
            return {"g_loss": self.cfg.lambda_id * idt, "g_id": idt}

        def unlabeled(x_u_r: torch.Tensor) -> dict[str, torch.Tensor]:
            adv = wgan_g_loss(self.D(x_u_r))
            return {"g_loss": adv, "g_adv": adv}

        return [(x_n, normal), (self.fake_source(batch), unlabeled)]
