"""Is a difference real? Bootstrap intervals of image-level AUC and AP, and paired tests of methods
scored on the same test images. Pure numpy/scipy; AUC and AP in [0, 1].

Definitions (the source of each is named where it is computed):
- AUC: the Mann-Whitney statistic, ties counting one half (= sklearn `roc_auc_score`).
- AP: sum over thresholds of (R_k - R_{k-1}) P_k (= sklearn `average_precision_score`).
- Resamples are stratified: normals and abnormals are drawn separately, so every resample has the test
  set's class counts and AUC and AP are always defined. Intervals are percentile intervals (Efron and
  Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13). Every resample is one row of a weight
  matrix (how often each test image is drawn), and AUC and AP are computed for all rows at once.
- A table row (mean over seeds) gets a two-way bootstrap interval: seeds and test images are crossed
  factors (every seed scores the same images), so both are resampled independently and one image
  resample is shared by all seeds of a replicate (Owen 2007, "The pigeonhole bootstrap", Ann. Appl.
  Stat. 1(2)). Resampling images independently per seed would average the test-set noise away.
- Paired comparisons on the same images: DeLong, DeLong and Clarke-Pearson 1988 (Biometrics 44) for
  AUC, computed with the midrank algorithm of Sun and Xu 2014 (IEEE SPL 21(11)); a paired stratified
  bootstrap for AP; Holm 1979 (Scand. J. Stat. 6) for the number of comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

N_BOOT = 2000
LEVEL = 0.95
ALPHA = 0.05


# --- AUC and AP of many weighted resamples at once --------------------------------------------
def stratified_weights(labels: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(R, n) int: how often each test image is drawn in each resample; normals and abnormals apart."""
    labels = np.asarray(labels)
    weights = np.zeros((n_boot, labels.size), np.int64)
    for cls in (0, 1):
        idx = np.flatnonzero(labels == cls)
        draws = rng.integers(0, idx.size, (n_boot, idx.size))  # (R, n_cls) indices into idx
        flat = (draws + idx.size * np.arange(n_boot)[:, None]).ravel()
        weights[:, idx] = np.bincount(flat, minlength=n_boot * idx.size).reshape(n_boot, idx.size)
    return weights


def weighted_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(R,) AUC of each weighted resample: sum_ij w_i w_j [s_i > s_j] + [s_i = s_j] / 2 over pairs of an
    abnormal i and a normal j, divided by the weighted pair count (Mann-Whitney)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels)
    pos, neg = scores[labels == 1], scores[labels == 0]
    order = np.argsort(neg, kind="stable")
    neg, w_neg = neg[order], weights[:, labels == 0][:, order]  # (n0,), (R, n0)
    w_pos = weights[:, labels == 1]  # (R, n1)
    below = np.concatenate([np.zeros((len(weights), 1)), np.cumsum(w_neg, axis=1)], axis=1)  # (R, n0+1)
    lo, hi = np.searchsorted(neg, pos, "left"), np.searchsorted(neg, pos, "right")  # (n1,)
    wins = below[:, lo] + 0.5 * (below[:, hi] - below[:, lo])  # (R, n1) normals below each abnormal
    return (w_pos * wins).sum(1) / (w_pos.sum(1) * w_neg.sum(1))


def weighted_ap(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(R,) average precision of each weighted resample, thresholds at the distinct scores."""
    scores, labels = np.asarray(scores, float), np.asarray(labels)
    order = np.argsort(-scores, kind="stable")
    s, w = scores[order], weights[:, order]  # (n,), (R, n)
    tp = np.cumsum(w * labels[order], axis=1)  # (R, n) true positives at or above each score
    flagged = np.cumsum(w, axis=1)
    last = np.append(s[1:] != s[:-1], True)  # tied scores form one threshold
    tp, flagged = tp[:, last], flagged[:, last]
    precision = np.divide(tp, flagged, out=np.zeros(tp.shape), where=flagged > 0)
    recall_step = np.diff(tp, axis=1, prepend=0)  # (R, k) times 1 / total positives below
    return (recall_step * precision).sum(1) / tp[:, -1]


METRICS = {"auc": weighted_auc, "ap": weighted_ap}


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


# --- intervals of one run and of one table row ------------------------------------------------
def two_way_bootstrap(
    scores_by_seed: np.ndarray, labels: np.ndarray, n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, np.ndarray]:
    """Metric name -> (R,) mean over resampled seeds of the metric on resampled test images."""
    scores_by_seed = np.atleast_2d(np.asarray(scores_by_seed, float))  # (S, n), same images per seed
    n_seeds = len(scores_by_seed)
    rng = np.random.default_rng(seed)
    images = stratified_weights(labels, n_boot, rng)  # (R, n), shared by every seed of a replicate
    seeds = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_boot)  # (R, S)
    out = {}
    for name, metric in METRICS.items():
        per_seed = np.stack([metric(s, labels, images) for s in scores_by_seed], axis=1)  # (R, S)
        out[name] = (seeds * per_seed).sum(1) / n_seeds
    return out


def row_interval(
    scores_by_seed: np.ndarray, labels: np.ndarray, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL
) -> dict[str, tuple[float, float]]:
    """95% interval of the seed-mean AUC and AP from test-image and seed variation (two-way bootstrap)."""
    boot = two_way_bootstrap(scores_by_seed, labels, n_boot, seed)
    return {name: percentile_interval(values, level) for name, values in boot.items()}


def run_interval(
    scores: np.ndarray, labels: np.ndarray, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL
) -> dict[str, tuple[float, float]]:
    """95% stratified bootstrap interval of one run's AUC and AP over its test images."""
    return row_interval(np.asarray(scores, float)[None], labels, n_boot, seed, level)


# --- paired comparisons on the same test images -----------------------------------------------
def structural_components(
    scores: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs (k,) and DeLong's structural components V10 (k, m) and V01 (k, n) of k score vectors of the
    same images, from midranks (Sun and Xu 2014): with T_x the midranks among the m abnormals, T_y among
    the n normals and T_z among all, V10 = (T_z - T_x) / n and V01 = 1 - (T_z - T_y) / m."""
    scores, labels = np.atleast_2d(np.asarray(scores, float)), np.asarray(labels)
    pos, neg = scores[:, labels == 1], scores[:, labels == 0]  # (k, m), (k, n)
    m, n = pos.shape[1], neg.shape[1]
    tx, ty = rankdata(pos, axis=1), rankdata(neg, axis=1)
    tz = rankdata(np.concatenate([pos, neg], axis=1), axis=1)  # (k, m + n)
    aucs = (tz[:, :m].sum(1) / m - (m + 1) / 2) / n
    v10 = (tz[:, :m] - tx) / n  # (k, m) share of normals below each abnormal
    v01 = 1 - (tz[:, m:] - ty) / m  # (k, n) share of abnormals above each normal
    return aucs, v10, v01


def delong_covariance(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and their covariance S = S10 / m + S01 / n (k, k), S10 and S01 the sample covariances
    of the structural components (DeLong et al. 1988)."""
    aucs, v10, v01 = structural_components(scores, labels)
    return aucs, np.atleast_2d(np.cov(v10)) / v10.shape[1] + np.atleast_2d(np.cov(v01)) / v01.shape[1]


def two_sided_p(delta: float, var: float) -> float:
    """Normal-approximation p-value. Below rounding noise a difference counts as 0 and a variance as
    none: then p is 1 for no difference and 0 otherwise (|z| = inf)."""
    if abs(delta) < 1e-12:
        return 1.0
    if var < 1e-24:
        return 0.0
    return float(2 * norm.sf(abs(delta) / np.sqrt(var)))


def delong_test(scores_a: np.ndarray, scores_b: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(difference of the seed-mean AUCs a - b, two-sided p) over the test images (DeLong et al. 1988).

    scores_a (S_a, n) and scores_b (S_b, n): every seed of both methods on the same images. The contrast
    c = (1/S_a, ..., -1/S_b, ...) applied to the structural components gives the difference and its
    variance c' S c in one step, without cancellation between large covariance entries.
    """
    a, b = np.atleast_2d(scores_a), np.atleast_2d(scores_b)
    aucs, v10, v01 = structural_components(np.concatenate([a, b]), labels)
    c = np.concatenate([np.full(len(a), 1 / len(a)), np.full(len(b), -1 / len(b))])
    var = np.var(c @ v10, ddof=1) / v10.shape[1] + np.var(c @ v01, ddof=1) / v01.shape[1]
    delta = float(c @ aucs)
    return delta, two_sided_p(delta, float(var))


def bootstrap_p(differences: np.ndarray) -> float:
    """Two-sided p of 'no difference' from bootstrap replicates of a difference: twice the smaller tail
    beyond 0, each counted as (1 + count) / (R + 1) so that it is never 0 (Davison and Hinkley 1997,
    "Bootstrap Methods and their Application", ch. 4)."""
    r = len(differences)
    tail = min((differences <= 0).sum(), (differences >= 0).sum())
    return float(min(1.0, 2 * (1 + tail) / (r + 1)))


def seed_mean(metric: str, scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(R,) mean over a method's seeds (rows of scores) of a metric on each weighted resample."""
    return np.mean([METRICS[metric](x, labels, weights) for x in np.atleast_2d(scores)], axis=0)


def paired_bootstrap_ap(
    scores_a: np.ndarray, scores_b: np.ndarray, labels: np.ndarray, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float]:
    """(difference of the seed-mean APs a - b, two-sided p): both methods on the same image resamples."""
    ones = np.ones((1, len(labels)), np.int64)
    delta = float(seed_mean("ap", scores_a, labels, ones)[0] - seed_mean("ap", scores_b, labels, ones)[0])
    images = stratified_weights(labels, n_boot, np.random.default_rng(seed))
    return delta, bootstrap_p(
        seed_mean("ap", scores_a, labels, images) - seed_mean("ap", scores_b, labels, images)
    )


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (Holm 1979): the k-th smallest of m times (m - k + 1), made
    non-decreasing, at most 1. Rejecting where adjusted p < alpha controls the family-wise error."""
    p = np.asarray(pvalues, float)
    order = np.argsort(p, kind="stable")
    scaled = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


@dataclass(frozen=True)
class Comparison:
    """One method against the best of its group in one metric (AUC: DeLong; AP: paired bootstrap)."""

    best: str  # the group's method with the highest seed-mean value
    delta: float  # this method minus the best (<= 0); 0 for the best itself
    p: float  # two-sided, unadjusted; NaN for the best itself
    p_holm: float  # Holm-adjusted over the group's comparisons in this metric; NaN for the best
    significant: bool  # p_holm < alpha


def compare_to_best(
    scores: dict[str, np.ndarray],
    labels: np.ndarray,
    alpha: float = ALPHA,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict[str, dict[str, Comparison]]:
    """Metric -> method -> its comparison with the group's best on the same test images.

    scores: method (or variant) -> (S, n) scores of its seeds, every row on the same images in the
    same order as labels. The family for Holm's correction is the group's other methods, per metric.
    """
    ones = np.ones((1, len(labels)), np.int64)
    out: dict[str, dict[str, Comparison]] = {}
    for metric in METRICS:
        means = {name: float(seed_mean(metric, s, labels, ones)[0]) for name, s in scores.items()}
        best = max(means, key=means.get)  # the first of equal maxima
        others = [name for name in scores if name != best]
        if metric == "auc":
            p = [delong_test(scores[name], scores[best], labels)[1] for name in others]
        else:  # the same seed: every comparison sees the same image resamples
            p = [paired_bootstrap_ap(scores[name], scores[best], labels, n_boot, seed)[1] for name in others]
        adjusted = holm(np.array(p))
        out[metric] = {best: Comparison(best, 0.0, float("nan"), float("nan"), False)}
        for name, p_raw, p_adj in zip(others, p, adjusted):
            out[metric][name] = Comparison(
                best, means[name] - means[best], p_raw, float(p_adj), bool(p_adj < alpha)
            )
    return out
