"""The statistics columns of Tables 2-4, from the per-image scores of the runs (scores.csv).

    ap_low, ap_high, auc_low, auc_high   95% interval of the seed-mean AP and AUC (percent): two-way
                                         bootstrap over seeds and test images (`sagan.stats.row_interval`)
    ap_p, auc_p                          p of the row against the best row of its group on the same test
                                         images (AP: paired bootstrap; AUC: DeLong's test), Holm-adjusted
                                         over the group; empty for the best row itself

A group is the set of rows that the tables rank together (bold = best): one dataset (and, in Table 2,
one category of methods). Every resampling uses seed 0, so the tables are the same on every run.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from sagan.errors import DatasetError
from sagan.stats import ALPHA, compare_to_best, row_interval

INTERVAL_COLUMNS = ["ap_low", "ap_high", "auc_low", "auc_high"]
P_COLUMNS = ["ap_p", "auc_p"]


def read_scores(runs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(S, n) scores of the runs by seed, (n,) labels and (n,) image names, rows aligned by name. A row's
    `score` names its scores.csv column (the method's score, or an extra score such as DDAD's intra)."""
    frames = []
    for run, column in runs.sort_values("seed")[["run", "score"]].itertuples(index=False):
        path = Path(run) / "scores.csv"
        try:
            frame = pd.read_csv(path, usecols=["name", "label", column]).set_index("name").sort_index()
            frame = frame.rename(columns={column: "score"})
        except (OSError, ValueError) as err:
            raise DatasetError(f"{path}: no per-image scores ({err}); rerun `sagan evaluate {run}`") from None
        if len(frames) and not (
            frame.index.equals(frames[0].index) and frame["label"].equals(frames[0]["label"])
        ):
            raise DatasetError(f"{path}: other test images or labels than {runs['run'].iloc[0]}/scores.csv")
        frames.append(frame)
    first = frames[0]
    return (
        np.stack([f["score"].to_numpy(float) for f in frames]),
        first["label"].to_numpy(int),
        first.index.to_numpy(),
    )


def interval_columns(runs: pd.DataFrame) -> dict[str, float]:
    """The 95% interval columns (percent) of one table row; NaN without runs."""
    if runs.empty:
        return dict.fromkeys(INTERVAL_COLUMNS, math.nan)
    scores, labels, _ = read_scores(runs)
    ci = row_interval(scores, labels)
    return {f"{m}_{end}": 100 * ci[m][k] for m in ("ap", "auc") for k, end in enumerate(("low", "high"))}


def p_columns(parts: list[pd.DataFrame]) -> list[dict[str, float]]:
    """Holm-adjusted p of each row of one group against the group's best row (NaN for the best)."""
    read = [read_scores(part) for part in parts]
    for (_, labels, names), part in zip(read[1:], parts[1:]):
        if not (np.array_equal(names, read[0][2]) and np.array_equal(labels, read[0][1])):
            raise DatasetError(
                f"{part['run'].iloc[0]}: scored other test images than {parts[0]['run'].iloc[0]}; "
                "rows compared with each other need the same test set"
            )
    out = compare_to_best({i: scores for i, (scores, _, _) in enumerate(read)}, read[0][1])
    return [{f"{m}_p": out[m][i].p_holm for m in ("ap", "auc")} for i in range(len(parts))]


def add_p_columns(rows: list[dict], parts: list[pd.DataFrame], group_by: list[str]) -> None:
    """Fill ap_p and auc_p of every row (rows[i] summarises parts[i]), group by group."""
    keys = [tuple(row[c] for c in group_by) for row in rows]
    for key in dict.fromkeys(keys):
        members = [i for i, k in enumerate(keys) if k == key]
        for i, cols in zip(members, p_columns([parts[i] for i in members])):
            rows[i].update(cols)


def significant(p: float) -> bool:
    return not math.isnan(p) and p < ALPHA
