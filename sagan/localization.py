"""Does the anomaly map point at the finding? Pixel-level metrics of anomaly maps against ground truth.

Ground truth is one boolean mask per test image at the map's resolution: the exact mask on the
synthetic sets, the union of the expert boxes on RSNA and VinDr-CXR (VinDr: every reader's boxes
together), scaled from the original image by `boxes_to_mask`. LAG has no pixel labels.

A normal image's ground truth is empty; an abnormal image without any box or mask is unannotated, not
empty, and `localization_metrics` leaves it out.

Metrics (maps (N, H, W), truth (N, H, W) bool; higher map = more anomalous):
- pixel AUROC over all pixels of all images (the Mann-Whitney statistic, ties counting one half: the
  trapezoidal area under the ROC curve with a threshold at every distinct value, = sklearn's).
- AUPRO: area under the per-region-overlap curve up to a false-positive rate of 0.3, divided by 0.3
  (Bergmann et al. 2021, "The MVTec Anomaly Detection Dataset", IJCV 129; as in the MVTec AD
  evaluation code: 8-connected regions, a threshold at every distinct map value, the curve from (0, 0)
  to (1, 1), trapezoids, the value at 0.3 interpolated linearly).
- pointing game: the maximum of the map falls inside the ground truth (Zhang et al. 2018, "Top-down
  neural attention by excitation backprop", IJCV 126; no tolerance margin here).
- best Dice: the highest Dice over one threshold for all images, pixels of all images pooled.

The three threshold metrics share one sort of all pixels (`sweep`): a pixel adds to the counts of
every threshold at or below its value, so cumulative sums in descending order give every curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

FPR_LIMIT = 0.3
EIGHT_CONNECTED = np.ones((3, 3), int)
# 8-connected within an image, never across images of a stack: one labelling call for all of them
STACKED_EIGHT_CONNECTED = np.stack([np.zeros((3, 3), int), EIGHT_CONNECTED, np.zeros((3, 3), int)])


def pixel_span(lo: float, hi: float, size: int) -> slice:
    """Pixels whose centre c + 0.5 lies in [lo * size, hi * size); at least the pixel at the middle."""
    start, stop = math.ceil(lo * size - 0.5), math.ceil(hi * size - 0.5)
    if stop <= start:  # a box thinner than a pixel
        start = min(max(int((lo + hi) / 2 * size), 0), size - 1)
        stop = start + 1
    return slice(max(start, 0), min(stop, size))


def boxes_to_mask(boxes: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """(height, width) bool union of boxes [x0, y0, x1, y1] given as fractions of the original image
    (`sagan.data.prepared`: images are resized without keeping the aspect, so fractions carry over)."""
    mask = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in boxes:
        mask[pixel_span(y0, y1, height), pixel_span(x0, x1, width)] = True
    return mask


# --- one sort of all pixels, every threshold at once ----------------------------------------------
@dataclass(frozen=True)
class Sweep:
    """Cumulative counts at every distinct map value (a threshold t), highest first: pixels with map >= t."""

    value: np.ndarray  # (T,) thresholds, descending
    tp: np.ndarray  # (T,) ground-truth pixels at or above t
    fp: np.ndarray  # (T,) other pixels at or above t
    pro: np.ndarray  # (T,) mean over ground-truth regions of the share of each region at or above t
    n_pos: int
    n_neg: int


def region_weights(truth: np.ndarray) -> np.ndarray:
    """(N, H, W): 1 / (K |C_k|) on each pixel of region C_k (K regions in all, 8-connected), else 0, so
    that the sum over the pixels at or above a threshold is the mean region overlap PRO."""
    regions, k = ndimage.label(truth, structure=STACKED_EIGHT_CONNECTED)  # (N, H, W) ids, 0 = none
    sizes = np.bincount(regions.ravel()).astype(float)
    per_id = np.zeros(k + 1)
    per_id[1:] = 1.0 / (k * sizes[1:]) if k else 0.0
    return per_id[regions]


def sweep(maps: np.ndarray, truth: np.ndarray) -> Sweep:
    """Every threshold's counts from one descending sort; tied values form one threshold."""
    maps, truth = np.asarray(maps), np.asarray(truth, bool)
    values = (
        maps.ravel() if maps.dtype.kind == "f" and maps.dtype.itemsize >= 4 else maps.ravel().astype(float)
    )
    order = np.argsort(values)[::-1]  # ties need no order: they form one threshold
    values = values[order]
    last = np.flatnonzero(np.append(values[1:] != values[:-1], True))  # last pixel of each threshold
    pos = truth.ravel()[order]
    tp = np.cumsum(pos, dtype=np.int64)[last]
    fp = (last + 1) - tp
    pro = np.cumsum(region_weights(truth).ravel()[order])[last]
    return Sweep(values[last], tp, fp, np.minimum(pro, 1.0), int(pos.sum()), int(pos.size - pos.sum()))


def one_class(truth: np.ndarray) -> bool:
    return bool(truth.all() or not truth.any())


# --- the metrics ---------------------------------------------------------------------------------
def auroc_of(s: Sweep) -> float:
    """Trapezoids of the ROC curve from (0, 0): a tie of abnormal and normal pixels counts one half."""
    tp, fp = np.concatenate([[0], s.tp]).astype(float), np.concatenate([[0], s.fp]).astype(float)
    return float(np.sum(np.diff(fp) * (tp[1:] + tp[:-1]) / 2) / (s.n_pos * s.n_neg))


def pixel_auroc(maps: np.ndarray, truth: np.ndarray) -> float:
    """AUROC of every pixel of every image as one set; NaN if the pixels are all of one class."""
    truth = np.asarray(truth, bool)
    return math.nan if one_class(truth) else auroc_of(sweep(maps, truth))


def pro_curve_of(s: Sweep) -> tuple[np.ndarray, np.ndarray]:
    fpr = np.minimum(s.fp / s.n_neg, 1.0)
    return np.concatenate([[0.0], fpr, [1.0]]), np.concatenate([[0.0], s.pro, [1.0]])


def pro_curve(maps: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, PRO) at every distinct map value, from (0, 0) to (1, 1) (Bergmann et al. 2021).

    PRO(t) = mean over all ground-truth regions C_k of |{map >= t} ∩ C_k| / |C_k|; FPR(t) = share of
    the ground-truth-negative pixels with map >= t.
    """
    return pro_curve_of(sweep(maps, truth))


def aupro_of(s: Sweep, fpr_limit: float = FPR_LIMIT) -> float:
    fpr, pro = pro_curve_of(s)
    inside = int(np.searchsorted(fpr, fpr_limit, "right"))  # points with fpr <= limit: a prefix
    x, y = fpr[:inside], pro[:inside]
    if x[-1] < fpr_limit:  # close the area at the limit, on the segment to the next point
        share = (fpr_limit - x[-1]) / (fpr[inside] - x[-1])
        x, y = np.append(x, fpr_limit), np.append(y, y[-1] + share * (pro[inside] - y[-1]))
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / fpr_limit)


def aupro(maps: np.ndarray, truth: np.ndarray, fpr_limit: float = FPR_LIMIT) -> float:
    """Area under the PRO curve for FPR in [0, fpr_limit], divided by fpr_limit (1 = perfect)."""
    truth = np.asarray(truth, bool)
    return math.nan if one_class(truth) else aupro_of(sweep(maps, truth), fpr_limit)


def best_dice_of(s: Sweep) -> tuple[float, float]:
    dice = 2 * s.tp / (s.tp + s.fp + s.n_pos)  # 2 |P ∩ T| / (|P| + |T|)
    k = int(np.argmax(dice))
    return float(dice[k]), float(s.value[k])


def best_dice(maps: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(highest Dice 2|P ∩ T| / (|P| + |T|) over thresholds, the threshold): P = {map >= threshold},
    one threshold for all images, pixels of all images pooled."""
    truth = np.asarray(truth, bool)
    return (math.nan, math.nan) if not truth.any() else best_dice_of(sweep(maps, truth))


def pointing_game(maps: np.ndarray, truth: np.ndarray) -> float:
    """Share of the images with ground truth whose map maximum lies inside it. A maximum shared by
    several pixels counts the share of them inside (a random choice among them, in expectation)."""
    maps, truth = np.asarray(maps), np.asarray(truth, bool)
    with_truth = truth.any(axis=(1, 2))
    if not with_truth.any():
        return math.nan
    m, t = maps[with_truth].reshape(with_truth.sum(), -1), truth[with_truth].reshape(with_truth.sum(), -1)
    top = m == m.max(1, keepdims=True)
    return float(np.mean((top & t).sum(1) / top.sum(1)))


def localization_metrics(maps: np.ndarray, labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Every metric of one run's test maps; abnormal images with an empty ground truth are left out."""
    maps, labels, truth = np.asarray(maps), np.asarray(labels), np.asarray(truth, bool)
    keep = (labels == 0) | truth.any(axis=(1, 2))
    maps, truth = maps[keep], truth[keep]
    nan = math.nan
    s = None if one_class(truth) else sweep(maps, truth)
    dice, threshold = best_dice_of(s) if s is not None else (nan, nan)
    return {
        "pixel_auroc": auroc_of(s) if s is not None else nan,
        "aupro": aupro_of(s) if s is not None else nan,
        "pointing_game": pointing_game(maps, truth),
        "best_dice": dice,
        "dice_threshold": threshold,
        "n_images": int(keep.sum()),
    }


# --- one run, as the evaluator stores it ------------------------------------------------------------
METRIC_KEYS = ("pixel_auroc", "aupro", "pointing_game", "best_dice")


def run_localization(
    maps: np.ndarray | None, labels: np.ndarray, truth: np.ndarray | None, truth_kind: str | None
) -> dict:
    """metrics.json's "localization" of one run: every metric, None where it does not apply (the method
    makes no map, the dataset has no pixel labels, no annotated image, non-finite maps); never NaN."""
    out: dict = {"ground_truth": truth_kind, "has_map": maps is not None, "n_images": 0}
    out.update(dict.fromkeys((*METRIC_KEYS, "dice_threshold")))
    if maps is None or truth is None or not np.isfinite(maps).all():
        return out
    for key, value in localization_metrics(maps, labels, truth).items():
        out[key] = None if isinstance(value, float) and math.isnan(value) else value
    return out


def compact_maps(maps: np.ndarray) -> tuple[np.ndarray, float]:
    """(float16 maps / scale, scale) with scale the largest |value|: a quarter of float32's bytes and
    about three significant digits relative to the largest value, also for maps of tiny values (squared
    errors) that float16 alone would round to a few levels. The metrics use the maps before this."""
    scale = float(np.abs(maps).max()) if maps.size else 0.0
    scale = scale if np.isfinite(scale) and scale > 0 else 1.0
    return (maps / scale).astype(np.float16), scale
