"""Checks of the tables: `check-tables` (the committed tables are what the stored runs give) and
`compare-paper` (our values against the values the paper states)."""

from __future__ import annotations

import difflib
import math
from pathlib import Path

import pandas as pd

from sagan.errors import DatasetError
from sagan.report.tables import build_tables, paper_values, render_all


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


Cell = tuple[str, str, float, float, tuple[float, float] | None]


def compare_rows(table: pd.DataFrame, kind: str, paper: dict) -> list[Cell]:
    """(what, metric, ours, paper, our 95% interval or None) for every value the paper states,
    including SAGAN's stated gains (no interval: a gain is a difference of two rows)."""
    out: list[Cell] = []
    label_cols = ["dataset", "method"] if kind == "table2" else ["dataset", "variant"]
    for r in table.itertuples():
        what = " ".join(str(getattr(r, c)) for c in label_cols)
        for metric in ("ap", "auc"):
            ours, ref = getattr(r, f"{metric}_mean"), getattr(r, f"paper_{metric}")
            ends = [float(getattr(r, f"{metric}_{end}", math.nan)) for end in ("low", "high")]
            interval = None if any(math.isnan(v) for v in ends) else (ends[0], ends[1])
            if not (math.isnan(float(ref)) or math.isnan(float(ours))):
                out.append((what, metric.upper(), float(ours), float(ref), interval))
    if kind == "table2":
        means = {(r.dataset, r.method): r for r in table.itertuples() if not math.isnan(r.ap_mean)}
        for dataset, gains in paper.get("table2", {}).get("gains_of_sagan_over", {}).items():
            for other, ref in gains.items():
                if (dataset, "sagan") in means and (dataset, other) in means:
                    ours_row, other_row = means[(dataset, "sagan")], means[(dataset, other)]
                    for metric in ("ap", "auc"):
                        gain = getattr(ours_row, f"{metric}_mean") - getattr(other_row, f"{metric}_mean")
                        what = f"{dataset} gain of sagan over {other}"
                        out.append((what, metric.upper(), gain, float(ref[metric]), None))
    return out


def cli_compare_paper(args) -> int:
    """`sagan compare-paper TABLE.csv --tolerance PP`: differences to the paper, and whether each paper
    value lies inside our 95% interval; exit 1 where a difference is beyond the tolerance."""
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
    beyond = inside = with_interval = 0
    print(
        f"{'row':45s} {'metric':6s} {'ours':>8s} {'paper':>8s} {'diff':>8s}  {'our 95% interval':18s} paper inside"
    )
    for what, metric, ours, ref, interval in cells:
        diff = ours - ref
        flag = abs(diff) > args.tolerance
        beyond += flag
        if interval is None:
            shown, verdict = "–", "–"
        else:
            holds = interval[0] <= ref <= interval[1]
            inside, with_interval = inside + holds, with_interval + 1
            shown, verdict = f"[{interval[0]:.2f}, {interval[1]:.2f}]", "yes" if holds else "no"
        print(
            f"{what:45s} {metric:6s} {ours:8.2f} {ref:8.2f} {diff:+8.2f}  {shown:18s} {verdict:6s}"
            + ("  BEYOND TOLERANCE" if flag else "")
        )
    print(f"{inside} of {with_interval} paper value(s) lie inside our 95% interval")
    print(f"{beyond} of {len(cells)} value(s) differ from the paper by more than {args.tolerance:g} points")
    return 1 if beyond else 0
