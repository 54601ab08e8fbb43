"""What SAGAN and Brainomaly share: a restoration generator trained against a WGAN-GP critic.

Fixed step order (style.md, point 5): fake -> critic step on fake.detach() with gradient penalty ->
every n_critic-th step: freeze critic -> generator step. Learning rates follow the schedule below.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sagan.config import choice
from sagan.errors import ConfigError
from sagan.losses import anomaly_map, anomaly_score, gradient_penalty, wgan_d_loss
from sagan.methods.base import Batch, Method
from sagan.models.discriminator import Discriminator


@dataclass
class GANConfig:
    conv_dim: int = 64  # generator base width (g_conv_dim)
    n_res: int = 6  # residual blocks at the bottleneck
    d_conv_dim: int = 64  # critic base width
    d_repeat_num: int = 6  # critic stride-2 convs (1x1 output at 64 px)
    lr_g: float = 5e-5
    lr_d: float = 5e-5
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 2  # critic steps per generator step
    lambda_gp: float = 10.0
    lambda_id: float = 1.0
    # "linear": the paper's intent, decay toward 0 over the last half in steps every lr_decay_every;
    # "official": the authors' code (subtracts lr/decay_iters per step: nearly constant); "none"
    lr_decay: str = choice("linear", ("linear", "official", "none"))
    lr_decay_every: int = 1000

    def validate(self) -> None:
        if self.n_critic < 1 or self.lr_decay_every < 1:
            raise ConfigError("model.n_critic and model.lr_decay_every must be >= 1")
        for name in ("conv_dim", "d_conv_dim", "d_repeat_num"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1")


def lr_factor(step: int, iterations: int, mode: str, every: int) -> float:
    """Learning-rate multiplier at a (0-based) step; decay acts over the last half of the run."""
    start = iterations // 2
    if mode == "none" or step < start:
        return 1.0
    updates = (step - start) // every  # completed decay steps
    if mode == "official":
        return 1.0 - updates / max(iterations - start, 1)
    return max(0.0, 1.0 - updates * every / max(iterations - start, 1))


class RestorationGAN(Method):
    """Base of the GAN methods: subclasses build `self.G`, and implement `restore` and `generator_losses`."""

    # demo preset: a narrow generator at 32 px; the critic stays 32 wide, since an 8- or 16-wide critic
    # often stays dead from initialisation (gradient penalty ~1, no signal to G; benchmarks/RESULTS.md)
    DEMO = {
        "conv_dim": 8,
        "d_conv_dim": 32,
        "n_res": 2,
        "d_repeat_num": 5,
        "lr_g": 2e-4,
        "lr_d": 2e-4,
        "lr_decay_every": 20,
    }

    def __init__(self, cfg: GANConfig, image_size: int, iterations: int):
        super().__init__(cfg, image_size)
        self.iterations = iterations
        if image_size < 2**cfg.d_repeat_num:
            raise ConfigError(
                f"model.d_repeat_num={cfg.d_repeat_num} halves {image_size} px below 1 px; "
                f"use model.d_repeat_num <= {max(1, image_size.bit_length() - 1)}"
            )
        self.D = Discriminator(cfg.d_conv_dim, cfg.d_repeat_num)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        if not hasattr(self, "_opts"):
            betas = (self.cfg.beta1, self.cfg.beta2)
            self._opts = {
                "g": torch.optim.Adam(self.G.parameters(), self.cfg.lr_g, betas),
                "d": torch.optim.Adam(self.D.parameters(), self.cfg.lr_d, betas),
            }
        return self._opts

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
        opts = self.optimizers()
        factor = lr_factor(step, self.iterations, self.cfg.lr_decay, self.cfg.lr_decay_every)
        for name, lr0 in (("g", self.cfg.lr_g), ("d", self.cfg.lr_d)):
            for group in opts[name].param_groups:
                group["lr"] = lr0 * factor

        real = batch.normal
        with torch.no_grad():
            fake = self.restore(self.fake_source(batch), rng, train=True)  # x'_u

        # critic step (Eq. 7): real = labelled normals, fake = restored unlabelled images
        d_adv = wgan_d_loss(self.D(real), self.D(fake))
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
    def predict(self, images: torch.Tensor, rng: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        restored = self.restore(images, rng, train=False)
        return {
            "score": anomaly_score(images, restored),
            "restored": restored,
            "map": anomaly_map(images, restored),
        }
