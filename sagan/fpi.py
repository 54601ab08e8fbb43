"""Foreign patch interpolation (FPI, Tan et al.): the pseudo-anomaly transform, data side, batched.

As the authors' code does it at 64 px: one square box per image, centre per axis uniform in
[0.2*S, 0.8*S), half-width uniform integer in [3, 13) (scaled by S/64 at other sizes), box
[c-w, c+w) clipped to the image; alpha ~ U[0, 1) per image;
x_p = (1 - m) * x + m * src, m = alpha inside the box and 0 outside, where src is another, randomly
chosen image of the same batch (a labelled normal) at the same coordinates.
"""

from __future__ import annotations

import torch

from sagan.boxes import box_masks, centred_boxes, other_indices


def fpi_boxes(n: int, size: int, rng: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, 4) integer boxes [y0, y1, x0, x1), clipped to the image."""
    lo, hi = int(0.2 * size), int(0.8 * size)  # 12, 51 at 64 px: centres 12..50
    w_lo, w_hi = max(1, round(3 * size / 64)), max(2, round(13 * size / 64))  # 3, 13 at 64 px
    centre = torch.randint(lo, hi, (n, 2), generator=rng, device=device)  # (n, [cy, cx])
    half = torch.randint(w_lo, w_hi, (n, 1), generator=rng, device=device)
    return centred_boxes(centre, half, size)


def foreign_patch_interpolation(x: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo anomalies of a batch of images (B, C, H, W): returns (x_p, m), m the blend mask (B, 1, H, W)."""
    b, _, h, w = x.shape
    if b < 2:
        raise ValueError("FPI needs at least two images per batch (the patch comes from another image)")
    boxes = fpi_boxes(b, h, rng, x.device)  # square boxes: the same size drives both axes
    alpha = torch.rand(b, generator=rng, device=x.device)
    src_index = other_indices(b, rng, x.device)  # the source is a different image of the batch
    inside = box_masks(boxes, h, w)  # (B, H, W)
    m = (inside.to(x.dtype) * alpha[:, None, None])[:, None]  # (B, 1, H, W)
    return (1 - m) * x + m * x[src_index], m
