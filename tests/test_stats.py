"""sagan.stats: vectorised AUC/AP on resamples against sklearn in a loop, bootstrap intervals, DeLong
against the O(mn) placement-value definition and a worked example, paired bootstrap, Holm."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from sagan import stats


def scores_with_ties(
    seed: int, n0: int = 13, n1: int = 9, shift: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.array([0] * n0 + [1] * n1)[rng.permutation(n0 + n1)]
    return np.round(rng.normal(0, 1, n0 + n1) + shift * labels, 1), labels  # rounding makes ties


# --- AUC and AP on weighted resamples -----------------------------------------------------------
def test_auc_hand_computed_with_a_tie():
    # abnormal 0.8 beats both normals, abnormal 0.5 ties with one and beats the other: 3.5 of 4 pairs
    scores, labels = np.array([0.8, 0.5, 0.5, 0.2]), np.array([1, 1, 0, 0])
    assert stats.weighted_auc(scores, labels, np.ones((1, 4), int))[0] == 0.875
    # drawing the first abnormal twice and the tied normal not at all: pairs (0.8, 0.2) x2, (0.5, 0.2)
    assert stats.weighted_auc(scores, labels, np.array([[2, 0, 0, 2]]))[0] == 1.0
    assert stats.weighted_auc(scores, labels, np.array([[0, 2, 2, 0]]))[0] == 0.5


def test_ap_hand_computed():
    # ranking 1, 0, 1, 0: precision 1 at recall 1/2, precision 2/3 at recall 1
    scores, labels = np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 0, 1, 0])
    assert stats.weighted_ap(scores, labels, np.ones((1, 4), int))[0] == pytest.approx(
        0.5 + 0.5 * 2 / 3, abs=1e-15
    )
    # a normal tied with an abnormal at the top: one threshold, precision 1/2 at recall 1/2
    scores = np.array([0.9, 0.9, 0.7, 0.1])
    assert stats.weighted_ap(scores, labels, np.ones((1, 4), int))[0] == pytest.approx(
        0.5 * 0.5 + 0.5 * 2 / 3
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_metrics_equal_sklearn_on_each_resample(seed):
    scores, labels = scores_with_ties(seed)
    weights = stats.stratified_weights(labels, 300, np.random.default_rng(seed))
    auc, ap = stats.weighted_auc(scores, labels, weights), stats.weighted_ap(scores, labels, weights)
    for r in range(len(weights)):  # the slow, obvious way: materialise each resample
        idx = np.repeat(np.arange(len(scores)), weights[r])
        assert auc[r] == pytest.approx(roc_auc_score(labels[idx], scores[idx]), abs=1e-12)
        assert ap[r] == pytest.approx(average_precision_score(labels[idx], scores[idx]), abs=1e-12)


def test_stratified_weights_keep_the_class_counts_and_follow_the_seed():
    labels = np.array([0] * 30 + [1] * 10)
    w = stats.stratified_weights(labels, 2000, np.random.default_rng(5))
    assert w.shape == (2000, 40)
    assert set(w[:, labels == 0].sum(1)) == {30} and set(w[:, labels == 1].sum(1)) == {10}
    assert np.array_equal(w, stats.stratified_weights(labels, 2000, np.random.default_rng(5)))
    assert not np.array_equal(w, stats.stratified_weights(labels, 2000, np.random.default_rng(6)))
    assert w.mean() == pytest.approx(1.0) and abs(w.var() - (1 - 1 / 30)) < 0.05  # multinomial draws


# --- intervals --------------------------------------------------------------------------------
def test_run_interval_holds_the_estimate_and_is_deterministic():
    scores, labels = scores_with_ties(3, 40, 40)
    ci = stats.run_interval(scores, labels)
    assert ci["auc"][0] < roc_auc_score(labels, scores) < ci["auc"][1]
    assert ci["ap"][0] < average_precision_score(labels, scores) < ci["ap"][1]
    assert ci == stats.run_interval(scores, labels)
    assert ci != stats.run_interval(scores, labels, seed=1)


def test_run_interval_narrows_with_more_test_images():
    small, big = scores_with_ties(4, 20, 20), scores_with_ties(4, 320, 320)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(stats.run_interval(*big)["auc"]) < 0.5 * width(stats.run_interval(*small)["auc"])


def test_two_way_bootstrap_equals_a_loop_over_replicates():
    scores, labels = scores_with_ties(5)
    by_seed = np.stack(
        [scores, scores + np.round(np.random.default_rng(9).normal(0, 1, len(scores)), 1), -scores]
    )
    boot = stats.two_way_bootstrap(by_seed, labels, n_boot=200, seed=7)
    rng = np.random.default_rng(7)  # the same draws, in the same order
    images = stats.stratified_weights(labels, 200, rng)
    seeds = rng.multinomial(3, [1 / 3] * 3, size=200)
    for r in range(200):
        idx = np.repeat(np.arange(len(labels)), images[r])
        drawn = np.repeat(np.arange(3), seeds[r])  # the replicate's seeds, with repeats
        auc = np.mean([roc_auc_score(labels[idx], by_seed[s][idx]) for s in drawn])
        ap = np.mean([average_precision_score(labels[idx], by_seed[s][idx]) for s in drawn])
        assert boot["auc"][r] == pytest.approx(auc, abs=1e-12) and boot["ap"][r] == pytest.approx(
            ap, abs=1e-12
        )


def test_row_interval_of_one_seed_or_identical_seeds_is_the_run_interval():
    scores, labels = scores_with_ties(6, 30, 30)
    run = stats.run_interval(scores, labels)
    assert stats.row_interval(scores[None], labels) == run
    assert stats.row_interval(np.stack([scores] * 3), labels) == pytest.approx(run, abs=1e-12)


def test_row_interval_widens_when_the_seeds_disagree():
    scores, labels = scores_with_ties(7, 40, 40, shift=1.5)
    rng = np.random.default_rng(0)
    close = np.stack([scores + rng.normal(0, 0.05, 80) for _ in range(3)])
    apart = np.stack([scores + rng.normal(0, 1.5, 80) for _ in range(3)])
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(stats.row_interval(apart, labels)["auc"]) > 1.2 * width(
        stats.row_interval(close, labels)["auc"]
    )


# --- DeLong ------------------------------------------------------------------------------------
def delong_by_definition(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong et al. 1988 written out: psi over all m x n pairs, placement values V10 and V01, their
    sample covariances S10 and S01, S = S10 / m + S01 / n."""
    k = len(scores)
    x, y = scores[:, labels == 1], scores[:, labels == 0]
    m, n = x.shape[1], y.shape[1]
    v10, v01, theta = np.zeros((k, m)), np.zeros((k, n)), np.zeros(k)
    for r in range(k):
        psi = np.zeros((m, n))
        for i in range(m):
            for j in range(n):
                psi[i, j] = 1.0 if x[r, i] > y[r, j] else 0.5 if x[r, i] == y[r, j] else 0.0
        v10[r], v01[r], theta[r] = psi.mean(1), psi.mean(0), psi.mean()
    s10, s01 = np.zeros((k, k)), np.zeros((k, k))
    for r in range(k):
        for s in range(k):
            s10[r, s] = sum((v10[r, i] - theta[r]) * (v10[s, i] - theta[s]) for i in range(m)) / (m - 1)
            s01[r, s] = sum((v01[r, j] - theta[r]) * (v01[s, j] - theta[s]) for j in range(n)) / (n - 1)
    return theta, s10 / m + s01 / n


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_delong_fast_algorithm_equals_the_placement_value_definition(seed):
    scores, labels = scores_with_ties(seed, 17, 11)
    rng = np.random.default_rng(seed)
    k3 = np.stack(
        [
            scores,
            np.round(scores + rng.normal(0, 1, len(scores)), 1),
            np.round(rng.normal(0, 1, len(scores)), 1),
        ]
    )
    aucs, cov = stats.delong_covariance(k3, labels)
    ref_aucs, ref_cov = delong_by_definition(k3, labels)
    np.testing.assert_allclose(aucs, ref_aucs, atol=1e-6, rtol=0)
    np.testing.assert_allclose(cov, ref_cov, atol=1e-6, rtol=0)
    np.testing.assert_allclose(aucs, [roc_auc_score(labels, s) for s in k3], atol=1e-12)


def test_delong_worked_example():
    """Data of the worked example in Draelos 2020, "Comparing AUCs of machine learning models with
    DeLong's test" (glassboxmedicine.com), by hand: A ranks all 3 abnormals above both normals (AUC 1,
    constant placements, no variance); B's abnormals beat 0, 2 and 2 of 2 normals, V10 = (0, 1, 1) with
    variance 1/3, and each normal is beaten by 2 of 3 abnormals, V01 = (2/3, 2/3) with variance 0. So
    AUC_B = 2/3, Var(A - B) = (1/3) / 3 = 1/9, z = (1/3) / (1/3) = 1, p = 2 (1 - Phi(1)) = 0.3173."""
    labels = np.array([0, 0, 1, 1, 1])
    a, b = np.array([0.1, 0.2, 0.6, 0.7, 0.8]), np.array([0.3, 0.6, 0.2, 0.7, 0.9])
    aucs, cov = stats.delong_covariance(np.stack([a, b]), labels)
    np.testing.assert_allclose(aucs, [1, 2 / 3], atol=1e-15)
    np.testing.assert_allclose(cov, [[0, 0], [0, 1 / 9]], atol=1e-15)
    delta, p = stats.delong_test(a, b, labels)
    assert delta == pytest.approx(1 / 3) and p == pytest.approx(2 * norm.sf(1.0)) and round(p, 4) == 0.3173


def test_delong_test_compares_seed_means_with_their_contrast_variance():
    scores, labels = scores_with_ties(8, 25, 25)
    rng = np.random.default_rng(1)
    a = np.stack([scores + rng.normal(0, 0.3, 50) for _ in range(3)])
    b = np.stack([scores + rng.normal(0, 1.5, 50) for _ in range(2)])
    delta, p = stats.delong_test(a, b, labels)
    auc = lambda s: np.mean([roc_auc_score(labels, x) for x in s])  # noqa: E731
    assert delta == pytest.approx(auc(a) - auc(b), abs=1e-12)
    _, ref_cov = delong_by_definition(np.concatenate([a, b]), labels)
    c = np.array([1 / 3] * 3 + [-1 / 2] * 2)
    assert p == pytest.approx(2 * norm.sf(abs(delta) / np.sqrt(c @ ref_cov @ c)), abs=1e-9)
    delta, p = stats.delong_test(a, a, labels)  # the same runs: rounding noise is no difference
    assert delta == pytest.approx(0, abs=1e-15) and p == 1.0


# --- paired bootstrap and Holm ------------------------------------------------------------------
def test_bootstrap_p_hand_computed():
    # one replicate at or below 0, three at or above: 2 (1 + 1) / (4 + 1)
    assert stats.bootstrap_p(np.array([-1.0, 1.0, 2.0, 3.0])) == pytest.approx(0.8)
    assert stats.bootstrap_p(np.ones(1999)) == pytest.approx(2 / 2000)
    assert stats.bootstrap_p(np.zeros(10)) == 1.0


def test_paired_bootstrap_ap_separates_a_clear_difference_from_none():
    scores, labels = scores_with_ties(9, 40, 40, shift=2.0)
    noise = np.random.default_rng(2).normal(0, 3, 80)
    delta, p = stats.paired_bootstrap_ap(scores, scores + noise, labels)
    assert delta == pytest.approx(
        average_precision_score(labels, scores) - average_precision_score(labels, scores + noise)
    )
    assert p < 0.01
    assert stats.paired_bootstrap_ap(scores, scores, labels) == (0.0, 1.0)


def test_holm_hand_computed():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(stats.holm(np.array([0.01, 0.04, 0.03, 0.005])), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm(np.array([0.5, 0.6])), [1.0, 1.0])
    assert stats.holm(np.array([])).size == 0


def test_compare_to_best_marks_significant_differences_after_holm():
    scores, labels = scores_with_ties(10, 40, 40, shift=2.0)
    rng = np.random.default_rng(3)
    group = {
        "best": np.stack([scores + rng.normal(0, 0.1, 80) for _ in range(3)]),
        "copy": np.stack([scores + rng.normal(0, 0.1, 80) for _ in range(3)]),
        "worse": np.stack([scores + rng.normal(0, 3.0, 80) for _ in range(3)]),
    }
    out = stats.compare_to_best(group, labels)
    for metric in ("auc", "ap"):
        best = out[metric]["copy"].best
        assert best in ("best", "copy") and np.isnan(out[metric][best].p) and out[metric][best].delta == 0
        other = "copy" if best == "best" else "best"
        assert not out[metric][other].significant and out[metric][other].p > 0.05
        worse = out[metric]["worse"]
        assert worse.delta < -0.1 and worse.significant
        raw = [out[metric][n].p for n in (other, "worse")]
        assert [out[metric][n].p_holm for n in (other, "worse")] == pytest.approx(stats.holm(np.array(raw)))
    assert out["auc"]["worse"].delta == pytest.approx(
        stats.delong_test(group["worse"], group[out["auc"]["worse"].best], labels)[0]
    )
