"""Self-supervised patch synthesis: CutPaste, FPI and PII the way NSA unifies them (data side, batched).

Facts from NSA's `patch_ex` (Schlueter et al., ECCV 2022; hmsch/natural-synthetic-anomalies) with the
chest X-ray settings of the Med-AD benchmark (caiyu6666/MedIAnomaly `ssl/one_stage/train_med.py`):
- up to 3 patches per image: the first is always attempted, each further one with probability 1/2;
- half-widths per axis: (0.05 + Gamma(shape 2, scale 0.03)) * side, clipped to [0.03, 0.40] * side;
- source-patch centre uniform in [min half-width, side - min half-width) per axis, redrawn until more
  than 70% of the patch is object (intensity > 20 of 255; the background of a radiograph is black);
- CutPaste: the patch comes from the same image and is pasted at a random shifted place where more
  than 70% of it overlaps the object; it replaces the pixels (binary label);
- FPI: the patch comes from another image at the same coordinates, blended uniformly with one factor
  f ~ U(0.05, 0.95) per image, floored to grey levels (label f);
- PII: as FPI, but Poisson-blended in mixed-gradient mode (OpenCV `seamlessClone`, MIXED_CLONE) with
  the mask scaled to ceil(255 f) and a zero border (label f); patches under 50 mask pixels are skipped;
- only object pixels (of the source or the destination) change; the label marks the pixels of the
  patches that changed by more than 1 grey level, times f for FPI and PII.

Our choices at 64 px (NSA runs at 224 px): the median filters that clean the object mask (7x7) and
the label (5x5) scale with the image, but stay at least 3x3 (so 3x3 at 64 and 32 px: a 5x5 median
would erase the smallest patches, none would leave single-pixel grain in the labels); rejection sampling draws uniformly among all valid places at once instead of up to 200
random tries (identical unless fewer than ~1% of the places are valid, where NSA gives up).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from sagan.boxes import box_masks, other_indices

MODES = ("cutpaste", "fpi", "pii")
NSA_SIZE = 224  # side of the images NSA synthesises on (256 px, cropped to 224)
MAX_PATCHES = 3
HALF_WIDTH_BOUNDS = (0.03, 0.40)  # fraction of the side
HALF_WIDTH_GAMMA = (2.0, 0.03, 0.05)  # shape, scale, offset (fractions of the side)
FACTOR_BOUNDS = (0.05, 0.95)
BACKGROUND = 20.0  # grey levels above black that count as object
MIN_OBJECT, MIN_OVERLAP = 0.7, 0.7
LABEL_TOL = 1.0  # grey levels a pixel must change by to be labelled
MIN_CLONE_AREA = 50  # seamlessClone fails on smaller masks
OBJECT_MEDIAN, LABEL_MEDIAN = 7, 5  # kernel sizes at NSA_SIZE


@dataclass
class Synthesis:
    """A batch of synthetic anomalies and how they were made (the how is for tests and figures)."""

    images: torch.Tensor  # (B, 1, H, W) in [-1, 1]
    labels: torch.Tensor  # (B, 1, H, W) in [0, 1]
    src_boxes: torch.Tensor  # (B, 3, 4) [y0, y1, x0, x1) where each patch was taken from
    dst_boxes: torch.Tensor  # (B, 3, 4) where it was put
    half_widths: torch.Tensor  # (B, 3, 2) drawn half-widths [h, w], pixels
    applied: torch.Tensor  # (B, 3) bool: the patch was attempted and found a place
    src_index: torch.Tensor  # (B,) image each patch came from
    factor: torch.Tensor  # (B,) blending factor (1 for CutPaste)


def scaled_kernel(k: int, size: int) -> int:
    """Odd median-filter size for an image of `size` px from NSA's `k` at 224 px, at least 3."""
    return max(3, 2 * round((k * size / NSA_SIZE - 1) / 2) + 1)


def binary_median(mask: torch.Tensor, k: int) -> torch.Tensor:
    """k x k median of a (B, H, W) bool mask with replicated borders (as cv2.medianBlur)."""
    if k <= 1:
        return mask
    padded = F.pad(mask[:, None].float(), (k // 2,) * 4, mode="replicate")
    return F.avg_pool2d(padded, k, stride=1)[:, 0] > 0.5


def sample_half_widths(n: int, size: int, rng: torch.Generator, device) -> torch.Tensor:
    """(n, 2) integer half-widths: int(clip((offset + Gamma(2, scale)) * size, lo, hi)) per axis."""
    shape, scale, offset = HALF_WIDTH_GAMMA
    assert shape == 2.0  # Gamma(2, s) = sum of two Exp(s): sampled from the seeded generator
    u = torch.rand(n, 2, 2, generator=rng, device=device)
    gamma = -scale * torch.log1p(-u).sum(-1)
    lo, hi = (round(b * size) for b in HALF_WIDTH_BOUNDS)
    return ((offset + gamma) * size).clamp(lo, hi).long()


def pick_uniform(valid: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One uniformly chosen True cell per (H, W) map of valid (B, H, W): (B, 2) [y, x] and (B,) found."""
    score = (1 + torch.rand(valid.shape, generator=rng, device=valid.device)) * valid  # 0 if invalid
    flat = score.flatten(1).argmax(1)
    return torch.stack([flat // valid.shape[2], flat % valid.shape[2]], 1), valid.flatten(1).any(1)


def window_sums(mask: torch.Tensor, half: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For every centre of a (B, S, S) mask, the sum and the area of the box [c - half, c + half) clipped
    to the image (half: (B, 2) per image), by an integral image: two (B, S, S) maps."""
    n, size, _ = mask.shape
    integral = F.pad(mask.float().cumsum(1).cumsum(2), (1, 0, 1, 0))  # (B, S+1, S+1)
    c = torch.arange(size, device=mask.device)
    y0, y1 = ((c[None] - half[:, :1]).clamp(0, size), (c[None] + half[:, :1]).clamp(0, size))  # (B, S)
    x0, x1 = ((c[None] - half[:, 1:]).clamp(0, size), (c[None] + half[:, 1:]).clamp(0, size))
    rows = integral.gather(1, y1[:, :, None].expand(-1, -1, size + 1)) - integral.gather(
        1, y0[:, :, None].expand(-1, -1, size + 1)
    )  # (B, S, S+1): column prefix sums over each row band
    sums = rows.gather(2, x1[:, None].expand(-1, size, -1)) - rows.gather(2, x0[:, None].expand(-1, size, -1))
    area = (y1 - y0)[:, :, None] * (x1 - x0)[:, None, :]
    return sums, area


def source_boxes(obj_src: torch.Tensor, half: torch.Tensor, rng: torch.Generator):
    """Source boxes whose object fraction is above MIN_OBJECT: (B, 4) boxes and (B,) found."""
    size = obj_src.shape[1]
    sums, area = window_sums(obj_src, half)
    lo = round(HALF_WIDTH_BOUNDS[0] * size)
    c = torch.arange(size, device=obj_src.device)
    in_range = (c >= lo) & (c < size - lo)  # NSA's centre range
    centre, found = pick_uniform((sums / area > MIN_OBJECT) & in_range[:, None] & in_range[None, :], rng)
    start, stop = (centre - half).clamp(0, size), (centre + half).clamp(0, size)
    return torch.stack([start[:, 0], stop[:, 0], start[:, 1], stop[:, 1]], 1), found


def shifted_boxes(obj: torch.Tensor, obj_fft: torch.Tensor, src: torch.Tensor, rng: torch.Generator):
    """CutPaste destinations: the source box moved to a random place where more than MIN_OVERLAP of its
    object pixels land on object. Overlaps of every placement at once by FFT correlation; obj_fft is
    the real FFT of obj (no padding: a valid placement never wraps)."""
    n, size, _ = obj.shape
    h, w = src[:, 1] - src[:, 0], src[:, 3] - src[:, 2]
    patch = box_masks(src, size, size) & obj  # (B, S, S) source object pixels, in place
    # move each patch to the top-left corner, then correlate with the destination object mask
    ys, xs = torch.arange(size, device=obj.device), torch.arange(size, device=obj.device)
    gy = (ys[None, :, None] + src[:, 0, None, None]).clamp(max=size - 1)
    gx = (xs[None, None, :] + src[:, 2, None, None]).clamp(max=size - 1)
    kernel = patch.float().flatten(1).gather(1, (gy * size + gx).flatten(1)).view(n, size, size)
    kernel = kernel * ((ys[None, :, None] < h[:, None, None]) & (xs[None, None, :] < w[:, None, None]))
    k = torch.fft.rfft2(kernel, s=(size, size))
    overlap = torch.fft.irfft2(obj_fft * k.conj(), s=(size, size))[:, :size, :size].round()  # at (y0, x0)
    count = kernel.flatten(1).sum(1)
    # NSA's centre range [h//2 + 1, S - h//2 - 1), box [c - h//2, c + (h+1)//2), as top-left corners
    y_lo, y_hi = 1, size - h // 2 - 1 - h // 2
    x_lo, x_hi = 1, size - w // 2 - 1 - w // 2
    ok_y = (ys[None] >= y_lo) & (ys[None] < y_hi[:, None])  # (B, S)
    ok_x = (xs[None] >= x_lo) & (xs[None] < x_hi[:, None])
    frac = overlap / count.clamp(min=1)[:, None, None]
    valid = (frac > MIN_OVERLAP) & ok_y[:, :, None] & ok_x[:, None, :] & (count > 0)[:, None, None]
    corner, found = pick_uniform(valid, rng)
    return torch.stack([corner[:, 0], corner[:, 0] + h, corner[:, 1], corner[:, 1] + w], 1), found


def moved(img: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """(B, H, W): each image shifted so that its src box lands on its dst box (clamped outside)."""
    n, size, _ = img.shape
    ar = torch.arange(size, device=img.device)
    gy = (ar[None, :, None] - dst[:, 0, None, None] + src[:, 0, None, None]).clamp(0, size - 1)
    gx = (ar[None, None, :] - dst[:, 2, None, None] + src[:, 2, None, None]).clamp(0, size - 1)
    return img.flatten(1).gather(1, (gy * size + gx).flatten(1)).view(n, size, size)


def poisson_blend(dest: np.ndarray, src: np.ndarray, box: np.ndarray, factor: float) -> np.ndarray | None:
    """PII of one patch (same coordinates in both images) with OpenCV; None where NSA skips it."""
    y0, y1, x0, x1 = (int(v) for v in box)
    mask = np.full((y1 - y0, x1 - x0), int(np.ceil(factor * 255)), np.uint8)
    mask[0], mask[-1], mask[:, 0], mask[:, -1] = 0, 0, 0, 0  # zero border against artefacts (NSA)
    if (mask > 0).sum() < MIN_CLONE_AREA:
        return None
    centre = (x1 - (x1 - x0) // 2, y0 + (y1 - y0) // 2)  # (x, y)
    patch = cv2.merge([np.ascontiguousarray(src[y0:y1, x0:x1])] * 3)
    try:
        out = cv2.seamlessClone(patch, cv2.merge([dest] * 3), mask, centre, cv2.MIXED_CLONE)
    except cv2.error:
        return None
    return out[..., 0]


def synthesize(x: torch.Tensor, rng: torch.Generator, mode: str) -> Synthesis:
    """Synthetic anomalies of a batch of normal images x (B, 1, H, W) in [-1, 1] (B >= 2 unless CutPaste)."""
    if mode not in MODES:
        raise ValueError(f"unknown synthesis mode {mode!r}; choose one of {', '.join(MODES)}")
    n, _, size, _ = x.shape
    dev = x.device
    grey = ((x[:, 0] + 1) * 127.5).round()  # (B, H, W) grey levels 0..255, exact for 8-bit data
    obj = binary_median(grey > BACKGROUND, scaled_kernel(OBJECT_MEDIAN, size))
    src_index = torch.arange(n, device=dev) if mode == "cutpaste" else other_indices(n, rng, dev)
    lo, hi = FACTOR_BOUNDS
    factor = (
        torch.ones(n, device=dev)
        if mode == "cutpaste"
        else lo + (hi - lo) * torch.rand(n, generator=rng, device=dev)
    )
    attempt = torch.rand(n, MAX_PATCHES, generator=rng, device=dev) < 0.5
    attempt[:, 0] = True
    src_img, obj_src = grey[src_index], obj[src_index]
    out, label_mask = grey.clone(), torch.zeros_like(obj)
    obj_fft = torch.fft.rfft2(obj.float(), s=(size, size)) if mode == "cutpaste" else None
    src_boxes = torch.zeros(n, MAX_PATCHES, 4, dtype=torch.long, device=dev)
    dst_boxes, halves = src_boxes.clone(), torch.zeros(n, MAX_PATCHES, 2, dtype=torch.long, device=dev)
    applied = torch.zeros(n, MAX_PATCHES, dtype=torch.bool, device=dev)
    for k in range(MAX_PATCHES):
        halves[:, k] = sample_half_widths(n, size, rng, dev)
        src, found = source_boxes(obj_src, halves[:, k], rng)
        dst = src
        if mode == "cutpaste":
            dst, placed = shifted_boxes(obj, obj_fft, src, rng)
            found = found & placed
        # only object pixels (of the source or the destination) change
        patch = box_masks(dst, size, size) & (moved(obj_src.float(), src, dst).bool() | obj)
        ok = attempt[:, k] & found
        if mode == "pii":
            out, ok = _pii_patches(out, src_img, dst, factor, ok)
        else:
            m = patch & ok[:, None, None]
            f = factor[:, None, None] * m
            blended = (1 - f) * out + f * moved(src_img, src, dst)
            out = torch.where(m, blended.floor() if mode == "fpi" else blended, out)
        in_box = box_masks(dst, size, size) & ok[:, None, None]
        label_mask = torch.where(in_box, patch, label_mask)  # a later patch overwrites its box (NSA)
        src_boxes[:, k], dst_boxes[:, k], applied[:, k] = src, dst, ok
    changed = label_mask & ((out - grey).abs() > LABEL_TOL)
    changed = binary_median(changed, scaled_kernel(LABEL_MEDIAN, size))
    labels = (changed.float() * factor[:, None, None])[:, None]
    images = (out / 127.5 - 1)[:, None].to(x.dtype)
    return Synthesis(images, labels, src_boxes, dst_boxes, halves, applied, src_index, factor)


def _pii_patches(out, src_img, boxes, factor, ok):
    """Poisson-blend one patch per image on the CPU (OpenCV); returns the images and which succeeded."""
    dest = out.to(torch.uint8).cpu().numpy()
    src = src_img.to(torch.uint8).cpu().numpy()
    box, fac, ok = boxes.cpu().numpy(), factor.cpu().numpy(), ok.cpu().numpy().copy()
    for i in np.flatnonzero(ok):
        blended = poisson_blend(dest[i], src[i], box[i], float(fac[i]))
        if blended is None:
            ok[i] = False
        else:
            dest[i] = blended
    return torch.from_numpy(dest).to(out.device, out.dtype), torch.from_numpy(ok).to(out.device)


class PatchSynthesis:
    """The data-side transform a method asks the trainer for: (x, rng) -> (x_p, label map)."""

    def __init__(self, mode: str):
        if mode not in MODES:
            raise ValueError(f"unknown synthesis mode {mode!r}; choose one of {', '.join(MODES)}")
        self.mode = mode

    def __call__(self, x: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        s = synthesize(x, rng, self.mode)
        return s.images, s.labels
