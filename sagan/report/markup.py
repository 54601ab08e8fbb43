"""A table described as data (title, header, rows of cells, notes), rendered as CSV, Markdown or LaTeX.

Every table of the report goes through the same two renderers, so a change of layout (escaping,
bold/underline, captions) is made once for all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Cell:
    text: str
    rank: int = 0  # 1 bold, 2 underlined


@dataclass
class TableView:
    """What the Markdown and LaTeX renderers need; `name` is the LaTeX label (tab:<name>)."""

    name: str
    title: str
    header: list[str]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)


def fmt(value: float, digits: int = 2) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def to_csv(df: pd.DataFrame) -> str:
    """CSV with percentages (means, stds, interval ends, the SAGAN paper's and other papers' values) at
    two decimals and p-values at four, iterations as integers (empty where unknown)."""
    out = df.copy()
    for col in out.columns:
        if col in ("iterations", "bench_iterations", "ranked", "val_plateau", "val_flat"):
            out[col] = ["" if math.isnan(v) else str(int(v)) for v in out[col]]
        elif col.endswith(("_mean", "_std", "_low", "_high", "_rise")) or col.startswith(("paper_", "ref_")):
            out[col] = [fmt(v) for v in out[col]]
        elif col.endswith("_p"):
            out[col] = [fmt(v, 4) for v in out[col]]
    return out.to_csv(index=False, lineterminator="\n")


def ranks(values: list[float]) -> list[int]:
    """1 = best (highest), 2 = second best, 0 = neither; ties share a rank; NaN never ranks."""
    distinct = sorted({v for v in values if not math.isnan(v)}, reverse=True)
    top = {v: i + 1 for i, v in enumerate(distinct[:2])}
    return [top.get(v, 0) if not math.isnan(v) else 0 for v in values]


def md_cell(cell: Cell) -> str:
    return {1: f"**{cell.text}**", 2: f"<u>{cell.text}</u>"}.get(cell.rank, cell.text)


def tex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(a, b)
    for a, b in (
        ("±", r"$\pm$"),
        ("–", "--"),
        ("†", r"$^\dagger$"),
        ("≤", r"$\le$"),
        ("<", "$<$"),
        ("|", "$|$"),
    ):
        text = text.replace(a, b)  # text-mode <, | print other glyphs in LaTeX's default font encoding
    return text


def tex_cell(cell: Cell) -> str:
    text = tex_escape(cell.text)
    return {1: rf"\textbf{{{text}}}", 2: rf"\underline{{{text}}}"}.get(cell.rank, text)


def render_md(view: TableView) -> str:
    header = view.header
    lines = [f"**{view.title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in view.rows]
    if not view.rows:
        lines.append("| " + " | ".join(["–"] * len(header)) + " |")
    return "\n".join(lines + [""] + [f"{n}  " for n in view.notes]).rstrip() + "\n"


def render_tex(view: TableView) -> str:
    caption = tex_escape(" ".join([view.title, *[n.replace("**", "") for n in view.notes]]))
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{caption}}}",
        rf"\label{{tab:{view.name}}}",
        r"\begin{tabular}{l" + "r" * (len(view.header) - 1) + "}",
        r"\toprule",
        " & ".join(tex_escape(h) for h in view.header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(tex_cell(c) for c in row) + r" \\" for row in view.rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


RENDERERS = {"md": render_md, "tex": render_tex}
