"""DDAD (Cai et al., MedIA 2023): dual-distribution discrepancy of two autoencoder ensembles.

Facts from caiyu6666/DDAD-ASR (`main.py`, `trainer.py`, `test.py`, `cfgs/RSNA_AE.yaml`):
- module A (the "unknown distribution module") = K AEs trained on the labelled normals together with
  the unlabelled images; module B (the "normative distribution module") = K AEs on the normals only;
  K = 3; each AE is the benchmark AE with a 2048-wide hidden layer, Adam 5e-4, betas (0.5, 0.999),
  batch 64, 250 epochs, mean squared error;
- inter-discrepancy score (DDAD's Eq. for A_inter): mean over pixels of |mu_A - mu_B|, mu the ensemble
  means of the reconstructions; intra-discrepancy (A_intra): mean over pixels of the standard deviation
  of module B's reconstructions (unbiased, as torch.std). The ASR refinement network is not used.

Module A's data: DDAD draws batches of 64 from the union of the normals and U unlabelled images
(U = number of normals, so half of each on average) and trains 250 epochs of that union, twice as
many steps as module B. Here each iteration's normal and unlabelled batches (B each) give module A
two steps of B images, half normal and half unlabelled, and module B one step on the normals.
K is a model setting and therefore part of the run's configuration and identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sagan.config import at_least
from sagan.errors import ConfigError
from sagan.experiments import NORMAL_ONLY, SEMI_SUPERVISED
from sagan.methods import register
from sagan.methods.base import Batch, Method, Prediction
from sagan.methods.reconstruction import PAPER_BUDGET, check_image_size
from sagan.models.autoencoder import AutoEncoder
from sagan.models.ensemble import ensemble_forward


@dataclass
class DDADConfig:
    # K networks in each module (DDAD-ASR README: 3 runs of mode a and of mode b)
    ensemble_size: int = at_least(3, 2, "the intra-discrepancy is a standard deviation")
    base_width: int = 16
    hidden_dim: int = 2048  # DDAD-ASR models/autoencoder.py
    latent_dim: int = 16  # cfgs ls
    lr: float = 5e-4  # cfgs Solver.lr
    beta1: float = 0.5  # trainer.py: Adam betas (0.5, 0.999)
    beta2: float = 0.999


def ensemble_loss(nets: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """Sum over the networks of each one's mean squared error: each gets exactly its own gradient."""
    return ((reconstructions(nets, x) - x[:, None]) ** 2).mean(dim=(0, 2, 3, 4)).sum()


def reconstructions(nets: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """(B, K, 1, H, W); the K AEs as one grouped network (sagan/models/ensemble.py)."""
    return ensemble_forward(nets, x)


def discrepancies(rec_a: torch.Tensor, rec_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel inter- and intra-discrepancy maps (B, 1, H, W) from (B, K, 1, H, W) reconstructions."""
    inter = (rec_a.mean(1) - rec_b.mean(1)).abs()  # |mu_A - mu_B|
    intra = rec_b.std(1)  # sigma_B, unbiased
    return inter, intra


@register
class DDAD(Method):
    """Dual-distribution discrepancy of two AE ensembles (normal / normal + unlabelled)."""

    name = "ddad"
    group = SEMI_SUPERVISED
    extra_groups = {"intra": NORMAL_ONLY}  # DDAD-intra: the spread of module B, trained on normals only
    Config = DDADConfig
    PRESETS = {
        # 250 epochs of the normals for module B; module A takes two steps an iteration, so 250 epochs
        # of its twice larger pool as well
        "paper": PAPER_BUDGET,
        # demo (32 px, batch 16): nine AE steps an iteration, so narrower AEs (63 ms an iteration on one
        # CPU thread instead of 100, the same AUC); the AUC stops rising after ~500 iterations, but the
        # demo's 30 minutes leave it 1% of its bench budget, a pipeline check (as f-AnoGAN's demo,
        # sagan/methods/fanogan.py)
        "demo": {
            "train.iterations": 16,
            "train.lr_decay": "none",
            "model.base_width": 8,
            "model.hidden_dim": 128,
        },
        # bench: in a 2400-iteration study (3 seeds) its curves flatten at 1200 / 1200 / 600 (synth-rsna /
        # synth-vindr / synth-lag), so 1200 at 75% of the run (benchmarks/RESULTS.md, third session,
        # "... bench budgets, measured")
        "bench": {"train.iterations": 1600},
    }

    def __init__(self, cfg: DDADConfig, image_size: int, iterations: int):
        super().__init__(cfg, image_size, iterations)
        check_image_size(image_size)

        def ensemble() -> nn.ModuleList:
            nets = (
                AutoEncoder(image_size, cfg.base_width, cfg.hidden_dim, cfg.latent_dim)
                for _ in range(cfg.ensemble_size)
            )
            return nn.ModuleList(nets)

        self.module_a, self.module_b = ensemble(), ensemble()  # A: normal + unlabelled, B: normal only
        betas = (cfg.beta1, cfg.beta2)
        self.optimizers = {
            # fused: one kernel a step for the K networks of a module (sagan/methods/gan.py)
            "a": torch.optim.Adam(self.module_a.parameters(), cfg.lr, betas=betas, fused=True),
            "b": torch.optim.Adam(self.module_b.parameters(), cfg.lr, betas=betas, fused=True),
        }

    def _step(self, name: str, nets: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        loss = ensemble_loss(nets, x)
        self.optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers[name].step()
        return loss.detach() / len(nets)

    def training_step(self, batch: Batch, step: int, rng: torch.Generator) -> dict[str, torch.Tensor]:
        if batch.unlabeled is None:
            raise ConfigError(
                "method ddad trains module A on unlabelled images; data.anomaly_ratio=0_u has none"
            )
        rec_b = self._step("b", self.module_b, batch.normal)
        halves = zip(batch.normal.tensor_split(2), batch.unlabeled.tensor_split(2))
        rec_a = [self._step("a", self.module_a, torch.cat(pair)) for pair in halves]
        return {"rec_a": torch.stack(rec_a).mean(), "rec_b": rec_b}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, rng: torch.Generator | None = None) -> Prediction:
        rec_a, rec_b = reconstructions(self.module_a, images), reconstructions(self.module_b, images)
        inter, intra = discrepancies(rec_a, rec_b)
        return Prediction(
            score=inter.flatten(1).mean(1),  # DDAD-inter
            map=inter,
            restored=rec_b.mean(1),  # mu_B, module B's (normative) reconstruction
            extra={"intra": intra.flatten(1).mean(1)},  # DDAD-intra
        )
