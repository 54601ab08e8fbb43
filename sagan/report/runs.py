"""The runs of one experiment folder as a table, and the selections the tables and figures use."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd

from sagan.errors import DatasetError
from sagan.experiments import GROUPS, MAIN_AR, ar_tag

log = logging.getLogger(__name__)

DATASET_ORDER = ["rsna", "vindr", "lag"]
DATASET_LABELS = {"rsna": "RSNA", "vindr": "VinDr-CXR", "lag": "LAG"}
LOCALIZATION_COLUMNS = ["pixel_auroc", "aupro", "pointing_game", "best_dice"]  # fractions; NaN = n/a
RUN_COLUMNS = [
    "run", "method", "group", "dataset", "seed", "ar", "use_acm", "use_arrm", "network",
    "selection", "iteration", "score_start", "ap", "auc", "score", *LOCALIZATION_COLUMNS, "ground_truth",
    "preset", "trained",
]  # fmt: skip
MAIN_SCORE = "score"  # the scores.csv column of a method's registered score


def ar_label(tag: str) -> str:
    """'0.2' -> '20%', '0_u' stays."""
    return tag if tag == "0_u" else f"{float(tag) * 100:g}%"


def ar_sort_key(tag: str) -> float:
    return -1.0 if tag == "0_u" else float(tag)


def dataset_label(name: str) -> str:
    if name.startswith("synth-"):
        return "synth-" + DATASET_LABELS.get(name[6:], name[6:])
    return DATASET_LABELS.get(name, name)


def dataset_sort_key(name: str) -> tuple:
    base = name[6:] if name.startswith("synth-") else name
    rank = DATASET_ORDER.index(base) if base in DATASET_ORDER else len(DATASET_ORDER)
    return (name.startswith("synth-"), rank, name)


def number(value: object) -> float:
    return math.nan if value is None else float(value)


def run_rows(path: Path) -> list[dict]:
    """The rows of one metrics.json: the method's score, then one row per extra score (`<method>-<name>`,
    e.g. ddad-intra, in the Table 2 group the evaluator recorded for it; no localization: the map
    belongs to the method's score)."""
    m = json.loads(path.read_text())
    model = m["model"]  # the run's model settings, whole (`sagan evaluate`)
    localization = m.get("localization") or {}
    row = {
        "run": str(path.parent),
        "method": str(m["method"]),
        "group": str(m["group"]),
        "dataset": str(m["dataset"]),
        "seed": int(m["seed"]),
        "ar": ar_tag(m.get("anomaly_ratio")),
        "use_acm": model.get("use_acm"),
        "use_arrm": model.get("use_arrm"),
        "network": model.get("network") or "",
        "selection": str(m.get("selection", "last")),
        "iteration": number(m.get("iteration")),  # the evaluated checkpoint's
        "score_start": int(m.get("score_start", 0)),  # Method.score_start (0 in runs from before it)
        "ap": float(m["ap"]),
        "auc": float(m["auc"]),
        "score": MAIN_SCORE,
        **{k: number(localization.get(k)) for k in LOCALIZATION_COLUMNS},
        "ground_truth": localization.get("ground_truth") or "",
        "preset": str(m.get("preset") or ""),  # the configuration preset the run was trained at
        "trained": str(m["method"]),  # the registered method that trained the run (also for extra scores)
    }
    extras = [
        {**row, "method": f"{row['method']}-{name}", "group": str(e.get("group", row["group"])),
         "ap": float(e["ap"]), "auc": float(e["auc"]), "score": str(name),
         "score_start": int(e.get("score_start", row["score_start"])),
         **dict.fromkeys(LOCALIZATION_COLUMNS, math.nan), "ground_truth": ""}
        for name, e in sorted(m.get("extra", {}).items())
    ]  # fmt: skip
    return [row, *extras]


def load_runs(results: str | Path) -> pd.DataFrame:
    """One row per run folder under RESULTS/runs/ that has a metrics.json (AP and AUC as fractions), and
    one per extra score of a run (column `score` names its scores.csv column)."""
    results = Path(results)
    rows = []
    for path in sorted((results / "runs").glob("**/metrics.json")):
        try:
            rows += run_rows(path)
        except (KeyError, TypeError, ValueError, AttributeError, json.JSONDecodeError) as err:
            raise DatasetError(
                f"{path}: not a run's metrics file ({err}); rerun `sagan evaluate {path.parent}`"
            ) from None
    if not rows:
        log.warning("no runs with metrics.json under %s/runs", results)
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def row_order(group: str, method: str, dataset: str) -> tuple:
    """Rows of the per-method tables: the paper's group order, ours last in its group, then dataset."""
    g_rank = GROUPS.index(group) if group in GROUPS else len(GROUPS)
    return (g_rank, group, method == "sagan", method, dataset_sort_key(dataset))


def is_default(runs: pd.DataFrame) -> pd.Series:
    """Runs with the method's default modules (the Table 3 variants switch ACM or ARRM off)."""
    return (runs["use_acm"] != False) & (runs["use_arrm"] != False)  # noqa: E712 (None = no such option)


def main_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of the methods' registered scores (one per run folder), without the extra scores."""
    return runs[runs["score"] == MAIN_SCORE]


def table2_runs(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[is_default(runs) & (runs["ar"] == MAIN_AR)]


def table3_datasets(runs: pd.DataFrame) -> list[str]:
    """Datasets on which SAGAN variants without ACM or ARRM were trained."""
    sel = (runs["method"] == "sagan") & ~is_default(runs) & (runs["ar"] == MAIN_AR)
    return sorted(set(runs.loc[sel, "dataset"]), key=dataset_sort_key)


def table4_datasets(runs: pd.DataFrame) -> list[str]:
    """Datasets on which the default SAGAN was trained at more than the main anomaly ratio."""
    sel = (runs["method"] == "sagan") & is_default(runs) & (runs["ar"] != MAIN_AR)
    return sorted(set(runs.loc[sel, "dataset"]), key=dataset_sort_key)
