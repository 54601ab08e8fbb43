"""Box geometry shared by the pseudo-anomaly transforms (SAGAN's FPI, the NSA-style patch synthesis).

A box is four integers [y0, y1, x0, x1) on an image; every helper works on a batch of boxes at once.
"""

from __future__ import annotations

import torch


def centred_boxes(centre: torch.Tensor, half: torch.Tensor, size: int) -> torch.Tensor:
    """(n, 4) boxes [c - half, c + half) per axis, clipped to [0, size].

    centre: (n, 2) integer [cy, cx]; half: (n, 2) per-axis or (n, 1) square half-widths.
    """
    start = (centre - half).clamp(0, size)
    stop = (centre + half).clamp(0, size)
    return torch.stack([start[:, 0], stop[:, 0], start[:, 1], stop[:, 1]], dim=1)


def box_masks(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(n, H, W) bool: True inside each box."""
    ys = torch.arange(height, device=boxes.device)[None, :, None]  # (1, H, 1)
    xs = torch.arange(width, device=boxes.device)[None, None, :]  # (1, 1, W)
    b = boxes[:, :, None, None]  # (n, 4, 1, 1)
    return (ys >= b[:, 0]) & (ys < b[:, 1]) & (xs >= b[:, 2]) & (xs < b[:, 3])


def other_indices(n: int, rng: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n,) for each image of a batch, the index of a different, uniformly chosen image of it (n >= 2)."""
    return (torch.arange(n, device=device) + torch.randint(1, n, (n,), generator=rng, device=device)) % n
