"""Tables 1-4 as CSV, Markdown and LaTeX, and the experiment's metrics.json, from stored run outputs.

Values are percentages with two decimals: mean and sample standard deviation (ddof = 1) over seeds.
In Markdown and LaTeX the best value of each group is bold and the second underlined. The model
selection of the runs (`last` or `test-oracle`) is stated in every table.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from sagan.atomic import write_atomic
from sagan.errors import DatasetError
from sagan.report.runs import (
    GROUP_ORDER,
    MAIN_AR,
    ar_label,
    ar_sort_key,
    dataset_label,
    dataset_sort_key,
    is_default,
    load_runs,
    table2_runs,
    table3_datasets,
    table4_datasets,
)

log = logging.getLogger(__name__)

TABLE_COLUMNS = {
    "table1": ["dataset", "train_normal", "unlabeled_total", "unlabeled_normal", "unlabeled_abnormal",
               "test_normal", "test_abnormal"],
    "table2": ["group", "method", "dataset", "ap_mean", "ap_std", "auc_mean", "auc_std", "n_seeds",
               "paper_ap", "paper_auc", "selection"],
    "table3": ["variant", "ap_mean", "ap_std", "auc_mean", "auc_std", "n_seeds", "paper_ap", "paper_auc",
               "dataset", "position_code", "selection"],
    "table4": ["ar", "ap_mean", "ap_std", "auc_mean", "auc_std", "n_seeds", "dataset", "selection"],
}  # fmt: skip
TABLE_NAMES = list(TABLE_COLUMNS)
FORMATS = ("csv", "md", "tex")

# Table 3 rows: (key in paper_values.yaml, label, method, use_acm, use_arrm); None = no such option.
TABLE3_ROWS = [
    ("baseline", "Baseline (Brainomaly)", "brainomaly", None, None),
    ("plain", "SAGAN w/o ACM, ARRM", "sagan", False, False),
    ("acm", "+ACM", "sagan", True, False),
    ("arrm", "+ARRM", "sagan", False, True),
    ("full", "+ACM and ARRM", "sagan", True, True),
]
POSITION_CODE_NOTE = {
    "effective": "effective (this project's default: the patch position survives instance norm)",
    "official": "official (the authors' code: instance norm removes the position code, so ACM = shared-weight patches)",
}  # fmt: skip


def paper_values() -> dict:
    """The values the paper states (sagan/reference/paper_values.yaml)."""
    text = resources.files("sagan").joinpath("reference/paper_values.yaml").read_text()
    return yaml.safe_load(text)


# --- aggregation ------------------------------------------------------------------------------
def summarise(runs: pd.DataFrame) -> dict:
    """Mean and sample std (percent) of AP and AUC over the given runs' seeds."""
    n = int(runs["seed"].nunique()) if len(runs) else 0
    out: dict = {"n_seeds": n}
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
    rows = []
    for (group, method, dataset), part in sel.groupby(["group", "method", "dataset"]):
        ref = known.get(dataset, {}).get(method, {})
        rows.append(
            {"group": group, "method": method, "dataset": dataset, **summarise(part),
             "paper_ap": ref.get("ap", math.nan), "paper_auc": ref.get("auc", math.nan)}
        )  # fmt: skip
    df = pd.DataFrame(rows, columns=TABLE_COLUMNS["table2"])

    def key(i: int) -> tuple:
        g, m, d = df["group"].iat[i], df["method"].iat[i], df["dataset"].iat[i]
        g_rank = GROUP_ORDER.index(g) if g in GROUP_ORDER else len(GROUP_ORDER)
        return (g_rank, g, m == "sagan", m, dataset_sort_key(d))  # ours last in its group

    return df.iloc[sorted(range(len(df)), key=key)]


def build_table3(runs: pd.DataFrame, paper: dict) -> pd.DataFrame:
    ref = paper.get("table3", {})
    rows = []
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
            codes = sorted({c for c in part["position_code"] if c})
            rows.append(
                {"variant": label, **summarise(part), "paper_ap": values.get("ap", math.nan),
                 "paper_auc": values.get("auc", math.nan), "dataset": dataset,
                 "position_code": ",".join(codes) if acm else ""}
            )  # fmt: skip
    return pd.DataFrame(rows, columns=TABLE_COLUMNS["table3"])


def build_table4(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for dataset in table4_datasets(runs):
        part = runs[(runs["method"] == "sagan") & is_default(runs) & (runs["dataset"] == dataset)]
        for ar in sorted(set(part["ar"]), key=ar_sort_key):
            rows.append({"ar": ar, **summarise(part[part["ar"] == ar]), "dataset": dataset})
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
    }


# --- rendering --------------------------------------------------------------------------------
def fmt(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def to_csv(df: pd.DataFrame) -> str:
    out = df.copy()
    for col in out.columns:
        if col.endswith(("_mean", "_std")) or col.startswith("paper_"):
            out[col] = [fmt(v) for v in out[col]]
    return out.to_csv(index=False, lineterminator="\n")


def ranks(values: list[float]) -> list[int]:
    """1 = best (highest), 2 = second best, 0 = neither; ties share a rank; NaN never ranks."""
    distinct = sorted({v for v in values if not math.isnan(v)}, reverse=True)
    top = {v: i + 1 for i, v in enumerate(distinct[:2])}
    return [top.get(v, 0) if not math.isnan(v) else 0 for v in values]


@dataclass
class Cell:
    text: str
    rank: int = 0  # 1 bold, 2 underlined


def metric_cell(mean: float, std: float, rank: int) -> Cell:
    if math.isnan(mean):
        return Cell("–")
    return Cell(f"{mean:.2f}" + (f" ± {std:.2f}" if not math.isnan(std) else ""), rank)


def md_cell(cell: Cell) -> str:
    return {1: f"**{cell.text}**", 2: f"<u>{cell.text}</u>"}.get(cell.rank, cell.text)


def tex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(a, b)
    return text.replace("±", r"$\pm$").replace("–", "--")


def tex_cell(cell: Cell) -> str:
    text = tex_escape(cell.text)
    return {1: rf"\textbf{{{text}}}", 2: rf"\underline{{{text}}}"}.get(cell.rank, text)


def render_md(title: str, header: list[str], rows: list[list[Cell]], notes: list[str]) -> str:
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    if not rows:
        lines.append("| " + " | ".join(["–"] * len(header)) + " |")
    return "\n".join(lines + [""] + [f"{n}  " for n in notes]).rstrip() + "\n"


def render_tex(title: str, header: list[str], rows: list[list[Cell]], notes: list[str], label: str) -> str:
    caption = tex_escape(" ".join([title, *[n.replace("**", "") for n in notes]]))
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{caption}}}",
        rf"\label{{tab:{label}}}",
        r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
        r"\toprule",
        " & ".join(tex_escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(tex_cell(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def selection_note(df: pd.DataFrame) -> list[str]:
    values = sorted({s for v in df.get("selection", []) for s in str(v).split(",") if s})
    if "test-oracle" in values:
        return [
            "**Model selection: test-oracle** (checkpoint chosen on the test set, the authors' protocol; "
            "optimistic)" + (" for some runs; others: last checkpoint." if len(values) > 1 else ".")
        ]
    return ["Model selection: last checkpoint (no test labels used)."] if values else []


def ranked_cells(df: pd.DataFrame, groups: list[str]) -> dict[tuple[int, str], Cell]:
    """Metric cells with best/second ranks computed within each group of rows."""
    cells: dict[tuple[int, str], Cell] = {}
    grouped = df.groupby(groups, sort=False) if groups else [(None, df)]
    for _, part in grouped:
        for metric in ("ap", "auc"):
            means = [float(v) for v in part[f"{metric}_mean"]]
            for idx, r in zip(part.index, ranks(means)):
                cells[(idx, metric)] = metric_cell(
                    df.at[idx, f"{metric}_mean"], df.at[idx, f"{metric}_std"], r
                )
    return cells


def render_table1(df: pd.DataFrame, kind: str) -> str:
    header = ["Dataset", "Normal training T_n", "Unlabelled T_u (pool)", "Test"]
    rows = [
        [Cell(dataset_label(r.dataset)), Cell(str(r.train_normal)),
         Cell(f"{r.unlabeled_total} ({r.unlabeled_normal} normal + {r.unlabeled_abnormal} abnormal)"),
         Cell(f"{r.test_normal} normal + {r.test_abnormal} abnormal")]
        for r in df.itertuples()
    ]  # fmt: skip
    title = "Table 1. Summary of dataset repartitions."
    notes = [
        "T_u is drawn from the pool in parentheses (|T_u| = |T_n|; its make-up depends on the anomaly ratio)."
    ]
    return (
        render_md(title, header, rows, notes)
        if kind == "md"
        else render_tex(title, header, rows, notes, "table1")
    )


def render_table2(df: pd.DataFrame, kind: str) -> str:
    df = df.reset_index(drop=True)
    datasets = sorted(set(df["dataset"]), key=dataset_sort_key)
    with_paper = [
        d for d in datasets if df.loc[df["dataset"] == d, ["paper_ap", "paper_auc"]].notna().any().any()
    ]
    cells = ranked_cells(df, ["group", "dataset"])
    header = ["Group", "Method"]
    for d in datasets:
        header += [f"{dataset_label(d)} AP", f"{dataset_label(d)} AUC"]
        if d in with_paper:
            header += [f"{dataset_label(d)} AP (paper)", f"{dataset_label(d)} AUC (paper)"]
    rows = []
    for (group, method), part in df.groupby(["group", "method"], sort=False):
        row = [Cell(group), Cell(method)]
        for d in datasets:
            hit = part.index[part["dataset"] == d]
            row += [cells[(hit[0], "ap")], cells[(hit[0], "auc")]] if len(hit) else [Cell("–"), Cell("–")]
            if d in with_paper:
                row += [
                    Cell(fmt(part.at[hit[0], c]) or "–") if len(hit) else Cell("–")
                    for c in ("paper_ap", "paper_auc")
                ]
        rows.append(row)
    title = "Table 2. AP and AUC (%) of each method, mean ± std over seeds, at anomaly ratio 60%."
    notes = ["Best in each group and dataset in bold, second underlined. (paper) = value stated in the paper.",
             *selection_note(df)]  # fmt: skip
    return (
        render_md(title, header, rows, notes)
        if kind == "md"
        else render_tex(title, header, rows, notes, "table2")
    )


def render_table3(df: pd.DataFrame, kind: str) -> str:
    df = df.reset_index(drop=True)
    cells = ranked_cells(df, ["dataset"])
    many = df["dataset"].nunique() > 1
    header = (["Dataset"] if many else []) + ["Variant", "AP", "AUC", "AP (paper)", "AUC (paper)", "Seeds"]
    rows = [
        ([Cell(dataset_label(r.dataset))] if many else [])
        + [Cell(r.variant), cells[(i, "ap")], cells[(i, "auc")], Cell(fmt(r.paper_ap) or "–"),
           Cell(fmt(r.paper_auc) or "–"), Cell(str(r.n_seeds))]
        for i, r in zip(df.index, df.itertuples())
    ]  # fmt: skip
    on = ", ".join(dataset_label(d) for d in dict.fromkeys(df["dataset"])) or "–"
    codes = sorted({c for v in df["position_code"] for c in str(v).split(",") if c})
    title = f"Table 3. Ablation of SAGAN's modules on {on}: AP and AUC (%), mean ± std over seeds."
    notes = [
        "ACM position code: "
        + ("; ".join(POSITION_CODE_NOTE.get(c, c) for c in codes) if codes else "–")
        + ".",
        "Best in bold, second underlined. (paper) = value stated in the paper (its baseline row is Brainomaly).",
        *selection_note(df),
    ]
    return (
        render_md(title, header, rows, notes)
        if kind == "md"
        else render_tex(title, header, rows, notes, "table3")
    )


def render_table4(df: pd.DataFrame, kind: str) -> str:
    df = df.reset_index(drop=True)
    cells = ranked_cells(df, ["dataset"])
    many = df["dataset"].nunique() > 1
    header = (["Dataset"] if many else []) + ["AR", "AP", "AUC", "Seeds"]
    rows = [
        ([Cell(dataset_label(r.dataset))] if many else [])
        + [Cell(ar_label(r.ar)), cells[(i, "ap")], cells[(i, "auc")], Cell(str(r.n_seeds))]
        for i, r in zip(df.index, df.itertuples())
    ]
    on = ", ".join(dataset_label(d) for d in dict.fromkeys(df["dataset"])) or "–"
    title = f"Table 4. SAGAN on {on} against the anomaly ratio (AR) of the unlabelled set: AP and AUC (%)."
    notes = [
        "AR = 0_u: trained without unlabelled data. Best in bold, second underlined.",
        *selection_note(df),
    ]
    return (
        render_md(title, header, rows, notes)
        if kind == "md"
        else render_tex(title, header, rows, notes, "table4")
    )


RENDERERS = {
    "table1": render_table1,
    "table2": render_table2,
    "table3": render_table3,
    "table4": render_table4,
}


def metrics_summary(tables: dict[str, pd.DataFrame]) -> dict:
    """Nested numbers for `dvc metrics diff` (percent, two decimals)."""

    def nums(r) -> dict:
        return {
            k: round(float(getattr(r, k)), 2)
            for k in ("ap_mean", "auc_mean")
            if not math.isnan(getattr(r, k))
        }

    out: dict = {"table2": {}, "table3": {}, "table4": {}}
    for r in tables["table2"].itertuples():
        out["table2"].setdefault(r.dataset, {})[r.method] = nums(r)
    for r in tables["table3"].itertuples():
        out["table3"].setdefault(r.dataset, {})[r.variant] = nums(r)
    for r in tables["table4"].itertuples():
        out["table4"].setdefault(r.dataset, {})[f"ar_{r.ar}"] = nums(r)
    return out


def render_all(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """File name -> text, for every table and format."""
    files = {}
    for name, df in tables.items():
        files[f"{name}.csv"] = to_csv(df)
        for kind in ("md", "tex"):
            files[f"{name}.{kind}"] = RENDERERS[name](df, kind)
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
    """`sagan tables --results results/<name> --out DIR`: Tables 1-4 and results/<name>/metrics.json."""
    for path in write_tables(args.results, args.out):
        print(f"wrote {path}")
    return 0


def cli_check_tables(args) -> int:
    """Regenerate the tables from stored run metrics and fail if the committed ones differ."""
    fresh = render_all(build_tables(args.results))
    problems = []
    for fname, text in fresh.items():
        committed = Path(args.tables) / fname
        if not committed.is_file():
            problems.append(
                f"{committed}: missing (regenerate with `sagan tables --results {args.results} --out {args.tables}`)"
            )
            continue
        old = committed.read_text()
        if old != text:
            diff = difflib.unified_diff(old.splitlines(), text.splitlines(), f"{committed} (committed)", f"{fname} (from runs)", lineterm="", n=0)  # fmt: skip
            problems.append("\n".join(list(diff)[:30]))
    if problems:
        print(f"{len(problems)} table file(s) differ from what the runs under {args.results} give:")
        print("\n".join(problems))
        print(f"Regenerate them with: sagan tables --results {args.results} --out {args.tables}")
        return 1
    print(f"{len(fresh)} table files in {args.tables} match the runs under {args.results}")
    return 0


def compare_rows(table: pd.DataFrame, kind: str, paper: dict) -> list[tuple[str, str, float, float]]:
    """(what, metric, ours, paper) for every cell the paper states, including SAGAN's gains."""
    out = []
    label_cols = ["dataset", "method"] if kind == "table2" else ["dataset", "variant"]
    for r in table.itertuples():
        what = " ".join(str(getattr(r, c)) for c in label_cols)
        for metric in ("ap", "auc"):
            ours, ref = getattr(r, f"{metric}_mean"), getattr(r, f"paper_{metric}")
            if not (math.isnan(float(ref)) or math.isnan(float(ours))):
                out.append((what, metric.upper(), float(ours), float(ref)))
    if kind == "table2":
        means = {(r.dataset, r.method): r for r in table.itertuples() if not math.isnan(r.ap_mean)}
        for dataset, gains in paper.get("table2", {}).get("gains_of_sagan_over", {}).items():
            for other, ref in gains.items():
                if (dataset, "sagan") in means and (dataset, other) in means:
                    ours_row, other_row = means[(dataset, "sagan")], means[(dataset, other)]
                    for metric in ("ap", "auc"):
                        gain = getattr(ours_row, f"{metric}_mean") - getattr(other_row, f"{metric}_mean")
                        out.append(
                            (
                                f"{dataset} gain of sagan over {other}",
                                metric.upper(),
                                gain,
                                float(ref[metric]),
                            )
                        )
    return out


def cli_compare_paper(args) -> int:
    """`sagan compare-paper TABLE.csv --tolerance PP`: differences to the paper; exit 1 beyond tolerance."""
    path = Path(args.table)
    if not path.is_file():
        raise DatasetError(
            f"{path} does not exist; create the tables with `sagan tables --results ... --out ...`"
        )
    table = pd.read_csv(path, keep_default_na=True)
    if "variant" in table.columns:
        kind = "table3"
    elif "group" in table.columns:
        kind = "table2"
    else:
        raise DatasetError(
            f"{path}: the paper states values for Tables 2 and 3 only (table2.csv, table3.csv)"
        )
    cells = compare_rows(table, kind, paper_values())
    if not cells:
        print(
            f"{path}: no row has a value stated in the paper (the paper's datasets are rsna, vindr, lag); nothing to compare"
        )
        return 0
    beyond = 0
    print(f"{'row':45s} {'metric':6s} {'ours':>8s} {'paper':>8s} {'diff':>8s}")
    for what, metric, ours, ref in cells:
        diff = ours - ref
        flag = abs(diff) > args.tolerance
        beyond += flag
        print(
            f"{what:45s} {metric:6s} {ours:8.2f} {ref:8.2f} {diff:+8.2f}"
            + ("  BEYOND TOLERANCE" if flag else "")
        )
    print(f"{beyond} of {len(cells)} value(s) differ from the paper by more than {args.tolerance:g} points")
    return 1 if beyond else 0
