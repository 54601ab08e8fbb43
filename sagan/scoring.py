"""Scoring images in batches and the image-level metrics: shared by the trainer (test-oracle
selection) and the evaluator, so that both score exactly alike."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from sagan.data.loading import to_unit_range
from sagan.errors import TrainingError
from sagan.methods.base import Method


def check_finite(scored: dict[str, np.ndarray], source: str, images: str = "test images") -> None:
    """NaN or infinite scores have no AUC (nor a JSON form): the model diverged, which is named with
    `source` (the checkpoint, or the run and iteration) instead of failing inside the metrics."""
    for key in ("score", *(k for k in scored if k.startswith("extra_"))):
        bad = int((~np.isfinite(scored[key])).sum())
        if bad:
            what = "scores" if key == "score" else f"{key.removeprefix('extra_')} scores"
            raise TrainingError(
                f"{source}: the model gives non-finite {what} for {bad} of {len(scored[key])} {images} "
                "(it diverged); train again with a smaller learning rate in a new --out folder"
            )


def image_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Image-level AUC and AP (abnormal = 1), as fractions."""
    return {"auc": float(roc_auc_score(labels, scores)), "ap": float(average_precision_score(labels, scores))}


@torch.no_grad()
def score_images(
    method: Method, images: torch.Tensor, batch_size: int, seed: int, keep: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Scores of uint8 images (N, H, W), in batched passes of a method in eval mode.

    Returns "score" (N,), "extra_<name>" (N,) for the method's other scores, and for the rows `keep`
    the "restored" images and anomaly "map"s (k, H, W) the method has. `seed` seeds the generator of
    methods whose prediction is random (SAGAN with `gate_at_test`), so that scores are reproducible.
    """
    rng = torch.Generator(device=images.device).manual_seed(seed + 1)
    keep_set = set(keep.tolist()) if keep is not None else set()
    scores, extra, restored, maps = [], {}, [], []
    for i in range(0, len(images), batch_size):
        x = to_unit_range(images[i : i + batch_size])  # (b, 1, H, W)
        out = method.predict(x, rng)
        scores.append(out.score.float().cpu())
        for name, value in out.extra.items():
            extra.setdefault(name, []).append(value.float().cpu())
        rows = [j - i for j in range(i, i + len(x)) if j in keep_set]
        if rows and out.restored is not None:
            restored.append(out.restored[rows, 0].float().cpu())
        if rows and out.map is not None:
            maps.append(out.map[rows, 0].float().cpu())
    result = {"score": torch.cat(scores).double().numpy()}
    result.update({f"extra_{name}": torch.cat(v).double().numpy() for name, v in extra.items()})
    if restored:
        result["restored"] = torch.cat(restored).numpy()
    if maps:
        result["map"] = torch.cat(maps).numpy()
    return result
