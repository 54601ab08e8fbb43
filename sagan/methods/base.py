"""The small interface every method implements (style.md, point 3).

A method owns its networks and optimisers and knows how to take one training step and how to
score images. It never loops, logs, saves files or computes metrics: the trainer and the evaluator
do that for every method alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class Batch:
    """One training iteration's inputs, already on the device, in [-1, 1], shape (B, 1, H, W)."""

    normal: torch.Tensor  # x_n, labelled normals
    unlabeled: torch.Tensor | None  # x_u, None in the "0_u" setting
    pseudo: torch.Tensor  # x_p = FPI(x_n)
    pseudo_mask: torch.Tensor  # FPI blend mask, (B, 1, H, W)


class Method(nn.Module):
    """Base class: subclasses set `name`, `Config`, `DEMO` and implement the methods below."""

    name: ClassVar[str]
    Config: ClassVar[type]
    DEMO: ClassVar[dict[str, Any]] = {}  # model-config overrides of the `demo` preset
    uses_unlabeled: ClassVar[bool] = True
    group: ClassVar[str] = "normal + unlabelled"  # Table 2 category

    def __init__(self, cfg: Any, image_size: int):
        super().__init__()
        self.cfg = cfg
        self.image_size = image_size

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def schedulers(self, iterations: int) -> dict[str, Any]:
        return {}

    def training_step(self, batch: Batch, step: int, rng: torch.Generator) -> dict[str, float]:
        """One iteration (step counts from 0). Returns named losses as detached floats."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, images: torch.Tensor, rng: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Score images: returns {"score": (B,), "restored": (B,1,H,W), "map": (B,1,H,W)}."""
        raise NotImplementedError
