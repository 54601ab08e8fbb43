"""What SAGAN and Brainomaly share: a restoration generator trained against a WGAN-GP critic.

Fixed step order (style.md, point 5): fake -> critic step on fake.detach() with gradient penalty ->
every n_critic-th step: freeze critic -> generator step. The trainer applies the learning-rate
schedule these methods choose in their presets (linear decay over the last half, as in the paper).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from sagan.config import choice
from sagan.errors import ConfigError
from sagan.experiments import SEMI_SUPERVISED
from sagan.losses import anomaly_map, anomaly_score, gradient_penalty, wgan_d_loss
from sagan.methods.base import Batch, Method, Prediction
from sagan.models.discriminator import INITS, Discriminator


@dataclass
class GANConfig:
    conv_dim: int = 64  # generator base width (g_conv_dim)
    n_res: int = 6  # residual blocks at the bottleneck
    d_conv_dim: int = 64  # critic base width
    d_repeat_num: int = 6  # critic stride-2 convs (1x1 output at 64 px)
    # critic initialisation: "default" = PyTorch's (the authors'), "kaiming" = He init for LeakyReLU
    d_init: str = choice("default", INITS)
    lr_g: float = 5e-5
    lr_d: float = 5e-5
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 2  # critic steps per generator step
    lambda_gp: float = 10.0
    lambda_id: float = 1.0


@contextmanager
def frozen(*nets: torch.nn.Module):
    """No parameter gradients for `nets` inside the block (a network held fixed while another learns)."""
    for net in nets:
        net.requires_grad_(False)
    try:
        yield
    finally:
        for net in nets:
            net.requires_grad_(True)


class RestorationGAN(Method):
    """Base of the GAN methods: subclasses implement `build_generator`, `restore` and `generator_losses`."""

    group = SEMI_SUPERVISED
    # The paper decays the learning rates linearly over the last half (steps every 1000 iterations).
    # Demo: a narrow generator at 32 px and a 32-wide critic, He-initialised (d_init=kaiming): from
    # PyTorch's default init (the authors') the critic starts nearly constant (gradient penalty ~1, no
    # signal to G) and SAGAN and Brainomaly stayed at chance for hundreds of iterations; the critic at
    # lr 5e-5 (SAGAN's paper value; Brainomaly's is 1e-4), G at 2e-4; batch 8, which learns about as
    # fast per iteration as 16 at half the cost (benchmarks/RESULTS.md, "The critic's initialisation")
    PRESETS = {
        "paper": {"train.lr_decay": "linear"},
        "demo": {
            "train.iterations": 600,
            "train.batch_size": 8,
            "train.lr_decay": "linear",
            "train.lr_decay_every": 20,
            "model.conv_dim": 8,
            "model.d_conv_dim": 32,
            "model.n_res": 2,
            "model.d_repeat_num": 5,
            "model.d_init": "kaiming",
            "model.lr_g": 2e-4,
            "model.lr_d": 5e-5,
        },
        # bench: each method's own (SAGAN, Brainomaly, HealthyGAN), from its convergence study
    }

    def __init__(self, cfg: GANConfig, image_size: int, iterations: int):
        super().__init__(cfg, image_size, iterations)
        if image_size < 2**cfg.d_repeat_num:
            raise ConfigError(
                f"model.d_repeat_num={cfg.d_repeat_num} halves {image_size} px below 1 px; "
                f"use model.d_repeat_num <= {max(1, image_size.bit_length() - 1)}"
            )
        self.D = Discriminator(cfg.d_conv_dim, cfg.d_repeat_num, cfg.d_init, image_size)
        self.G = self.build_generator()
        betas = (cfg.beta1, cfg.beta2)
        # fused: one kernel per step instead of ~10 passes over every tensor, the same update up to
        # float rounding (the critic's last conv holds most of its weights; benchmarks/RESULTS.md)
        self.optimizers = {
            "g": torch.optim.Adam(self.G.parameters(), cfg.lr_g, betas, fused=True),
            "d": torch.optim.Adam(self.D.parameters(), cfg.lr_d, betas, fused=True),
        }

    def build_generator(self) -> torch.nn.Module:
        raise NotImplementedError

    def restore(self, x: torch.Tensor, rng: torch.Generator | None, train: bool) -> torch.Tensor:
        raise NotImplementedError

    def fake_source(self, batch: Batch) -> torch.Tensor:
        if batch.unlabeled is None:
            raise ConfigError(
                f"method {self.name} needs unlabelled data; data.anomaly_ratio=0_u is SAGAN-only"
            )
        return batch.unlabeled

    def generator_losses(self, batch: Batch, rng: torch.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def training_step(self, batch: Batch, step: int, rng: torch.Generator) -> dict[str, torch.Tensor]:
        opts = self.optimizers
        real = batch.normal
        with torch.no_grad():
            fake = self.restore(self.fake_source(batch), rng, train=True)  # x'_u

        # critic step (Eq. 7): real = labelled normals, fake = restored unlabelled images, in one pass
        # (the critic scores each image on its own; one call of twice the batch is cheaper than two)
        d_real, d_fake = self.D(torch.cat([real, fake])).split([len(real), len(fake)])
        d_adv = wgan_d_loss(d_real, d_fake)
        gp = gradient_penalty(self.D, real, fake, rng)
        d_loss = d_adv + self.cfg.lambda_gp * gp
        opts["d"].zero_grad(set_to_none=True)
        d_loss.backward()
        opts["d"].step()
        out = {"d_loss": d_loss.detach(), "d_adv": d_adv.detach(), "gp": gp.detach()}

        if (step + 1) % self.cfg.n_critic == 0:
            self.D.requires_grad_(False)
            g_terms = self.generator_losses(batch, rng)
            opts["g"].zero_grad(set_to_none=True)
            g_terms["g_loss"].backward()
            opts["g"].step()
            self.D.requires_grad_(True)
            out.update({k: v.detach() for k, v in g_terms.items()})
        return out

    @torch.no_grad()
    def predict(self, images: torch.Tensor, rng: torch.Generator | None = None) -> Prediction:
        restored = self.restore(images, rng, train=False)
        return Prediction(
            score=anomaly_score(images, restored), map=anomaly_map(images, restored), restored=restored
        )


def check_stargan_size(image_size: int) -> None:
    """The StarGAN trunk (Brainomaly's and HealthyGAN's generator) halves the image twice."""
    if image_size % 4:
        raise ConfigError(
            f"image size {image_size} must be divisible by 4 (the generator's two stride-2 convs)"
        )
