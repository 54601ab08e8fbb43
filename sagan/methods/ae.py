"""AE: the reconstruction baseline of Table 2 as the Med-AD benchmark runs it (MedIAnomaly, AE4AD).

Trained on labelled normal images only with the mean squared error; anomaly score = mean squared
reconstruction error per image. Adam, constant learning rate, last checkpoint.
"""

from __future__ import annotations

import torch

from sagan.experiments import NORMAL_ONLY
from sagan.methods import register
from sagan.methods.reconstruction import PAPER_BUDGET, AutoEncoderConfig, Reconstruction
from sagan.models.autoencoder import AutoEncoder


@register
class AE(Reconstruction):
    """Autoencoder on normal images (Med-AD benchmark); score = mean squared reconstruction error."""

    name = "ae"
    group = NORMAL_ONLY
    Config = AutoEncoderConfig
    PRESETS = {
        "paper": PAPER_BUDGET,
        # demo (32 px, batch 16): the benchmark network itself (14 ms an iteration on one CPU thread);
        # the test AUC on the synthetic sets stops rising after about 500 iterations (docs/methods.md)
        "demo": {"train.iterations": 500, "train.lr_decay": "none"},
        # bench: the plateaus 1400 / 1500 / 1000 of a 2000-iteration study (3 seeds), so 1500 at 75% of the run
        # (benchmarks/RESULTS.md, "The bench budgets")
        "bench": {"train.iterations": 2000},
    }

    def build_network(self, cfg: AutoEncoderConfig, image_size: int) -> AutoEncoder:
        return AutoEncoder(image_size, cfg.base_width, cfg.hidden_dim, cfg.latent_dim)

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": ((self.net(x) - x) ** 2).mean()}
