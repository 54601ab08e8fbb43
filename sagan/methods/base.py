"""The small interface every method implements (style.md, point 3).

A method owns its networks and optimisers, names the pseudo-anomaly transform its batches need, and
knows how to take one training step and how to score images. It never loops, logs, saves files,
changes learning rates or computes metrics: the trainer and the evaluator do that for every method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

# a pseudo-anomaly transform: (images (B, 1, H, W), rng) -> (pseudo anomalies, their masks (B, 1, H, W))
Transform = Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Batch:
    """One training iteration's inputs, already on the device, in [-1, 1], shape (B, 1, H, W)."""

    normal: torch.Tensor  # x_n, labelled normals
    unlabeled: torch.Tensor | None  # x_u; None for normal-only methods and in the "0_u" setting
    pseudo: torch.Tensor | None  # synthetic anomalies made from x_n by the method's transform
    pseudo_mask: torch.Tensor | None  # their per-pixel mask / label, (B, 1, H, W)


@dataclass
class Prediction:
    """What a method says about a batch of images."""

    score: torch.Tensor  # (B,) image-level anomaly score, higher = more anomalous
    map: torch.Tensor | None  # (B, 1, H, W) anomaly map at the input size, if the method has one
    restored: torch.Tensor | None  # (B, 1, H, W) restored / reconstructed image, if the method has one
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # other (B,) scores of the same model


class Method(nn.Module):
    """Base class: subclasses set the class attributes and implement the methods below."""

    name: ClassVar[str]  # registry key
    group: ClassVar[str]  # Table 2 category, one of sagan.experiments.GROUPS
    # Table 2 category of an extra score (`Prediction.extra`) where it is not the method's: DDAD-intra
    # uses only the module trained on normals
    extra_groups: ClassVar[dict[str, str]] = {}
    Config: ClassVar[type]  # dataclass of model settings, the paper's values as defaults
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}  # preset -> overrides ("model.x", "train.lr_decay")
    # the networks (attribute names) that `train.compile` compiles; never a critic whose gradient penalty
    # needs a double backward, which compiled graphs do not support
    compiled: ClassVar[tuple[str, ...]] = ()

    optimizers: dict[str, torch.optim.Optimizer]  # built in __init__

    def __init__(self, cfg: Any, image_size: int, iterations: int):
        """Builds the networks and `self.optimizers` (subclasses)."""
        super().__init__()
        self.cfg = cfg
        self.image_size = image_size
        self.iterations = iterations

    def transform(self) -> Transform | None:
        """The pseudo-anomaly transform the trainer applies to x_n for `Batch.pseudo`, or None."""
        return None

    def training_step(self, batch: Batch, step: int, rng: torch.Generator) -> dict[str, torch.Tensor]:
        """One iteration (step counts from 0); returns detached 0-d loss tensors by name."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, images: torch.Tensor, rng: torch.Generator | None = None) -> Prediction:
        """Score images (B, 1, H, W) in [-1, 1]; called in eval mode."""
        raise NotImplementedError

    def score_start(self, score: str = "score") -> int:
        """The iteration at which the stage that trains `score` (the method's, or an extra score's name)
        begins: 0, except for a staged method whose earlier stages leave the score untrained. Its
        validation curve is judged from there (sagan/report/curves.py)."""
        return 0
