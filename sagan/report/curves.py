"""Where a validation curve flattens: the convergence criterion of Table 2's rows and of the study in
benchmarks/convergence.py (issue 12).

On the seed-mean validation AUC of a row (val_log.csv, `eval.val_every`; the test set is never used):
the plateau is the first logged iteration t after which the curve never rises more than TOL (0.01)
above its value at t. The curve has flattened when t <= 75% of the budget (the last quarter adds less
than TOL); otherwise it is still rising, and its rise says how far it is from flat: the most the
curve gains over the budget's last quarter (its highest value there less its value at the last logged
iteration within 75% of the budget, in points; more than TOL whenever the curve has not flattened).

How far a row of a synthetic set is from the plateau in iterations: its budget against its method's
bench budget (PRESETS["bench"], config/bench.yaml), the budget at which the bench study measured its
curves flat, at the demo's networks. A row trained for less than RANKED_SHARE of it is a pipeline
check (the demo gives five baselines 1%), and Table 2 does not rank it with the others.

A staged method is judged over the stage that trains its score (`Method.score_start`, recorded in
metrics.json as "score_start"): AMAE's score exists only in its last stage, f-AnoGAN's needs the
encoder of its second, and before that the curve is flat (or noise) whatever the budget. There the
span is [start, budget]: only the points logged after `start` count, and the 75% is of that span.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd

from sagan.config import PRESET_BASE

TOL = 0.01  # AUC: one point
FLAT_FRACTION = 0.75  # flattened when the plateau is at most this fraction of the budget
CURVE_NOTE = (
    "val. curve: the seed-mean validation AUC (validation split, never the test set); 'flat from t' = "
    f"after iteration t it never rises more than {100 * TOL:g} point above its value at t, with t at most "
    f"{100 * FLAT_FRACTION:g}% of the budget; otherwise 'rising', with the most points it gains over the "
    "budget's last quarter (a staged method's budget: the stage that trains its score)."
)


RANKED_SHARE = 0.1  # Table 2 ranks a synthetic row only when trained for >= this share of its bench budget
# the presets with the bench's networks: its base (demo) and every preset built on that base (ci, bench;
# sagan/config.py changes only budgets in them, and tests/test_trainer.py checks it)
BENCH_NETWORKS = {
    PRESET_BASE["bench"],
    *(p for p, base in PRESET_BASE.items() if base == PRESET_BASE["bench"]),
}
BUDGET_NOTE = (
    "Iterations: the rows' training budget and, in parentheses, the method's bench budget "
    "(config/bench.yaml), at which its validation curves were measured flat on these sets with the same "
    f"networks (benchmarks/RESULTS.md). A row trained for less than {100 * RANKED_SHARE:g}% of it is a "
    "pipeline check, 'not ranked': neither bold nor underlined, no †, and the best of its group is sought "
    "among the other rows."
)


@functools.cache
def bench_budget(method: str, preset: str, dataset: str) -> float:
    """The bench budget of a registered method, for a run at a preset with the bench's networks on a
    synthetic set; NaN for other runs (the bench has no budget for the real datasets or the paper's
    networks) and for names the registry does not know."""
    if preset not in BENCH_NETWORKS or not dataset.startswith("synth-"):
        return math.nan
    from sagan.errors import ConfigError
    from sagan.runtime import resolve_config  # the registry imports torch: only for such runs

    try:
        return float(resolve_config(method, 0, "bench").train.iterations)
    except ConfigError:
        return math.nan


def ranked(budget: float, bench: float) -> bool:
    """Whether Table 2 ranks a row trained for `budget` iterations (NaN: unknown, ranked)."""
    return not budget < RANKED_SHARE * bench  # False only when both are known and the row is short


def plateau(curve: pd.Series, tol: float = TOL) -> int:
    """First iteration after which the curve never rises more than tol above its value there."""
    values = curve.to_numpy()
    later_max = np.maximum.accumulate(values[::-1])[::-1]
    return int(curve.index[np.argmax(later_max - values <= tol)])


def scoring_span(curve: pd.Series, start: int = 0) -> pd.Series:
    """The points logged after `start` (the iteration at which the stage that trains the score begins)."""
    return curve[curve.index > start]


def flattened(t: int, budget: int, start: int = 0) -> bool:
    return t - start <= FLAT_FRACTION * (budget - start)


def last_quarter_rise(curve: pd.Series, budget: int, start: int = 0) -> float:
    """Points of AUC the curve gains at most over the last quarter of [start, budget]: its highest value
    after the last logged iteration within 75% of that span, less its value there (>= 0; 0 when nothing
    is logged on one side). A curve that has not flattened gains more than TOL by this measure."""
    curve = scoring_span(curve, start)
    cut = start + FLAT_FRACTION * (budget - start)
    head = curve[curve.index <= cut]
    tail = curve[curve.index > cut]
    return float(max(0.0, 100 * (tail.max() - head.iloc[-1]))) if len(head) and len(tail) else 0.0


def seed_mean(runs: list[str], column: str) -> pd.Series | None:
    """Mean over the runs' val_log.csv of one column, by iteration (None when no run logged it)."""
    frames = []
    for run in runs:
        path = Path(run) / "val_log.csv"
        if path.is_file():
            log = pd.read_csv(path).set_index("iteration")
            if column in log.columns:
                frames.append(log[column])
    return pd.concat(frames, axis=1).mean(axis=1) if frames else None


def curve_columns(runs: list[str], column: str, budget: float, start: int = 0) -> dict[str, float]:
    """Table 2's curve columns of one row, judged over [start, budget]: val_plateau (iteration),
    val_flat (1/0), val_rise (points); NaN without validation logs after `start`."""
    curve = seed_mean(runs, column)
    if curve is not None:
        curve = scoring_span(curve, start)
    if curve is None or not len(curve) or math.isnan(budget):
        return {"val_plateau": math.nan, "val_flat": math.nan, "val_rise": math.nan}
    t = plateau(curve)
    return {
        "val_plateau": float(t),
        "val_flat": float(flattened(t, int(budget), start)),
        "val_rise": last_quarter_rise(curve, int(budget), start),
    }


def curve_text(row: pd.Series) -> str:
    """'flat from 320' or 'rising (+3.1)'; '–' without validation logs."""
    if pd.isna(row.get("val_plateau")):
        return "–"
    if row["val_flat"]:
        return f"flat from {int(row['val_plateau'])}"
    return f"rising ({row['val_rise']:+.1f})"
