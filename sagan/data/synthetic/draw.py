"""Drawing primitives of the phantoms: the pixel grid, soft shapes, smooth random fields."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from sagan.data.synthetic.specs import RENDER_SIZE


@functools.cache
def grid() -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1]: x to the right, y downwards."""
    c = ((np.arange(RENDER_SIZE, dtype=np.float32) + 0.5) / RENDER_SIZE) * 2 - 1
    return np.meshgrid(c, c)


def soft_inside(d: np.ndarray, width: float) -> np.ndarray:
    """1 where d <= -width, 0 where d >= width, smoothstep between. The support is compact, so
    shapes built from it change no pixel beyond their edge band (which keeps masks tight)."""
    t = d * np.float32(-0.5 / width)
    t += np.float32(0.5)
    np.maximum(t, 0.0, out=t)
    np.minimum(t, 1.0, out=t)
    edge = t * np.float32(-2)
    edge += np.float32(3)
    t *= t
    t *= edge
    return t


@functools.cache
def _interp_matrix(cells: int) -> tuple[np.ndarray, float]:
    """Gaussian interpolation from `cells` control points to RENDER_SIZE pixels (rows sum to 1),
    and the variance factor that brings the interpolated field back to unit variance."""
    pos = (np.arange(RENDER_SIZE) + 0.5) / RENDER_SIZE * cells - 0.5
    w = np.exp(-0.5 * ((pos[:, None] - np.arange(cells)[None, :]) / 0.6) ** 2)
    w /= w.sum(axis=1, keepdims=True)
    return w.astype(np.float32), float(np.mean((w**2).sum(axis=1)))


def smooth_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Unit-variance smooth random field: a cells x cells grid of normals, upsampled (A Z A^T)."""
    a, var = _interp_matrix(cells)
    z = rng.standard_normal((cells, cells), dtype=np.float32)
    return (a @ z @ a.T) / np.float32(var)


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def ellipse_radius(dx: np.ndarray, dy: np.ndarray, rx: float, ry: float) -> np.ndarray:
    """Normalised elliptical radius (1 on the ellipse). Squares via np.square: float32 ** 4 is slow."""
    return np.sqrt(np.square(dx / rx) + np.square(dy / ry))


def pixel_window(xs: np.ndarray, ys: np.ndarray) -> tuple[slice, slice]:
    """(rows, cols) slices of the pixels whose centres span the given image coordinates (+1 px)."""

    def span(c: np.ndarray) -> slice:
        lo = int(np.floor((c.min() + 1) / 2 * RENDER_SIZE - 0.5)) - 1
        hi = int(np.ceil((c.max() + 1) / 2 * RENDER_SIZE - 0.5)) + 2
        return slice(min(max(lo, 0), RENDER_SIZE), min(max(hi, 0), RENDER_SIZE))

    return span(ys), span(xs)


@dataclass
class Rendering:
    clean: np.ndarray  # intensity in [0, 1] without findings, before noise
    sick: np.ndarray  # the same with the findings
    noise: np.ndarray  # added to both
    findings: list[str]
