"""sagan.localization: boxes scaled to a map, pixel AUROC, AUPRO (hand-computed and against a naive
threshold-by-threshold implementation), pointing game and best Dice."""

from __future__ import annotations

import json
from collections import deque

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from sagan import localization as loc
from sagan.data.ground_truth import pixel_ground_truth
from sagan.data.prepared import PreparedDataset, load_prepared, write_prepared


# --- boxes ------------------------------------------------------------------------------------
def test_box_on_pixel_edges_marks_exactly_its_pixels_at_any_resolution():
    box = [4 / 32, 6 / 32, 12 / 32, 14 / 32]  # x0, y0, x1, y1 as fractions
    mask = loc.boxes_to_mask([box], 32, 32)
    expected = np.zeros((32, 32), bool)
    expected[6:14, 4:12] = True
    assert np.array_equal(mask, expected)
    assert np.array_equal(loc.boxes_to_mask([box], 64, 64), expected.repeat(2, 0).repeat(2, 1))


def test_box_covers_the_pixels_whose_centres_it_holds():
    # x from 0.3 * 10 = 3.0 to 0.56 * 10 = 5.6 holds centres 3.5, 4.5, 5.5; y from 1.0 to 4.0: 1.5, 2.5, 3.5
    mask = loc.boxes_to_mask([[0.3, 0.05, 0.56, 0.2]], 20, 10)
    assert mask.shape == (20, 10)
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (1, 3, 3, 5)


def test_boxes_of_several_readers_are_united_and_tiny_boxes_keep_one_pixel():
    readers = [[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]]  # VinDr: overlapping boxes of two readers
    mask = loc.boxes_to_mask(readers, 8, 8)
    assert mask.sum() == 16 + 16 - 4 and mask[5, 5] and not mask[6, 6]
    tiny = loc.boxes_to_mask([[0.51, 0.26, 0.52, 0.27]], 8, 8)
    assert np.array_equal(np.argwhere(tiny), [[2, 4]])
    assert not loc.boxes_to_mask([], 8, 8).any()


# --- pixel AUROC ----------------------------------------------------------------------------------
def test_pixel_auroc_pools_the_pixels_of_all_images():
    maps = np.array([[[0.9, 0.1]], [[0.5, 0.4]]])  # two images of 1 x 2 pixels
    truth = np.array([[[1, 0]], [[0, 1]]], bool)
    # abnormal pixels 0.9 and 0.4 against normal 0.1 and 0.5: 0.9 wins twice, 0.4 once: 3 of 4 pairs
    assert loc.pixel_auroc(maps, truth) == 0.75
    assert np.isnan(loc.pixel_auroc(maps, np.zeros_like(truth)))


# --- AUPRO ------------------------------------------------------------------------------------
HAND_MAPS = np.array([[[0.9, 0.35, 0.1], [0.2, 0.6, 0.3]], [[0.4, 0.05, 0.15], [0.25, 0.35, 0.8]]])
HAND_TRUTH = np.array([[[1, 1, 0], [0, 0, 0]], [[0, 0, 0], [0, 0, 1]]], bool)


def test_pro_curve_and_aupro_hand_computed():
    """Regions: C1 = the two top-left pixels of image 1 (each pixel 1/2 of C1), C2 = one pixel of image
    2; 9 normal pixels. Thresholds from the top: 0.9 -> (FPR 0, PRO 1/4), 0.8 -> (0, 3/4), 0.6 -> (1/9,
    3/4), 0.4 -> (2/9, 3/4), 0.35 (a normal pixel tied with C1's second) -> (3/9, 1). Area to 0.3:
    3/4 * 2/9 on the flat part, then a trapezoid from (2/9, 3/4) to (0.3, 3/4 + 2.25 * 7/90 = 0.925):
    7/90 * (0.75 + 0.925) / 2 = 469/7200; (1200/7200 + 469/7200) / 0.3 = 1669/2160."""
    fpr, pro = loc.pro_curve(HAND_MAPS, HAND_TRUTH)
    np.testing.assert_allclose(fpr[:7], [0, 0, 0, 1 / 9, 2 / 9, 3 / 9, 4 / 9])
    np.testing.assert_allclose(pro[:7], [0, 0.25, 0.75, 0.75, 0.75, 1, 1])
    assert (fpr[-1], pro[-1]) == (1.0, 1.0)
    assert loc.aupro(HAND_MAPS, HAND_TRUTH) == pytest.approx(1669 / 2160, abs=1e-12)


def test_aupro_is_one_for_a_perfect_map_and_zero_for_an_inverted_one():
    assert loc.aupro(HAND_TRUTH * 1.0, HAND_TRUTH) == 1.0
    assert loc.aupro(1.0 - HAND_TRUTH, HAND_TRUTH) == 0.0
    assert np.isnan(loc.aupro(HAND_MAPS, np.zeros_like(HAND_TRUTH)))


def regions_by_flood_fill(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """8-connected regions of a 2-D mask, by breadth-first search."""
    seen, regions = np.zeros_like(mask, bool), []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        region, queue = [], deque([start])
        seen[start] = True
        while queue:
            r, c = queue.popleft()
            region.append((r, c))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if (
                        0 <= rr < mask.shape[0]
                        and 0 <= cc < mask.shape[1]
                        and mask[rr, cc]
                        and not seen[rr, cc]
                    ):
                        seen[rr, cc] = True
                        queue.append((rr, cc))
        regions.append(region)
    return regions


def aupro_naive(maps: np.ndarray, truth: np.ndarray, limit: float = 0.3) -> float:
    """Threshold by threshold: binarise, overlap of every region, FPR over normal pixels; then the
    trapezoids of the (FPR, PRO) points up to `limit`, the last one cut at `limit`."""
    regions = [(i, reg) for i in range(len(truth)) for reg in regions_by_flood_fill(truth[i])]
    points = [(0.0, 0.0)]
    for t in sorted(set(maps.ravel().tolist()), reverse=True):
        flagged = maps >= t
        overlaps = [np.mean([flagged[i][p] for p in reg]) for i, reg in regions]
        points.append(((flagged & ~truth).sum() / (~truth).sum(), np.mean(overlaps)))
    points.append((1.0, 1.0))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 >= limit:
            break
        if x1 > limit:  # cut the segment at the limit
            y1, x1 = y0 + (y1 - y0) * (limit - x0) / (x1 - x0), limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / limit


@pytest.mark.parametrize("seed", range(6))
def test_aupro_equals_the_naive_implementation_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    n, h, w = 3, 9, 11
    truth = np.zeros((n, h, w), bool)
    for i in range(n - 1):  # the last image is normal
        for _ in range(rng.integers(1, 4)):  # blobs that may touch diagonally or merge
            r, c = rng.integers(0, h - 2), rng.integers(0, w - 2)
            truth[i, r : r + rng.integers(1, 4), c : c + rng.integers(1, 4)] = True
    maps = np.round(rng.random((n, h, w)) + 0.4 * truth, 1)  # coarse values: many ties
    assert loc.aupro(maps, truth) == pytest.approx(aupro_naive(maps, truth), abs=1e-9)
    assert loc.aupro(maps, truth, 0.05) == pytest.approx(aupro_naive(maps, truth, 0.05), abs=1e-9)


# --- pointing game and Dice -------------------------------------------------------------------
def test_pointing_game_hand_computed():
    truth = np.zeros((3, 4, 4), bool)
    truth[0, :2, :2] = truth[1, :2, :2] = True  # image 2 has no ground truth: not counted
    maps = np.zeros((3, 4, 4))
    maps[0, 1, 1] = 1.0  # hit
    maps[1, 3, 3] = 1.0  # miss
    maps[2, 0, 0] = 1.0
    assert loc.pointing_game(maps, truth) == 0.5
    maps[1, 0, 0] = 1.0  # a tied maximum, one of the two inside: half a hit
    assert loc.pointing_game(maps, truth) == 0.75
    assert loc.pointing_game(np.zeros((1, 4, 4)), truth[:1]) == 4 / 16  # a flat map: chance


def test_best_dice_hand_computed():
    # threshold 0.9: 2*1/(1+2); 0.8: 2*1/(2+2); 0.7: 2*2/(3+2) = 0.8; 0.1: 2*2/(4+2)
    maps, truth = np.array([[[0.9, 0.8, 0.7, 0.1]]]), np.array([[[1, 0, 1, 0]]], bool)
    assert loc.best_dice(maps, truth) == (pytest.approx(0.8), 0.7)


@pytest.mark.parametrize("seed", range(3))
def test_best_dice_equals_a_loop_over_thresholds(seed):
    rng = np.random.default_rng(seed)
    truth = rng.random((2, 6, 6)) < 0.2
    maps = np.round(rng.random((2, 6, 6)) + 0.5 * truth, 1)
    dice = [2 * ((maps >= t) & truth).sum() / ((maps >= t).sum() + truth.sum()) for t in np.unique(maps)]
    assert loc.best_dice(maps, truth)[0] == pytest.approx(max(dice), abs=1e-12)


def test_localization_metrics_leave_out_abnormal_images_without_annotation():
    truth = HAND_TRUTH.copy()
    truth[1] = False  # image 0 abnormal with a region, image 1 normal
    base = loc.localization_metrics(HAND_MAPS, np.array([1, 0]), truth)
    assert base["n_images"] == 2 and base["aupro"] == loc.aupro(HAND_MAPS, truth)
    # a third, abnormal image without box or mask: unknown, not empty, so it changes nothing
    maps3, truth3 = (
        np.concatenate([HAND_MAPS, HAND_MAPS[:1]]),
        np.concatenate([truth, np.zeros((1, 2, 3), bool)]),
    )
    assert loc.localization_metrics(maps3, np.array([1, 0, 1]), truth3) == base
    assert loc.pixel_auroc(maps3, truth3) != base["pixel_auroc"]  # counting it as empty would


@pytest.mark.parametrize("seed", range(3))
def test_pixel_auroc_equals_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    truth = rng.random((3, 7, 5)) < 0.3
    maps = np.round(rng.random((3, 7, 5)) + 0.3 * truth, 1).astype(np.float16)  # stored maps: float16
    assert loc.pixel_auroc(maps, truth) == pytest.approx(
        roc_auc_score(truth.ravel(), maps.ravel()), abs=1e-12
    )


def test_localization_metrics_from_one_sort_equal_the_single_metrics():
    rng = np.random.default_rng(3)
    labels = np.array([0, 0, 1, 1, 1])
    truth = np.zeros((5, 8, 8), bool)
    truth[2, 1:4, 2:6] = truth[3, 5:8, 0:2] = truth[4, 0:2, 0:2] = True
    maps = np.round(rng.random((5, 8, 8)) + 0.5 * truth, 2)
    m = loc.localization_metrics(maps, labels, truth)
    assert m["pixel_auroc"] == pytest.approx(loc.pixel_auroc(maps, truth), abs=1e-12)
    assert m["aupro"] == pytest.approx(aupro_naive(maps, truth), abs=1e-9)
    assert (m["best_dice"], m["dice_threshold"]) == loc.best_dice(maps, truth)
    assert m["pointing_game"] == loc.pointing_game(maps, truth) and m["n_images"] == 5


# --- ground truth at the experiment resolution, and what the evaluator stores ------------------
def prepared(root, masks: np.ndarray | None, boxes: list[list]) -> PreparedDataset:
    """A prepared dataset of 4 test images at 64 px: two normal, two abnormal."""
    names = [f"t{i}.png" for i in range(4)]
    split = {"train": {"0": [], "unlabeled": {"0": [], "1": []}}, "test": {"0": names[:2], "1": names[2:]}}
    index = pd.DataFrame(
        {"name": names, "label": [0, 0, 1, 1], "pool": "test", "boxes": [json.dumps(b) for b in boxes],
         "mask": [-1, -1, 0, 1] if masks is not None else -1}
    )  # fmt: skip
    images = np.zeros((4, 64, 64), np.uint8)
    write_prepared(root, images, index, split, {"dataset": "x"}, masks=masks)
    return load_prepared(root)


def test_ground_truth_is_the_mask_resized_like_the_images(tmp_path):
    masks = np.zeros((2, 64, 64), np.uint8)
    masks[0, 10:20, 30:38] = 1  # even edges: exactly pixels 5-9 x 15-18 at 32 px
    masks[1, 40:41, 0:64] = 1  # one row: half a pixel at 32 px, rounds to half-grey, below the threshold
    boxes = [[], [], [[0.0, 0.0, 0.5, 0.5]], []]  # a box too: the mask wins
    ds = prepared(tmp_path / "m", masks, boxes)
    truth, kind = pixel_ground_truth(ds, ds.rows(["t0.png", "t1.png", "t2.png", "t3.png"]), 32)
    assert kind == "masks" and truth.shape == (4, 32, 32) and not truth[:2].any()
    expected = np.zeros((32, 32), bool)
    expected[5:10, 15:19] = True
    assert np.array_equal(truth[2], expected) and not truth[3].any()
    same, _ = pixel_ground_truth(ds, ds.rows(["t2.png"]), 64)
    assert np.array_equal(same[0], masks[0] == 1)


def test_ground_truth_is_the_union_of_the_boxes_or_none(tmp_path):
    readers = [[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]]
    ds = prepared(tmp_path / "b", None, [[], [], readers, [[0.5, 0.5, 1.0, 1.0]]])
    truth, kind = pixel_ground_truth(ds, ds.rows(["t3.png", "t2.png", "t0.png"]), 8)
    assert kind == "boxes"
    assert np.array_equal(truth[1], loc.boxes_to_mask(readers, 8, 8)) and truth[1].sum() == 28
    assert truth[0].sum() == 16 and not truth[2].any()
    lag = prepared(tmp_path / "l", None, [[], [], [], []])
    assert pixel_ground_truth(lag, lag.rows(["t2.png"]), 8) == (None, None)


def test_run_localization_is_null_where_it_does_not_apply_and_never_nan():
    labels = np.array([1, 0])
    nulls = dict.fromkeys(["pixel_auroc", "aupro", "pointing_game", "best_dice", "dice_threshold"])
    no_map = loc.run_localization(None, labels, HAND_TRUTH, "masks")
    assert no_map == {"ground_truth": "masks", "has_map": False, "n_images": 0, **nulls}
    no_truth = loc.run_localization(HAND_MAPS, labels, None, None)
    assert no_truth == {"ground_truth": None, "has_map": True, "n_images": 0, **nulls}
    unannotated = loc.run_localization(HAND_MAPS, np.array([1, 1]), np.zeros_like(HAND_TRUTH), "boxes")
    assert unannotated["n_images"] == 0 and unannotated["aupro"] is None  # no image left: null, not NaN
    full = loc.run_localization(HAND_MAPS, labels, HAND_TRUTH, "masks")
    assert full["aupro"] == pytest.approx(1669 / 2160) and full["n_images"] == 2


def test_compact_maps_keep_three_digits_of_tiny_maps():
    maps = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32) * 1e-6  # squared errors
    stored, scale = loc.compact_maps(maps)
    assert stored.dtype == np.float16 and scale == pytest.approx(maps.max())
    np.testing.assert_allclose(stored.astype(np.float32) * scale, maps, rtol=1e-3, atol=1e-3 * scale)
    assert loc.compact_maps(np.zeros((1, 2, 2)))[1] == 1.0
