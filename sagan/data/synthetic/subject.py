"""One rendered subject: its image, the same subject without its findings, the mask, the boxes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from threadpoolctl import threadpool_limits

from sagan.data.synthetic.chest import render_chest
from sagan.data.synthetic.fundus import render_fundus
from sagan.data.synthetic.specs import GROUP_LABEL, GROUPS, MASK_THRESHOLD, dataset_spec, subject_rng


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


@dataclass
class Subject:
    """One rendered subject at RENDER_SIZE."""

    image: np.ndarray  # (S, S) uint8, as written to the dataset
    normal: np.ndarray  # (S, S) uint8, the same subject (same noise) without its findings
    mask: np.ndarray  # (S, S) bool, the pixels the findings change; empty for normal subjects
    findings: list[str]  # kinds of the findings, [] for normal subjects


def render_subject(name: str, seed: int, group: str, index: int) -> Subject:
    """The `index`-th subject of a split group (one of GROUPS: train/0, ..., test/1, val/0, val/1)."""
    with one_blas_thread():
        return draw_subject(name, seed, group, index)


def one_blas_thread() -> threadpool_limits:
    # the smooth fields are tiny matrix products; BLAS threads only add synchronisation cost
    # (25x slower on a busy 2-core machine) and one thread keeps the sums in a fixed order
    return threadpool_limits(1, user_api="blas")


def draw_subject(name: str, seed: int, group: str, index: int) -> Subject:
    """`render_subject` for a caller that already holds `one_blas_thread()` (the render loop sets it
    once for all subjects rather than once per subject)."""
    spec = dataset_spec(name)
    if group not in GROUP_LABEL:
        raise ValueError(f"unknown split group {group!r}; known: {', '.join(GROUPS)}")
    rng = subject_rng(seed, name, group, index)
    abnormal = GROUP_LABEL[group] == 1
    r = render_chest(rng, spec, abnormal) if spec.kind == "chest" else render_fundus(rng, abnormal)
    normal = _to_uint8(r.clean + r.noise)
    if not abnormal:
        return Subject(normal, normal, np.zeros(normal.shape, bool), [])
    # the noise is the same in both renderings, so only the findings' own pixels differ
    return Subject(_to_uint8(r.sick + r.noise), normal, np.abs(r.sick - r.clean) > MASK_THRESHOLD, r.findings)


def mask_boxes(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (x_min, y_min, x_max, y_max) of the 8-connected components, in pixel-edge
    coordinates: a component covering columns a..b has x_min = a, x_max = b + 1."""
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    return [(sl[1].start, sl[0].start, sl[1].stop, sl[0].stop) for sl in ndimage.find_objects(labels)]
