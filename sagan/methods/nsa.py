"""CutPaste, FPI and PII through one self-supervised method, the way NSA (Schlueter et al., ECCV 2022)
and the Med-AD benchmark (MedIAnomaly `ssl/one_stage`) run them.

A segmentation network learns to predict the pixel map of synthetic anomalies made from labelled
normal images (`sagan.patch_synthesis`); the anomaly score of a test image is the mean of its
predicted map. Loss: binary cross-entropy against the (binary or continuous) label map. Adam 1e-3.

The three rows of Table 2 are three registered names of this one class: the run's method name is
what tables, figures and the workflow key on, and `model.synthesis` (fixed by the name) records
the mode in the saved configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sagan.config import at_least, choice
from sagan.errors import ConfigError, TrainingError
from sagan.experiments import NORMAL_ONLY
from sagan.methods import register
from sagan.methods.base import Batch, Method, Prediction, Transform
from sagan.models.resnet_encdec import ResNetEncoderDecoder
from sagan.patch_synthesis import MODES, PatchSynthesis

PRESETS = {
    # RSNA's 250 epochs (NSA in MedIAnomaly: 250 on RSNA and LAG, 400 on VinDr) of 3851 normals at batch 64.
    # Our adaptation to 64 px: no stem max-pool, so the bottleneck keeps 4 x 4 (2 x 2 with it).
    "paper": {
        "train.iterations": 250 * 60,
        "train.batch_size": 64,
        "train.lr_decay": "none",
        "model.pool": False,
    },
    # demo (32 px, batch 16): a 83k-parameter network, 20 ms an iteration on one CPU thread with the
    # synthesis; CutPaste's AUC stops rising after ~500 iterations, PII stays near chance at 32 px, FPI
    # leaves chance only after ~1000 (its bench budget below)
    "demo": {
        "train.iterations": 500,
        "train.lr_decay": "none",
        "model.width": 8,
        "model.blocks": 1,
        "model.pool": False,
    },
    # bench (CutPaste; FPI and PII have their own): its curves flatten at 1100 / 600 / 200 of 1500 (3
    # seeds), so 1100 at 75% of the run (benchmarks/RESULTS.md, "The bench budgets")
    "bench": {"train.iterations": 1500},
}


@dataclass
class NSAConfig:
    synthesis: str = choice("cutpaste", MODES)  # fixed by the method name
    width: int = at_least(64, 4, "the decoder narrows it to width / 4")  # ResNet-18: 64-128-256-512
    blocks: int = 2  # basic blocks per encoder stage (ResNet-18: 2)
    up_blocks: int = 1  # transposed blocks per decoder stage
    pool: bool = True  # the stem's max-pool (NSA at 224 px)
    lr: float = 1e-3  # max_lr; NSA anneals it to 1e-6 with a cosine schedule (see docs/methods.md)
    beta1: float = 0.9  # Adam defaults
    beta2: float = 0.999


class PatchSegmentation(Method):
    """Self-supervised pixel-map prediction on synthetic patch anomalies (one synthesis mode per name)."""

    group = NORMAL_ONLY
    Config = NSAConfig
    PRESETS = PRESETS

    def __init__(self, cfg: NSAConfig, image_size: int, iterations: int):
        super().__init__(cfg, image_size, iterations)
        stride = 16 if not cfg.pool else 32
        if image_size % stride:
            raise ConfigError(
                f"image size {image_size} must be divisible by {stride} (model.pool={cfg.pool})"
            )
        self.net = ResNetEncoderDecoder(cfg.width, cfg.blocks, cfg.up_blocks, cfg.pool)
        self.optimizers = {
            "net": torch.optim.Adam(self.net.parameters(), cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=True)
        }

    def transform(self) -> Transform | None:
        return PatchSynthesis(self.cfg.synthesis)

    def training_step(self, batch: Batch, step: int, rng: torch.Generator) -> dict[str, torch.Tensor]:
        if batch.pseudo is None or batch.pseudo_mask is None:
            raise TrainingError(f"method {self.name} trains on synthetic anomalies, but the batch has none")
        logits = self.net(batch.pseudo)
        loss = F.binary_cross_entropy_with_logits(logits.float(), batch.pseudo_mask.float())
        opt = self.optimizers["net"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"bce": loss.detach()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, rng: torch.Generator | None = None) -> Prediction:
        pred = torch.sigmoid(self.net(images).float())  # (B, 1, H, W) predicted anomaly map
        return Prediction(score=pred.flatten(1).mean(1), map=pred, restored=None)


@dataclass
class CutPasteConfig(NSAConfig):
    synthesis: str = choice("cutpaste", ("cutpaste",))


@dataclass
class FPIConfig(NSAConfig):
    synthesis: str = choice("fpi", ("fpi",))


@dataclass
class PIIConfig(NSAConfig):
    synthesis: str = choice("pii", ("pii",))


@register
class CutPaste(PatchSegmentation):
    """CutPaste (Li et al., CVPR 2021) as NSA runs it: a shifted patch of the same image, binary label."""

    name = "cutpaste"
    Config = CutPasteConfig


@register
class NSAFPI(PatchSegmentation):
    """FPI (Tan et al., 2020) as NSA runs it: a patch of another image interpolated in place, label = factor."""

    name = "nsa-fpi"
    Config = FPIConfig
    # bench: FPI learns late at 32 px: near chance for ~1000 iterations, then up to 91-93 validation AUC
    # on synth-rsna (level from 3900 of 6000) and 86 on synth-vindr (level from 7200 of 12000; 3 seeds
    # each); flat near chance on synth-lag (300 of 3000). So 7200 at 75% of the run (benchmarks/
    # RESULTS.md, third session, "... bench budgets, measured"). demo: the shared 500 iterations are 5% of
    # that, a row Table 2 does not rank (under a tenth: sagan/report/curves.py) and at chance (53.8 / 48.8
    # / 57.0 test AUC in the demo of 2026-12-04), so a pipeline check at 1%, as f-AnoGAN's demo
    PRESETS = {
        **PRESETS,
        "demo": {**PRESETS["demo"], "train.iterations": 96},
        "bench": {"train.iterations": 9600},
    }


@register
class PII(PatchSegmentation):
    """PII (Tan et al., 2021): a patch of another image Poisson-blended (mixed gradients), label = factor."""

    name = "pii"
    Config = PIIConfig
    # demo: at 32 px PII makes no anomaly (every patch is under seamlessClone's 50-pixel minimum or
    # eroded by it), so the network learns an empty map; its validation curves are flat from 80-120
    # iterations on every synthetic set (benchmarks/RESULTS.md), so 120 iterations instead of 500; bench:
    # 500, where the earlier demo's curves were flat from 80-120 on all three sets
    PRESETS = {
        **PRESETS,
        "demo": {**PRESETS["demo"], "train.iterations": 120},
        "bench": {"train.iterations": 500},
    }
