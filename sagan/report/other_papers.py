"""Published numbers of the same benchmark from papers other than SAGAN's (sagan/reference/other_papers.yaml),
in their own labelled columns of Tables 2 and 4, never mixed with the SAGAN paper's values.

CSV columns (percent, empty where the source gives no value):
    Table 2: ref_<source>_ap, ref_<source>_auc        the source's value for the row's method and dataset
                                                      (at the main anomaly ratio where the method has one)
    Table 4: ref_<source>_<method>_ap, ..._auc        the source's value for <method> on the row's dataset
                                                      at the row's anomaly ratio (DDAD's AR curve)
A row of an extra score (ddad-intra) takes the records of that score (`score: intra`).
"""

from __future__ import annotations

import math
from importlib import resources

import pandas as pd
import yaml

from sagan.experiments import MAIN_AR, ar_tag
from sagan.report.markup import Cell, fmt

METRICS = ("ap", "auc")


def other_papers() -> dict:
    """The `sources` and `values` of sagan/reference/other_papers.yaml."""
    return yaml.safe_load(resources.files("sagan").joinpath("reference/other_papers.yaml").read_text())


def row_method(record: dict) -> str:
    """The Table 2 row a record belongs to: the method, or `<method>-<score>` for an extra score."""
    return (
        record["method"] if record.get("score", "main") == "main" else f"{record['method']}-{record['score']}"
    )


def record_ar(record: dict) -> str | None:
    return None if record.get("anomaly_ratio") is None else ar_tag(record["anomaly_ratio"])


# --- Table 2 ----------------------------------------------------------------------------------
def table2_columns(ref: dict) -> list[str]:
    return [f"ref_{source}_{metric}" for source in ref["sources"] for metric in METRICS]


def table2_values(ref: dict, dataset: str, method: str) -> dict[str, float]:
    """ref_<source>_<metric> of one Table 2 row (NaN where the source gives none)."""
    out = dict.fromkeys(table2_columns(ref), math.nan)
    for r in ref["values"]:
        if r["dataset"] == dataset and row_method(r) == method and record_ar(r) in (None, MAIN_AR):
            out.update({f"ref_{r['source']}_{m}": float(r[m]) for m in METRICS if m in r})
    return out


RefColumn = tuple[str, str, str]  # (CSV column, header, source key)


def table2_header_cells(ref: dict, df: pd.DataFrame, dataset: str, label: str) -> list[RefColumn]:
    """The reference columns with a value on this dataset, in source order."""
    on = df[df["dataset"] == dataset]
    return [
        (f"ref_{source}_{metric}", f"{label} {metric.upper()} ({info['label']})", source)
        for source, info in ref["sources"].items()
        for metric in METRICS
        if on[f"ref_{source}_{metric}"].notna().any()
    ]


# --- Table 4 ----------------------------------------------------------------------------------
def curves(ref: dict) -> list[tuple[str, str]]:
    """(source, method) pairs with values at several anomaly ratios: the curves Table 4 shows beside
    SAGAN's."""
    pairs = [(r["source"], r["method"]) for r in ref["values"] if record_ar(r) is not None]
    return list(dict.fromkeys(pairs))


def table4_columns(ref: dict) -> list[str]:
    return [f"ref_{source}_{method}_{m}" for source, method in curves(ref) for m in METRICS]


def table4_values(ref: dict, dataset: str, ar: str) -> dict[str, float]:
    out = dict.fromkeys(table4_columns(ref), math.nan)
    for r in ref["values"]:
        if r["dataset"] == dataset and record_ar(r) == ar and r.get("score", "main") == "main":
            out.update({f"ref_{r['source']}_{r['method']}_{m}": float(r[m]) for m in METRICS if m in r})
    return out


def table4_header_cells(ref: dict, df: pd.DataFrame) -> list[RefColumn]:
    return [
        (f"ref_{source}_{method}_{m}", f"{method} {m.upper()} ({ref['sources'][source]['label']})", source)
        for source, method in curves(ref)
        for m in METRICS
        if df[f"ref_{source}_{method}_{m}"].notna().any()
    ]


# --- shared -----------------------------------------------------------------------------------
def cells(row: pd.Series, columns: list[RefColumn]) -> list[Cell]:
    return [Cell(fmt(row[column]) or "–") for column, _, _ in columns]


def sources_note(ref: dict, columns: list[RefColumn]) -> list[str]:
    """One note naming the source of every shown reference column."""
    shown = {source for _, _, source in columns}
    parts = [
        f"({info['label']}) = published in {info['citation']}; {info['setting']}"
        for key, info in ref["sources"].items()
        if key in shown
    ]
    return ["Other papers' values, not the SAGAN paper's: " + "; ".join(parts) + "."] if parts else []
