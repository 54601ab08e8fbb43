"""HealthyGAN (Siddiquee et al., 2022; official mahfuzmohammad/HealthyGAN `solver.py`): a masked
image-to-image GAN that translates unlabelled images to healthy-looking ones, trained on labelled
normals (the critic's real side) and unlabelled images (translated: the fake side), WGAN-GP.

Generator losses as the official code computes them (u = unlabelled, n = normal; m = mask,
I = tanh image output, x' = I * m + x * (1 - m)):
  adversarial     -mean D(x'_u) - mean D(x'_n)          (translated unlabelled and normal images)
  identity        mean |x_n - I_n|                      (on the raw image output, not on x'_n)
  reconstruction  mean |x_u - (x_u * m_u + I_u * (1 - m_u))|   (outside the mask, I must equal x)
  mask            0.5 * (area(m_u) + binary(m_u)) + 0.5 * (area(m_n) + binary(m_n))
  L_G = adversarial + lambda_id * identity + lambda_rec * reconstruction + lambda_mask * mask
Anomaly score = mean |x - x'| / 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sagan.losses import identity_loss, mask_area_loss, mask_binary_loss, wgan_g_loss
from sagan.methods import register
from sagan.methods.base import Batch
from sagan.methods.gan import GANConfig, Part, RestorationGAN, check_stargan_size
from sagan.models.healthygan import MaskedGenerator, compose


@dataclass
class HealthyGANConfig(GANConfig):
    lr_g: float = 1e-4  # official: g_lr = d_lr = 1e-4, betas (0.5, 0.999)
    lr_d: float = 1e-4
    lambda_rec: float = 1.0
    lambda_mask: float = 0.1
    lambda_msmall: float = 1.0  # weight of the mask-area term inside the mask loss
    lambda_mzerone: float = 1.0  # weight of the mask-binary term inside the mask loss


@register
class HealthyGAN(RestorationGAN):
    """HealthyGAN: masked translation GAN trained on normal + unlabelled images; score mean|x - x'|/2."""

    name = "healthygan"
    Config = HealthyGANConfig
    # paper: the official run (batch 16, 400k iterations; its lr "decay" removes 0.1% in total, which
    # the trainer's "official" schedule reproduces). demo: the restoration GANs' demo networks and a
    # measured budget (docs/methods.md), constant learning rate. Cost at the demo preset, one thread
    # (CPU time, benchmarks/train_speed.py --batch 16): 0.17 s/it (50 s a run)
    PRESETS = {
        "paper": {"train.iterations": 400_000, "train.batch_size": 16, "train.lr_decay": "official"},
        "demo": {
            **{k: v for k, v in RestorationGAN.PRESETS["demo"].items() if not k.startswith("train.lr_decay")},
            # 1% of the bench budget, a pipeline check, as f-AnoGAN's demo (sagan/methods/fanogan.py; the
            # former demo budget, 300, gave 68.4 / 71.3 / 67.8 test AUC)
            "train.iterations": 20,
            # HealthyGAN's demo keeps what it had before SAGAN's and Brainomaly's moved (batch 16,
            # critic lr 2e-4); it shares only their critic's He initialisation
            "train.batch_size": 16,
            "model.lr_d": 2e-4,
        },
        # bench: the demo's networks; in an 1800-iteration study (3 seeds) its curves level off at 1300 /
        # 1500 / 300 (synth-rsna / synth-vindr / synth-lag), so 1500 at 75% of the run
        # (benchmarks/RESULTS.md, third session, "... bench budgets, measured")
        "bench": {"train.iterations": 2000},
    }

    def build_generator(self) -> MaskedGenerator:
        check_stargan_size(self.image_size)
        return MaskedGenerator(self.cfg.conv_dim, self.cfg.n_res)

    def restore(self, x: torch.Tensor, rng: torch.Generator | None, train: bool) -> torch.Tensor:
        return self.G.restore(x)

    def mask_loss(self, mask: torch.Tensor) -> torch.Tensor:
        return self.cfg.lambda_msmall * mask_area_loss(mask) + self.cfg.lambda_mzerone * mask_binary_loss(
            mask
        )

    def generate(self, x: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.G(x)  # (image, mask): the losses read both

    def generator_parts(self, batch: Batch) -> list[Part]:
        x_u, x_n, cfg = self.fake_source(batch), batch.normal, self.cfg

        def unlabeled(out: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
            i_u, m_u = out
            adv = wgan_g_loss(self.D(compose(x_u, i_u, m_u)))  # translated unlabelled images
            rec = identity_loss(compose(i_u, x_u, m_u), x_u)  # x_u * m + I_u * (1 - m) ~ x_u
            msk = 0.5 * self.mask_loss(m_u)
            loss = adv + cfg.lambda_rec * rec + cfg.lambda_mask * msk
            return {"g_loss": loss, "g_adv": adv, "g_rec": rec, "g_mask": msk}

        def normal(out: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
            i_n, m_n = out
            adv_id = wgan_g_loss(self.D(compose(x_n, i_n, m_n)))  # translated normal images
            idt = identity_loss(i_n, x_n)
            msk = 0.5 * self.mask_loss(m_n)
            loss = adv_id + cfg.lambda_id * idt + cfg.lambda_mask * msk
            return {"g_loss": loss, "g_adv": adv_id, "g_id": idt, "g_mask": msk}

        # summed over the two parts: g_adv = adv + adv_id and g_mask = 0.5 * (mask(m_u) + mask(m_n)),
        # the official code's terms (module docstring)
        return [(x_u, unlabeled), (x_n, normal)]
