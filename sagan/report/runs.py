"""The runs of one experiment folder as a table, and the selections the tables and figures use."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from sagan.errors import DatasetError
from sagan.experiments import MAIN_AR, ar_tag

log = logging.getLogger(__name__)

DATASET_ORDER = ["rsna", "vindr", "lag"]
DATASET_LABELS = {"rsna": "RSNA", "vindr": "VinDr-CXR", "lag": "LAG"}
RUN_COLUMNS = [
    "run", "method", "group", "dataset", "seed", "ar", "use_acm", "use_arrm", "network",
    "selection", "ap", "auc",
]  # fmt: skip


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


def load_runs(results: str | Path) -> pd.DataFrame:
    """One row per run folder under RESULTS/runs/ that has a metrics.json (AP and AUC as fractions)."""
    results = Path(results)
    rows = []
    for path in sorted((results / "runs").glob("**/metrics.json")):
        try:
            m = json.loads(path.read_text())
            model = m["model"]  # the run's model settings, whole (`sagan evaluate`)
            rows.append(
                {
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
                    "ap": float(m["ap"]),
                    "auc": float(m["auc"]),
                }
            )
        except (KeyError, TypeError, ValueError, AttributeError, json.JSONDecodeError) as err:
            raise DatasetError(
                f"{path}: not a run's metrics file ({err}); rerun `sagan evaluate {path.parent}`"
            ) from None
    if not rows:
        log.warning("no runs with metrics.json under %s/runs", results)
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def is_default(runs: pd.DataFrame) -> pd.Series:
    """Runs with the method's default modules (the Table 3 variants switch ACM or ARRM off)."""
    return (runs["use_acm"] != False) & (runs["use_arrm"] != False)  # noqa: E712 (None = no such option)


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
