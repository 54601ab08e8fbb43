"""Table loc: does the anomaly map point at the finding? Per method and dataset, the mean and sample
std over seeds of each localization metric the evaluator computed from every test image's map
(metrics.json "localization"; definitions in `sagan.localization`), at the main anomaly ratio.

CSV columns (percent, two decimals): group, method, dataset, <metric>_mean and <metric>_std for
pixel_auroc, aupro, pointing_game and best_dice, n_seeds, ground_truth (masks | boxes | none),
selection. A metric that does not apply is empty in the CSV and "n/a" in Markdown and LaTeX, never 0:
the dataset has no pixel labels (LAG), or the method makes no anomaly map.
"""

from __future__ import annotations

import math

import pandas as pd

from sagan.report.markup import Cell, TableView, ranks
from sagan.report.runs import (
    LOCALIZATION_COLUMNS,
    dataset_label,
    dataset_sort_key,
    main_scores,
    row_order,
    table2_runs,
)

HEADERS = {
    "pixel_auroc": "Pixel AUROC",
    "aupro": "AUPRO (FPR ≤ 0.3)",
    "pointing_game": "Pointing game",
    "best_dice": "Best Dice",
}
STATS = [f"{m}_{s}" for m in LOCALIZATION_COLUMNS for s in ("mean", "std")]
TABLE_LOC_COLUMNS = ["group", "method", "dataset", *STATS, "n_seeds", "ground_truth", "selection"]
GROUND_TRUTH = {
    "masks": "the exact masks (synthetic sets)",
    "boxes": "the union of an image's expert boxes (VinDr-CXR: every reader's boxes together)",
}
NOTES = [
    "Mean ± std over seeds (%), from the anomaly map of every test image at the experiment resolution. "
    "Pixel AUROC: all test pixels pooled. AUPRO: per-region overlap integrated up to a false-positive "
    "rate of 0.3, normalised (Bergmann et al. 2021). Pointing game: share of the annotated abnormal "
    "images whose map maximum lies in the ground truth (Zhang et al. 2018). Best Dice: the best single "
    "threshold for all test pixels. Abnormal images without any annotation are left out.",
    "n/a: no pixel labels on the dataset (LAG), or the method makes no anomaly map. Best of each dataset "
    "in bold, second underlined.",
]


def summarise_loc(part: pd.DataFrame) -> dict:
    """Mean and sample std (percent) of each metric over the seeds that have it."""
    out: dict = {}
    for metric in LOCALIZATION_COLUMNS:
        values = (part[metric].astype(float) * 100.0).dropna()
        out[f"{metric}_mean"] = float(values.mean()) if len(values) else math.nan
        out[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return out


def build_table_loc(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per method (its registered score: the map is its map) and dataset of Table 2."""
    sel = main_scores(table2_runs(runs))
    rows = []
    for (group, method, dataset), part in sel.groupby(["group", "method", "dataset"]):
        truth = sorted(set(part["ground_truth"]) - {""})
        rows.append(
            {"group": group, "method": method, "dataset": dataset, **summarise_loc(part),
             "n_seeds": int(part["seed"].nunique()), "ground_truth": ",".join(truth) or "none",
             "selection": ",".join(sorted(set(part["selection"])))}
        )  # fmt: skip
    df = pd.DataFrame(rows, columns=TABLE_LOC_COLUMNS)

    def key(i: int) -> tuple:  # by dataset, then as in Table 2
        g, m, d = df["group"].iat[i], df["method"].iat[i], df["dataset"].iat[i]
        return (dataset_sort_key(d), row_order(g, m, d))

    return df.iloc[sorted(range(len(df)), key=key)].reset_index(drop=True)


def loc_cell(row: pd.Series, metric: str, rank: int) -> Cell:
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    if math.isnan(mean):
        return Cell("n/a")
    return Cell(f"{mean:.2f}" + (f" ± {std:.2f}" if not math.isnan(std) else ""), rank)


def view_table_loc(df: pd.DataFrame, extra_notes: list[str]) -> TableView:
    """Rows by dataset; the best and second of each metric within a dataset are marked."""
    df = df.reset_index(drop=True)
    cells: dict[tuple[int, str], Cell] = {}
    for _, part in df.groupby("dataset", sort=False):
        for metric in LOCALIZATION_COLUMNS:
            for i, rank in zip(part.index, ranks([float(v) for v in part[f"{metric}_mean"]])):
                cells[(i, metric)] = loc_cell(df.loc[i], metric, rank)
    rows = [
        [Cell(dataset_label(r.dataset)), Cell(r.group), Cell(r.method),
         *[cells[(i, m)] for m in LOCALIZATION_COLUMNS], Cell(str(r.n_seeds))]
        for i, r in zip(df.index, df.itertuples())
    ]  # fmt: skip
    truths = sorted({t for v in df["ground_truth"] for t in str(v).split(",") if t in GROUND_TRUTH})
    truth_note = [f"Ground truth: {'; '.join(GROUND_TRUTH[t] for t in truths)}."] if truths else []
    return TableView(
        "table_loc",
        "Localization. Does the anomaly map point at the finding? Pixel-level metrics (%) per method and dataset.",
        ["Dataset", "Group", "Method", *HEADERS.values(), "Seeds"],
        rows,
        [*NOTES, *truth_note, *extra_notes],
    )
