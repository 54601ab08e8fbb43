"""CutPaste, FPI and PII synthesis (sagan.patch_synthesis) against NSA's chest settings, over many draws."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from sagan.patch_synthesis import (
    BACKGROUND,
    FACTOR_BOUNDS,
    MODES,
    PatchSynthesis,
    binary_median,
    scaled_kernel,
    synthesize,
)
from tests.phantoms import one_thread, one_torch_thread, phantoms  # noqa: F401 (one_thread: autouse fixture)

SIZE = 64


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return phantoms(256, SIZE, seed=10)


@pytest.fixture(scope="module")
def draws(images) -> dict:
    with one_torch_thread():
        return {mode: synthesize(images, torch.Generator().manual_seed(1), mode) for mode in MODES}


def grey(x: torch.Tensor) -> torch.Tensor:
    return ((x[:, 0] + 1) * 127.5).round()


@pytest.mark.parametrize("mode", MODES)
def test_patch_counts_and_half_widths(draws, mode):
    s = draws[mode]
    count = s.applied.sum(1)
    assert count.max() <= 3 and (count >= 1).float().mean() > 0.9  # 1..3 patches; the first always tried
    if mode != "pii":  # PII skips patches under 50 mask pixels, the others place almost every patch
        # first patch always, two more with probability 1/2 each: 2 on average
        assert abs(count.float().mean().item() - 2.0) < 0.15
    lo, hi = round(0.03 * SIZE), round(0.40 * SIZE)  # half-widths 3%..40% of the side: 2..26 px
    assert s.half_widths.min() >= lo and s.half_widths.max() <= hi
    # (0.05 + Gamma(2, 0.03)) * 64, truncated: about 6.5 px on average
    assert 5.5 < s.half_widths.float().mean().item() < 7.5
    h = s.src_boxes[..., 1] - s.src_boxes[..., 0]
    assert (h[s.applied] <= 2 * s.half_widths[..., 0][s.applied]).all()


@pytest.mark.parametrize("mode", MODES)
def test_label_ranges(draws, mode):
    s = draws[mode]
    assert s.labels.shape == (256, 1, SIZE, SIZE) and s.images.shape == (256, 1, SIZE, SIZE)
    assert s.labels.min() >= 0 and s.labels.max() <= 1
    assert s.images.min() >= -1 and s.images.max() <= 1
    if mode == "cutpaste":
        assert set(s.labels.unique().tolist()) == {0.0, 1.0}  # binary
        assert torch.equal(s.factor, torch.ones(256))
    else:  # continuous: one factor per image, U(0.05, 0.95)
        lo, hi = FACTOR_BOUNDS
        assert s.factor.min() >= lo and s.factor.max() <= hi
        assert abs(s.factor.mean().item() - 0.5) < 0.05
        for i in range(256):
            values = s.labels[i].unique()
            assert set(values.tolist()) <= {0.0, s.factor[i].item()}
        assert (s.labels.amax((1, 2, 3)) > 0).float().mean() > 0.5  # most images carry a label


def test_labels_mark_changed_pixels_of_the_patches_only(draws, images):
    for mode in MODES:
        s = draws[mode]
        changed = (grey(s.images) - grey(images)).abs() > 1
        labelled = s.labels[:, 0] > 0
        inside = torch.zeros_like(labelled)
        for i, k in zip(*torch.nonzero(s.applied, as_tuple=True)):
            y0, y1, x0, x1 = s.dst_boxes[i, k].tolist()
            inside[i, y0:y1, x0:x1] = True
        assert not (changed & ~inside).any()  # nothing changes outside the placed patches
        # labels: the changed pixels of the patches, cleaned by a 3x3 median (which may fill a pixel
        # between two patches, or a pixel that changed by at most one grey level inside a patch)
        assert (labelled & ~inside).sum() <= 0.01 * labelled.sum()
        assert (labelled & changed).sum() >= 0.7 * labelled.sum()
        assert (labelled & changed).sum() >= 0.7 * changed.sum()


def single_patch(s) -> list[int]:
    return [i for i in range(len(s.applied)) if s.applied[i].tolist() == [True, False, False]]


def test_cutpaste_patch_comes_from_the_same_image_shifted(draws, images):
    s = draws["cutpaste"]
    assert torch.equal(s.src_index, torch.arange(256))
    shifted = (s.src_boxes != s.dst_boxes).any(-1)[s.applied]
    assert shifted.float().mean() > 0.99
    same_size = (s.src_boxes[..., 1] - s.src_boxes[..., 0]) == (s.dst_boxes[..., 1] - s.dst_boxes[..., 0])
    assert same_size[s.applied].all()
    g, out = grey(images), grey(s.images)
    obj = binary_median(g > BACKGROUND, scaled_kernel(7, SIZE))
    checked = 0
    for i in single_patch(s):
        y0, y1, x0, x1 = s.src_boxes[i, 0].tolist()
        v0, v1, u0, u1 = s.dst_boxes[i, 0].tolist()
        moved = obj[i, y0:y1, x0:x1] | obj[i, v0:v1, u0:u1]  # object pixels of source or destination
        assert torch.equal(out[i, v0:v1, u0:u1][moved], g[i, y0:y1, x0:x1][moved])  # pasted verbatim
        assert torch.equal(out[i, v0:v1, u0:u1][~moved], g[i, v0:v1, u0:u1][~moved])
        overlap = (obj[i, y0:y1, x0:x1] & obj[i, v0:v1, u0:u1]).sum() / obj[i, y0:y1, x0:x1].sum()
        assert overlap > 0.7  # lands on the object
        checked += 1
    assert checked > 20


def test_fpi_patch_comes_from_another_image_at_the_same_coordinates(draws, images):
    s = draws["fpi"]
    assert (s.src_index != torch.arange(256)).all()
    assert torch.equal(s.src_boxes[s.applied], s.dst_boxes[s.applied])
    g, out = grey(images), grey(s.images)
    checked = 0
    for i in single_patch(s):
        y0, y1, x0, x1 = s.src_boxes[i, 0].tolist()
        j, f = s.src_index[i].item(), s.factor[i].item()
        expected = torch.floor((1 - f) * g[i, y0:y1, x0:x1] + f * g[j, y0:y1, x0:x1])
        obj = (g[i, y0:y1, x0:x1] > BACKGROUND) | (g[j, y0:y1, x0:x1] > BACKGROUND)
        inner = obj.clone()  # away from the object border, where the 3x3 median may differ
        inner[1:-1, 1:-1] &= obj[:-2, 1:-1] & obj[2:, 1:-1] & obj[1:-1, :-2] & obj[1:-1, 2:]
        assert torch.allclose(out[i, y0:y1, x0:x1][inner], expected[inner])
        checked += 1
    assert checked > 20


def test_pii_is_opencv_mixed_gradient_blending_of_another_image_in_place(draws, images):
    s = draws["pii"]
    assert (s.src_index != torch.arange(256)).all()
    assert torch.equal(s.src_boxes[s.applied], s.dst_boxes[s.applied])
    g, out = grey(images).to(torch.uint8).numpy(), grey(s.images).to(torch.uint8).numpy()
    checked = 0
    for i in single_patch(s):  # one patch: the result is one seamlessClone call on the original image
        y0, y1, x0, x1 = s.src_boxes[i, 0].tolist()
        mask = np.full((y1 - y0, x1 - x0), int(np.ceil(s.factor[i].item() * 255)), np.uint8)
        mask[0], mask[-1], mask[:, 0], mask[:, -1] = 0, 0, 0, 0
        patch = cv2.merge([np.ascontiguousarray(g[s.src_index[i], y0:y1, x0:x1])] * 3)
        centre = (x1 - (x1 - x0) // 2, y0 + (y1 - y0) // 2)
        expected = cv2.seamlessClone(patch, cv2.merge([g[i]] * 3), mask, centre, cv2.MIXED_CLONE)[..., 0]
        assert np.array_equal(out[i], expected)
        checked += 1
    assert checked > 20


@pytest.mark.parametrize("mode", MODES)
def test_synthesis_is_seeded(images, mode):
    t = PatchSynthesis(mode)
    a = t(images[:32], torch.Generator().manual_seed(7))
    b = t(images[:32], torch.Generator().manual_seed(7))
    c = t(images[:32], torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_median_kernels_scale_with_the_image():
    assert scaled_kernel(5, 224) == 5 and scaled_kernel(7, 224) == 7  # NSA's own sizes
    assert scaled_kernel(5, 64) == scaled_kernel(7, 64) == scaled_kernel(7, 32) == 3
    grain = torch.zeros(1, 9, 9, dtype=torch.bool)
    grain[0, 4, 4] = True  # a single pixel disappears, a 3x3 block stays
    assert not binary_median(grain, 3).any()
    grain[0, 3:6, 3:6] = True
    assert binary_median(grain, 3)[0, 4, 4]
