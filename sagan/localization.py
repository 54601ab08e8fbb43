"""Does the anomaly map point at the finding? Pixel-level metrics of anomaly maps against ground truth.

Ground truth is one boolean mask per test image at the map's resolution: the exact mask on the
synthetic sets, the union of the expert boxes on RSNA and VinDr-CXR (VinDr: every reader's boxes
together), scaled from the original image by `boxes_to_mask`. LAG has no pixel labels.

A normal image's ground truth is empty; an abnormal image without any box or mask is unannotated, not
empty, and `localization_metrics` leaves it out.

Metrics (maps (N, H, W), truth (N, H, W) bool; higher map = more anomalous):
- pixel AUROC over all pixels of all images (sklearn `roc_auc_score`).
- AUPRO: area under the per-region-overlap curve up to a false-positive rate of 0.3, divided by 0.3
  (Bergmann et al. 2021, "The MVTec Anomaly Detection Dataset", IJCV 129; as in the MVTec AD
  evaluation code: 8-connected regions, a threshold at every distinct map value, the curve from (0, 0)
  to (1, 1), trapezoids, the value at 0.3 interpolated linearly).
- pointing game: the maximum of the map falls inside the ground truth (Zhang et al. 2018, "Top-down
  neural attention by excitation backprop", IJCV 126; no tolerance margin here).
- best Dice: the highest Dice over one threshold for all images, pixels of all images pooled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from sklearn.metrics import roc_auc_score

FPR_LIMIT = 0.3
EIGHT_CONNECTED = np.ones((3, 3), int)


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


def pixel_auroc(maps: np.ndarray, truth: np.ndarray) -> float:
    """AUROC of every pixel of every image as one set; NaN if the pixels are all of one class."""
    truth = np.asarray(truth, bool).ravel()
    if truth.all() or not truth.any():
        return math.nan
    return float(roc_auc_score(truth, np.asarray(maps, float).ravel()))


def pro_curve(maps: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, PRO) at every distinct map value, from (0, 0) to (1, 1) (Bergmann et al. 2021).

    PRO(t) = mean over all ground-truth regions C_k of |{map >= t} ∩ C_k| / |C_k|; FPR(t) = share of
    the ground-truth-negative pixels with map >= t. Each pixel adds 1 / (K |C_k|) to the PRO or
    1 / N_negative to the FPR once the threshold passes its value, so a sort and two cumulative sums
    give the whole curve.
    """
    maps, truth = np.asarray(maps, float), np.asarray(truth, bool)
    pro_step = np.zeros(maps.shape)
    n_regions = 0
    for i in range(len(truth)):
        regions, k = ndimage.label(truth[i], structure=EIGHT_CONNECTED)  # (H, W) region ids, 0 = none
        sizes = np.bincount(regions.ravel())
        pro_step[i][regions > 0] = 1.0 / sizes[regions[regions > 0]]
        n_regions += k
    pro_step /= n_regions
    fp_step = (~truth) / (~truth).sum()
    order = np.argsort(-maps.ravel(), kind="stable")
    values = maps.ravel()[order]
    last = np.append(values[1:] != values[:-1], True)  # tied values are one threshold
    fpr = np.minimum(np.cumsum(fp_step.ravel()[order])[last], 1.0)
    pro = np.minimum(np.cumsum(pro_step.ravel()[order])[last], 1.0)
    return np.concatenate([[0.0], fpr, [1.0]]), np.concatenate([[0.0], pro, [1.0]])


def aupro(maps: np.ndarray, truth: np.ndarray, fpr_limit: float = FPR_LIMIT) -> float:
    """Area under the PRO curve for FPR in [0, fpr_limit], divided by fpr_limit (1 = perfect)."""
    truth = np.asarray(truth, bool)
    if truth.all() or not truth.any():
        return math.nan
    fpr, pro = pro_curve(maps, truth)
    inside = int(np.searchsorted(fpr, fpr_limit, "right"))  # points with fpr <= limit: a prefix
    x, y = fpr[:inside], pro[:inside]
    if x[-1] < fpr_limit:  # close the area at the limit, on the segment to the next point
        share = (fpr_limit - x[-1]) / (fpr[inside] - x[-1])
        x, y = np.append(x, fpr_limit), np.append(y, y[-1] + share * (pro[inside] - y[-1]))
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / fpr_limit)


def pointing_game(maps: np.ndarray, truth: np.ndarray) -> float:
    """Share of the images with ground truth whose map maximum lies inside it. A maximum shared by
    several pixels counts the share of them inside (a random choice among them, in expectation)."""
    maps, truth = np.asarray(maps, float), np.asarray(truth, bool)
    hits = []
    for m, t in zip(maps, truth):
        if t.any():
            top = m == m.max()
            hits.append((top & t).sum() / top.sum())
    return float(np.mean(hits)) if hits else math.nan


def best_dice(maps: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(highest Dice 2|P ∩ T| / (|P| + |T|) over thresholds, the threshold): P = {map >= threshold},
    one threshold for all images, pixels of all images pooled."""
    values, truth = np.asarray(maps, float).ravel(), np.asarray(truth, bool).ravel()
    if not truth.any():
        return math.nan, math.nan
    order = np.argsort(-values, kind="stable")
    values = values[order]
    tp = np.cumsum(truth[order])  # true pixels at or above each value
    flagged = np.arange(1, len(values) + 1)
    last = np.append(values[1:] != values[:-1], True)
    dice = 2 * tp[last] / (flagged[last] + truth.sum())
    k = int(np.argmax(dice))
    return float(dice[k]), float(values[last][k])


def localization_metrics(maps: np.ndarray, labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Every metric of one run's test maps; abnormal images with an empty ground truth are left out."""
    maps, labels, truth = np.asarray(maps, float), np.asarray(labels), np.asarray(truth, bool)
    keep = (labels == 0) | truth.any(axis=(1, 2))
    maps, truth = maps[keep], truth[keep]
    dice, threshold = best_dice(maps, truth)
    return {
        "pixel_auroc": pixel_auroc(maps, truth),
        "aupro": aupro(maps, truth),
        "pointing_game": pointing_game(maps, truth),
        "best_dice": dice,
        "dice_threshold": threshold,
        "n_images": int(keep.sum()),
    }
