"""What SAGAN and Brainomaly share: a restoration generator trained against a WGAN-GP critic.

Fixed step order (style.md, point 5): fake -> critic step on fake.detach() with gradient penalty ->
every n_critic-th step: freeze critic -> generator step. The trainer applies the learning-rate
schedule these methods choose in their presets (linear decay over the last half, as in the paper).

The generator step's loss is a sum over its inputs (normal, pseudo-anomalous, unlabelled images),
each term reading the generator's output on one input only (`generator_parts`). So it can run as one
generator pass over all inputs (`model.g_pass=joint`: the fewest calls, best where per-call costs
dominate, the demo size) or input by input, each part's backward before the next part's forward
(`per_part`: the peak memory of one part, and no slower at full size on the CPU; benchmarks/RESULTS.md).
The generators' norms are per image and the random draws come in the same order, so the two compute
the same gradient, up to the order in which float gradients are summed.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from sagan.config import choice
from sagan.errors import ConfigError
from sagan.experiments import SEMI_SUPERVISED
from sagan.losses import anomaly_map, anomaly_score, gradient_penalty, wgan_d_loss
from sagan.methods.base import Batch, Method, Prediction
from sagan.models.discriminator import INITS, Discriminator

G_PASSES = ("joint", "per_part")


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
    # the generator step in one pass or part by part (module docstring); an execution choice, not a
    # hyper-parameter: the same gradient either way
    g_pass: str = choice("per_part", G_PASSES)


# One part of the generator step: an input batch, and its loss terms as a function of the generator's
# output on it ("g_loss": the part's share of the step's loss; the step's loss is the sum over parts)
Part = tuple[torch.Tensor, Callable[[Any], dict[str, torch.Tensor]]]


def add_terms(terms: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Per-part loss terms summed by name (a term that only some parts have is their sum)."""
    total: dict[str, torch.Tensor] = {}
    for part in terms:
        for k, v in part.items():
            total[k] = total[k] + v if k in total else v
    return total


def split_output(out: Any, sizes: list[int]) -> list[Any]:
    """A generator output over concatenated inputs (a tensor or a tuple of tensors), per input."""
    if isinstance(out, tuple):
        return list(zip(*(o.split(sizes) for o in out)))
    return list(out.split(sizes))


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
    """Base of the GAN methods: subclasses implement `build_generator`, `restore` and `generator_parts`."""

    group = SEMI_SUPERVISED
    compiled = ("G",)  # `train.compile`: the generator (the critic's penalty needs a double backward)
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
            # one generator pass: at 32 px part by part is no faster (within 10% either way,
            # benchmarks/RESULTS.md), and one pass keeps the numbers of the earlier demos bit for bit
            "model.g_pass": "joint",
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

    def generate(self, x: torch.Tensor, rng: torch.Generator) -> Any:
        """The generator's output that the generator step's losses read (default: the restoration)."""
        return self.restore(x, rng, train=True)

    def generator_parts(self, batch: Batch) -> list[Part]:
        raise NotImplementedError

    def generator_losses(self, batch: Batch, rng: torch.Generator) -> dict[str, torch.Tensor]:
        """The generator step's loss terms from one generator pass over all its inputs (graphs kept)."""
        parts = self.generator_parts(batch)
        outs = split_output(self.generate(torch.cat([x for x, _ in parts]), rng), [len(x) for x, _ in parts])
        return add_terms([loss(out) for (_, loss), out in zip(parts, outs)])

    def generator_step(self, batch: Batch, rng: torch.Generator) -> dict[str, torch.Tensor]:
        """Backpropagates the generator step's loss into the generator (`model.g_pass`); its terms, detached."""
        if self.cfg.g_pass == "joint":
            terms = self.generator_losses(batch, rng)
            terms["g_loss"].backward()
            return {k: v.detach() for k, v in terms.items()}
        done = []
        for x, loss in self.generator_parts(batch):  # in the joint pass's order: the same random draws
            part = loss(self.generate(x, rng))
            part["g_loss"].backward()  # frees this part's graph before the next part's forward
            done.append({k: v.detach() for k, v in part.items()})
        return add_terms(done)

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
            opts["g"].zero_grad(set_to_none=True)
            out.update(self.generator_step(batch, rng))
            opts["g"].step()
            self.D.requires_grad_(True)
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
