"""Tables 1-4 and table_loc as CSV, Markdown and LaTeX, and the experiment's metrics.json, from stored
run outputs.

Each table is built as a DataFrame (its CSV) and described once as a `TableView` (title, header, cells,
notes) that `sagan.report.markup` renders as Markdown and LaTeX.

Values are percentages with two decimals: mean and sample standard deviation (ddof = 1) over seeds.
In Markdown and LaTeX the best value of each group is bold and the second underlined. The model
selection of the runs (`last` or `test-oracle`) is stated in every table.
"""

from __future__ import annotations

import json
import logging
import math
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from sagan.atomic import write_atomic
from sagan.errors import DatasetError
from sagan.experiments import MAIN_AR, TABLE3_ROWS
from sagan.report import other_papers as refs
from sagan.report.curves import BUDGET_NOTE, CURVE_NOTE, bench_budget, curve_columns, curve_text, ranked
from sagan.report.localization_table import TABLE_LOC_COLUMNS, build_table_loc, view_table_loc
from sagan.report.markup import RENDERERS, Cell, TableView, fmt, ranks, to_csv
from sagan.report.runs import (
    LOCALIZATION_COLUMNS,
    MAIN_SCORE,
    ar_label,
    ar_sort_key,
    dataset_label,
    dataset_sort_key,
    is_default,
    load_runs,
    row_order,
    table2_runs,
    table3_datasets,
    table4_datasets,
)
from sagan.report.uncertainty import INTERVAL_COLUMNS, P_COLUMNS, add_p_columns, interval_columns, significant

log = logging.getLogger(__name__)

STATS_COLUMNS = [*INTERVAL_COLUMNS, *P_COLUMNS]  # sagan/report/uncertainty.py
CURVE_COLUMNS = ["val_plateau", "val_flat", "val_rise"]  # sagan/report/curves.py
TABLE_COLUMNS = {
    "table1": ["dataset", "train_normal", "unlabeled_total", "unlabeled_normal", "unlabeled_abnormal",
               "test_normal", "test_abnormal"],
    "table2": ["group", "method", "dataset", "ap_mean", "ap_std", "auc_mean", "auc_std", *STATS_COLUMNS,
               "n_seeds", "paper_ap", "paper_auc", "selection", "iterations", "bench_iterations", "ranked",
               *CURVE_COLUMNS],
    "table3": ["variant", "ap_mean", "ap_std", "auc_mean", "auc_std", *STATS_COLUMNS, "n_seeds", "paper_ap",
               "paper_auc", "dataset", "network", "selection"],
    "table4": ["ar", "ap_mean", "ap_std", "auc_mean", "auc_std", *STATS_COLUMNS, "n_seeds", "dataset",
               "selection"],
    "table_loc": TABLE_LOC_COLUMNS,  # sagan/report/localization_table.py
}  # fmt: skip
OTHER_PAPERS = refs.other_papers()  # their columns follow those of Tables 2 and 4
TABLE_COLUMNS["table2"] += refs.table2_columns(OTHER_PAPERS)
TABLE_COLUMNS["table4"] += refs.table4_columns(OTHER_PAPERS)

NETWORK_NOTE = {
    "paper": "paper (this project's default: the authors' network, but the patch position code survives instance norm)",
    "authors": "authors (the authors' exact network: instance norm removes the position code, so ACM = shared-weight patches)",
}  # fmt: skip


def paper_values() -> dict:
    """The values the paper states (sagan/reference/paper_values.yaml)."""
    text = resources.files("sagan").joinpath("reference/paper_values.yaml").read_text()
    return yaml.safe_load(text)


# --- aggregation ------------------------------------------------------------------------------
def summarise(runs: pd.DataFrame) -> dict:
    """Mean, sample std and 95% interval (percent) of AP and AUC over the given runs' seeds."""
    n = int(runs["seed"].nunique()) if len(runs) else 0
    out: dict = {"n_seeds": n, **interval_columns(runs)}
    for metric in ("ap", "auc"):
        values = runs[metric].astype(float) * 100.0
        out[f"{metric}_mean"] = float(values.mean()) if n else math.nan
        out[f"{metric}_std"] = float(values.std(ddof=1)) if n > 1 else math.nan
    out["selection"] = ",".join(sorted(set(runs["selection"]))) if n else ""
    return out


def build_table1(results: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((results / "splits").glob("*.json")):
        try:
            summary = json.loads(path.read_text())
            rows.append({"dataset": summary.get("dataset", path.stem), **summary["table1"]})
        except (KeyError, TypeError, json.JSONDecodeError) as err:
            raise DatasetError(
                f"{path}: not a `sagan splits` summary ({err}); rerun `sagan splits`"
            ) from None
    df = pd.DataFrame(rows, columns=TABLE_COLUMNS["table1"])
    return df.iloc[sorted(range(len(df)), key=lambda i: dataset_sort_key(df["dataset"].iat[i]))]


def build_table2(runs: pd.DataFrame, paper: dict) -> pd.DataFrame:
    sel = table2_runs(runs)
    known = paper.get("table2", {}).get("values", {})
    rows, parts = [], []
    for (group, method, dataset), part in sel.groupby(["group", "method", "dataset"]):
        ref = known.get(dataset, {}).get(method, {})
        score = part["score"].iat[0]
        # the budget: the evaluated checkpoint is the last one (a test-oracle's is not: unknown here)
        budget = float(part["iteration"].max()) if set(part["selection"]) == {"last"} else math.nan
        bench = bench_budget(part["trained"].iat[0], part["preset"].iat[0], dataset)
        rows.append(
            {"group": group, "method": method, "dataset": dataset, **summarise(part),
             "paper_ap": ref.get("ap", math.nan), "paper_auc": ref.get("auc", math.nan),
             "iterations": budget, "bench_iterations": bench, "ranked": float(ranked(budget, bench)),
             **curve_columns(list(part["run"]), "auc" if score == MAIN_SCORE else f"{score}_auc", budget,
                             int(part["score_start"].max())),
             **refs.table2_values(OTHER_PAPERS, dataset, method)}
        )  # fmt: skip
        parts.append(part)
    # the rows ranked together; a pipeline-check row (curves.ranked) is compared with none
    keep = [i for i, row in enumerate(rows) if row["ranked"]]
    add_p_columns([rows[i] for i in keep], [parts[i] for i in keep], ["group", "dataset"])
    for i in set(range(len(rows))) - set(keep):
        rows[i].update(dict.fromkeys(P_COLUMNS, math.nan))
    df = pd.DataFrame(rows, columns=TABLE_COLUMNS["table2"])
    order = sorted(range(len(df)), key=lambda i: row_order(*df.iloc[i][["group", "method", "dataset"]]))
    return df.iloc[order]


def build_table3(runs: pd.DataFrame, paper: dict) -> pd.DataFrame:
    ref = paper.get("table3", {})
    rows, parts = [], []
    at_main = runs[runs["ar"] == MAIN_AR]
    for dataset in table3_datasets(runs):
        on = at_main[at_main["dataset"] == dataset]
        for key, label, method, acm, arrm in TABLE3_ROWS:
            part = on[on["method"] == method]
            if acm is None:
                part = part[is_default(part)]
            else:
                part = part[(part["use_acm"] == acm) & (part["use_arrm"] == arrm)]
            if part.empty:
                continue
            values = ref.get("values", {}).get(key, {}) if dataset == ref.get("dataset") else {}
            networks = sorted({c for c in part["network"] if c})
            rows.append(
                {"variant": label, **summarise(part), "paper_ap": values.get("ap", math.nan),
                 "paper_auc": values.get("auc", math.nan), "dataset": dataset,
                 "network": ",".join(networks)}
            )  # fmt: skip
            parts.append(part)
    add_p_columns(rows, parts, ["dataset"])
    return pd.DataFrame(rows, columns=TABLE_COLUMNS["table3"])


def build_table4(runs: pd.DataFrame) -> pd.DataFrame:
    rows, parts = [], []
    for dataset in table4_datasets(runs):
        on = runs[(runs["method"] == "sagan") & is_default(runs) & (runs["dataset"] == dataset)]
        for ar in sorted(set(on["ar"]), key=ar_sort_key):
            rows.append(
                {"ar": ar, **summarise(on[on["ar"] == ar]), "dataset": dataset,
                 **refs.table4_values(OTHER_PAPERS, dataset, ar)}
            )  # fmt: skip
            parts.append(on[on["ar"] == ar])
    add_p_columns(rows, parts, ["dataset"])
    return pd.DataFrame(rows, columns=TABLE_COLUMNS["table4"])


def build_tables(results: str | Path) -> dict[str, pd.DataFrame]:
    results = Path(results)
    runs = load_runs(results)
    paper = paper_values()
    return {
        "table1": build_table1(results),
        "table2": build_table2(runs, paper),
        "table3": build_table3(runs, paper),
        "table4": build_table4(runs),
        "table_loc": build_table_loc(runs),
    }


# --- each table as data (title, header, cells, notes); markup.py renders it -------------------
def selection_note(df: pd.DataFrame) -> list[str]:
    values = sorted({s for v in df.get("selection", []) for s in str(v).split(",") if s})
    if "test-oracle" in values:
        return [
            "**Model selection: test-oracle** (checkpoint chosen on the test set, as the authors' training "
            "loop keeps it; optimistic)"
            + (" for some runs; others: last checkpoint." if len(values) > 1 else ".")
        ]
    return ["Model selection: last checkpoint (no test labels used)."] if values else []


STATS_NOTE = (
    "[low, high]: 95% interval of the mean over test images and seeds (two-way bootstrap, 2000 resamples). "
    "†: below the best of its group at p < 0.05, Holm-corrected over the group (AUC: DeLong's test; "
    "AP: paired bootstrap), on the same test images."
)


def metric_cell(row: pd.Series, metric: str, rank: int) -> Cell:
    """'mean ± std [low, high]', with † where the row is significantly below its group's best."""
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    if math.isnan(mean):
        return Cell("–")
    text = f"{mean:.2f}" + (f" ± {std:.2f}" if not math.isnan(std) else "")
    text += f" [{row[f'{metric}_low']:.2f}, {row[f'{metric}_high']:.2f}]"
    return Cell(text + ("†" if significant(row[f"{metric}_p"]) else ""), rank)


def ranked_cells(df: pd.DataFrame, groups: list[str]) -> dict[tuple[int, str], Cell]:
    """Metric cells with best/second ranks computed within each group of rows (a row whose `ranked`
    column is False takes no rank)."""
    cells: dict[tuple[int, str], Cell] = {}
    grouped = df.groupby(groups, sort=False) if groups else [(None, df)]
    for _, part in grouped:
        taking = part["ranked"].astype(bool) if "ranked" in part else pd.Series(True, part.index)
        for metric in ("ap", "auc"):
            means = [float(v) if t else math.nan for v, t in zip(part[f"{metric}_mean"], taking)]
            for idx, r in zip(part.index, ranks(means)):
                cells[(idx, metric)] = metric_cell(df.loc[idx], metric, r)
    return cells


def datasets_on(df: pd.DataFrame) -> str:
    return ", ".join(dataset_label(d) for d in dict.fromkeys(df["dataset"])) or "–"


def per_dataset_rows(df: pd.DataFrame, header: list[str], cells: list[list[Cell]]) -> tuple[list, list]:
    """Tables 3 and 4: a leading Dataset column only when the rows span several datasets."""
    if df["dataset"].nunique() <= 1:
        return header, cells
    labels = [Cell(dataset_label(d)) for d in df["dataset"]]
    return ["Dataset", *header], [[label, *row] for label, row in zip(labels, cells)]


def view_table1(df: pd.DataFrame) -> TableView:
    rows = [
        [Cell(dataset_label(r.dataset)), Cell(str(r.train_normal)),
         Cell(f"{r.unlabeled_total} ({r.unlabeled_normal} normal + {r.unlabeled_abnormal} abnormal)"),
         Cell(f"{r.test_normal} normal + {r.test_abnormal} abnormal")]
        for r in df.itertuples()
    ]  # fmt: skip
    return TableView(
        "table1",
        "Table 1. Summary of dataset repartitions.",
        ["Dataset", "Normal training T_n", "Unlabelled T_u (pool)", "Test"],
        rows,
        [
            "T_u is drawn from the pool in parentheses (|T_u| = |T_n|; its make-up depends on the anomaly ratio)."
        ],
    )


def budget_text(part: pd.DataFrame) -> str:
    """'600 (1200)', or '56 (5600), not ranked': a method's training budget and its bench budget, over
    its rows (one per dataset)."""
    count = lambda v: "–" if math.isnan(v) else f"{int(v)}"  # noqa: E731
    texts = dict.fromkeys(
        count(i) + (f" ({count(b)})" if not math.isnan(b) else "") + ("" if r else ", not ranked")
        for i, b, r in zip(part["iterations"], part["bench_iterations"], part["ranked"])
    )
    return "; ".join(texts)


def view_table2(df: pd.DataFrame) -> TableView:
    """One row per method; per dataset AP and AUC, and the paper's values where it states them."""
    df = df.reset_index(drop=True)
    datasets = sorted(set(df["dataset"]), key=dataset_sort_key)
    with_paper = [
        d for d in datasets if df.loc[df["dataset"] == d, ["paper_ap", "paper_auc"]].notna().any().any()
    ]
    with_curves = [d for d in datasets if df.loc[df["dataset"] == d, "val_plateau"].notna().any()]
    with_budget = bool(df["bench_iterations"].notna().any())
    cells = ranked_cells(df, ["group", "dataset"])
    other = OTHER_PAPERS
    ref_columns = {d: refs.table2_header_cells(other, df, d, dataset_label(d)) for d in datasets}
    header = ["Group", "Method", *(["Iterations (bench)"] if with_budget else [])]
    for d in datasets:
        header += [f"{dataset_label(d)} AP", f"{dataset_label(d)} AUC"]
        if d in with_curves:
            header.append(f"{dataset_label(d)} val. curve")
        if d in with_paper:
            header += [f"{dataset_label(d)} AP (paper)", f"{dataset_label(d)} AUC (paper)"]
        header += [h for _, h, _ in ref_columns[d]]  # other papers' values, in their own columns
    rows = []
    for (group, method), part in df.groupby(["group", "method"], sort=False):
        row = [Cell(group), Cell(method), *([Cell(budget_text(part))] if with_budget else [])]
        for d in datasets:
            hit = part.index[part["dataset"] == d]
            row += [cells[(hit[0], "ap")], cells[(hit[0], "auc")]] if len(hit) else [Cell("–"), Cell("–")]
            if d in with_curves:
                row.append(Cell(curve_text(part.loc[hit[0]]) if len(hit) else "–"))
            if d in with_paper:
                row += [
                    Cell(fmt(part.at[hit[0], c]) or "–") if len(hit) else Cell("–")
                    for c in ("paper_ap", "paper_auc")
                ]
            row += (
                refs.cells(part.loc[hit[0]], ref_columns[d])
                if len(hit)
                else [Cell("–")] * len(ref_columns[d])
            )
        rows.append(row)
    shown = [c for d in datasets for c in ref_columns[d]]
    return TableView(
        "table2",
        "Table 2. AP and AUC (%) of each method, mean ± std over seeds, at anomaly ratio 60%.",
        header,
        rows,
        ["Best in each group and dataset in bold, second underlined. (paper) = value stated in the paper.",
         STATS_NOTE, *refs.sources_note(other, shown), *selection_note(df),
         *([CURVE_NOTE] if with_curves else []), *([BUDGET_NOTE] if with_budget else [])],
    )  # fmt: skip


def view_table3(df: pd.DataFrame) -> TableView:
    df = df.reset_index(drop=True)
    cells = ranked_cells(df, ["dataset"])
    header, rows = per_dataset_rows(
        df,
        ["Variant", "AP", "AUC", "AP (paper)", "AUC (paper)", "Seeds"],
        [[Cell(r.variant), cells[(i, "ap")], cells[(i, "auc")], Cell(fmt(r.paper_ap) or "–"),
          Cell(fmt(r.paper_auc) or "–"), Cell(str(r.n_seeds))]
         for i, r in zip(df.index, df.itertuples())],
    )  # fmt: skip
    networks = sorted({c for v in df["network"] for c in str(v).split(",") if c})
    network_note = "; ".join(NETWORK_NOTE.get(c, c) for c in networks) if networks else "–"
    return TableView(
        "table3",
        f"Table 3. Ablation of SAGAN's modules on {datasets_on(df)}: AP and AUC (%), mean ± std over seeds.",
        header,
        rows,
        [f"SAGAN network: {network_note}.",
         "Best in bold, second underlined. (paper) = value stated in the paper (its baseline row is Brainomaly).",
         STATS_NOTE, *selection_note(df)],
    )  # fmt: skip


def view_table4(df: pd.DataFrame) -> TableView:
    df = df.reset_index(drop=True)
    cells = ranked_cells(df, ["dataset"])
    other = OTHER_PAPERS
    ref_columns = refs.table4_header_cells(other, df)  # other methods' published AR curves
    header, rows = per_dataset_rows(
        df,
        ["AR", "AP", "AUC", *[h for _, h, _ in ref_columns], "Seeds"],
        [[Cell(ar_label(r.ar)), cells[(i, "ap")], cells[(i, "auc")], *refs.cells(df.loc[i], ref_columns),
          Cell(str(r.n_seeds))]
         for i, r in zip(df.index, df.itertuples())],
    )  # fmt: skip
    return TableView(
        "table4",
        f"Table 4. SAGAN on {datasets_on(df)} against the anomaly ratio (AR) of the unlabelled set: AP and AUC (%).",
        header,
        rows,
        [
            "AR = 0_u: trained without unlabelled data. Best in bold, second underlined.",
            STATS_NOTE,
            *refs.sources_note(other, ref_columns),
            *selection_note(df),
        ],
    )


VIEWS = {
    "table1": view_table1,
    "table2": view_table2,
    "table3": view_table3,
    "table4": view_table4,
    "table_loc": lambda df: view_table_loc(df, selection_note(df)),
}


def metrics_summary(tables: dict[str, pd.DataFrame]) -> dict:
    """Nested numbers for `dvc metrics diff` (percent, two decimals)."""

    def nums(r) -> dict:
        return {
            k: round(float(getattr(r, k)), 2)
            for k in ("ap_mean", "auc_mean")
            if not math.isnan(getattr(r, k))
        }

    out: dict = {"table2": {}, "table3": {}, "table4": {}, "table_loc": {}}
    for r in tables["table2"].itertuples():
        out["table2"].setdefault(r.dataset, {})[r.method] = nums(r)
    for r in tables["table3"].itertuples():
        out["table3"].setdefault(r.dataset, {})[r.variant] = nums(r)
    for r in tables["table4"].itertuples():
        out["table4"].setdefault(r.dataset, {})[f"ar_{r.ar}"] = nums(r)
    for r in tables["table_loc"].itertuples():  # n/a metrics are left out
        means = {f"{k}_mean": round(float(getattr(r, f"{k}_mean")), 2) for k in LOCALIZATION_COLUMNS}
        means = {k: v for k, v in means.items() if not math.isnan(v)}
        out["table_loc"].setdefault(r.dataset, {})[r.method] = means
    return out


def render_all(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """File name -> text, for every table and format."""
    files = {}
    for name, df in tables.items():
        files[f"{name}.csv"] = to_csv(df)
        view = VIEWS[name](df)
        for kind, render in RENDERERS.items():
            files[f"{name}.{kind}"] = render(view)
    return files


def write_tables(results: str | Path, out: str | Path) -> list[Path]:
    tables = build_tables(results)
    written = []
    for fname, text in render_all(tables).items():
        write_atomic(Path(out) / fname, text)
        written.append(Path(out) / fname)
    metrics = Path(results) / "metrics.json"
    write_atomic(metrics, json.dumps(metrics_summary(tables), indent=2, sort_keys=True) + "\n")
    return [*written, metrics]


# --- CLI --------------------------------------------------------------------------------------
def cli_tables(args) -> int:
    """`sagan tables --results results/<name> --out DIR`: Tables 1-4, table_loc, results/<name>/metrics.json."""
    for path in write_tables(args.results, args.out):
        print(f"wrote {path}")
    return 0
