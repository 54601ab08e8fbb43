"""Figures from stored run outputs: Fig. 3-style heatmaps, ROC/PR curves, AP/AUC against the
anomaly ratio (Table 4) and training curves.

Files (in the output folder; PNG, plus PDF for the paper's kinds of figure):
    heatmaps_<dataset>.png/.pdf   original | restored | |x - x'| heatmap, boxes and mask outlines
    roc_pr_<dataset>.png/.pdf     ROC and PR curves of every method (one line per seed)
    anomaly_ratio.png/.pdf        Table 4 as a plot (only if AR variants were run)
    training_<dataset>.png        losses against iteration for every method
    localization_<dataset>.png/.pdf  every method's map of a few abnormal images, with the ground truth
                                  (sagan/report/localization_figure.py)
    validation_<dataset>.png      validation AUC and AP against iteration for every method (runs with
                                  a val_log.csv: `eval.val_every`; the test set is never used)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from sagan.atomic import write_atomic  # noqa: E402
from sagan.report.localization_figure import draw_localization  # noqa: E402
from sagan.report.runs import (  # noqa: E402
    ar_label,
    ar_sort_key,
    dataset_label,
    dataset_sort_key,
    is_default,
    load_runs,
    main_scores,
    table2_runs,
    table4_datasets,
)

log = logging.getLogger(__name__)

# Reproducible files (same bytes for the same runs): no timestamps or version strings inside.
PNG_META = {"Software": None}
PDF_META = {"Creator": None, "Producer": None, "CreationDate": None}
HEATMAP_ROWS = {0: 1, 1: 3}  # normal and abnormal examples shown per dataset
METHOD_COLORS = plt.get_cmap("tab10").colors


def save(fig: plt.Figure, out: Path, stem: str, pdf: bool) -> list[Path]:
    """Write PNG (and PDF) atomically; returns the paths."""
    import io

    paths = []
    for ext in ("png", "pdf") if pdf else ("png",):
        buf = io.BytesIO()
        fig.savefig(
            buf, format=ext, dpi=150, bbox_inches="tight", metadata=PNG_META if ext == "png" else PDF_META
        )
        write_atomic(out / f"{stem}.{ext}", buf.getvalue())
        paths.append(out / f"{stem}.{ext}")
    plt.close(fig)
    return paths


def pick_heatmap_run(runs: pd.DataFrame, dataset: str) -> pd.Series | None:
    """SAGAN's Table 2 run with the lowest seed (else the first method's)."""
    part = main_scores(table2_runs(runs))
    part = part[part["dataset"] == dataset]
    if part.empty:
        return None
    ours = part[part["method"] == "sagan"]
    part = ours if len(ours) else part
    return part.sort_values(["method", "seed"]).iloc[0]


def draw_boxes(ax, boxes: list, shape: tuple[int, int], color: str) -> None:
    h, w = shape
    for x0, y0, x1, y1 in boxes:
        ax.add_patch(
            Rectangle(
                (x0 * w - 0.5, y0 * h - 0.5), (x1 - x0) * w, (y1 - y0) * h, fill=False, ec=color, lw=1.5
            )
        )


def draw_heatmaps(run: pd.Series) -> plt.Figure:
    """Original | restored | map for a few test images of one run; ground truth in green and red."""
    z = np.load(Path(run["run"]) / "maps.npz", allow_pickle=False)
    labels = z["labels"]
    chosen = [i for lab, k in HEATMAP_ROWS.items() for i in np.flatnonzero(labels == lab)[:k]]
    masks = z["masks"] if "masks" in z.files else None
    vmax = float(np.percentile(z["maps"][chosen], 99.5)) or 1.0  # one colour scale for the figure
    fig, axes = plt.subplots(len(chosen), 3, figsize=(7.2, 2.5 * len(chosen)), squeeze=False)
    for row, i in enumerate(chosen):
        boxes = json.loads(str(z["boxes"][i])) if "boxes" in z.files else []
        panels = [
            (z["images"][i], "gray", (-1, 1)),
            (z["restored"][i], "gray", (-1, 1)),
            (z["maps"][i], "jet", (0, vmax)),
        ]
        for col, (img, cmap, (lo, hi)) in enumerate(panels):
            ax = axes[row, col]
            shown = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if col != 1:  # ground truth on the original (green) and on the heatmap (red), as in Fig. 3
                color = "lime" if col == 0 else "red"
                draw_boxes(ax, boxes, img.shape, color)
                if masks is not None and masks[i].any():
                    ax.contour(masks[i], levels=[0.5], colors=color, linewidths=1.0)
            if col == 2:
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
        kind = "abnormal" if labels[i] else "normal"
        score = f", score {float(z['scores'][i]):.3f}" if "scores" in z.files else ""
        axes[row, 0].set_ylabel(f"{kind}{score}", fontsize=9)
    for col, title in enumerate(["original", "restored", "|x - x'| / 2"]):
        axes[0, col].set_title(title, fontsize=10)
    fig.suptitle(
        f"{dataset_label(run['dataset'])}: {run['method']} (seed {run['seed']}, AR {ar_label(run['ar'])})",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def figure_heatmaps(run: pd.Series, out: Path) -> list[Path]:
    return save(draw_heatmaps(run), out, f"heatmaps_{run['dataset']}", pdf=True)


def figure_roc_pr(runs: pd.DataFrame, dataset: str, out: Path) -> list[Path]:
    part = table2_runs(runs)
    part = part[part["dataset"] == dataset]
    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=(10, 4.4))
    prevalence = None
    for m_idx, (method, mruns) in enumerate(part.groupby("method")):  # more methods than colours: cycle
        color = METHOD_COLORS[m_idx % len(METHOD_COLORS)]
        label = f"{method} (AUC {100 * mruns['auc'].mean():.1f}, AP {100 * mruns['ap'].mean():.1f})"
        for k, r in enumerate(mruns.sort_values("seed").itertuples()):
            scores = pd.read_csv(Path(r.run) / "scores.csv")
            y, s = scores["label"].to_numpy(), scores[r.score].to_numpy()  # the row's score column
            fpr, tpr, _ = roc_curve(y, s)
            precision, recall, _ = precision_recall_curve(y, s)
            prevalence = float(y.mean())
            ax_roc.plot(fpr, tpr, color=color, lw=1.4, alpha=0.85, label=label if k == 0 else None)
            ax_pr.step(
                recall,
                precision,
                where="post",
                color=color,
                lw=1.4,
                alpha=0.85,
                label=label if k == 0 else None,
            )
    ax_roc.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    if prevalence is not None:
        ax_pr.axhline(prevalence, ls="--", color="grey", lw=1, label=f"chance ({prevalence:.2f})")
    ax_roc.set(
        xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.01)
    )
    ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall", xlim=(0, 1), ylim=(0, 1.01))
    for ax in (ax_roc, ax_pr):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if ax is ax_roc else "lower left")
    fig.suptitle(
        f"{dataset_label(dataset)}: test set, one line per seed (legend: mean over seeds, %)", fontsize=11
    )
    fig.tight_layout()
    return save(fig, out, f"roc_pr_{dataset}", pdf=True)


def figure_anomaly_ratio(runs: pd.DataFrame, out: Path) -> list[Path]:
    datasets = table4_datasets(runs)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for d_idx, dataset in enumerate(datasets):
        part = runs[(runs["method"] == "sagan") & is_default(runs) & (runs["dataset"] == dataset)]
        tags = sorted(set(part["ar"]), key=ar_sort_key)
        for ax, metric in zip(axes, ("ap", "auc")):
            stats = [(100 * part.loc[part["ar"] == t, metric]).agg(["mean", "std"]) for t in tags]
            xs = np.arange(len(tags))
            mean = np.array([s["mean"] for s in stats])
            std = np.nan_to_num(np.array([s["std"] for s in stats]))
            color = METHOD_COLORS[d_idx % len(METHOD_COLORS)]
            ratio = np.array([t != "0_u" for t in tags])
            ax.errorbar(xs[ratio], mean[ratio], yerr=std[ratio], marker="o", capsize=3, color=color,
                        label=dataset_label(dataset))  # fmt: skip
            if (~ratio).any():  # no unlabelled data: a separate point, not on the AR axis
                ax.errorbar(xs[~ratio], mean[~ratio], yerr=std[~ratio], marker="s", ls="none", capsize=3,
                            color=color, mfc="white", label=f"{dataset_label(dataset)}, no unlabelled data")  # fmt: skip
            ax.set_xticks(xs, [ar_label(t) for t in tags])
    for ax, metric in zip(axes, ("AP", "AUC")):
        ax.set(xlabel="anomaly ratio of the unlabelled set", ylabel=f"{metric} (%)", title=f"SAGAN {metric}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Anomaly ratio (Table 4): mean ± std over seeds", fontsize=11)
    fig.tight_layout()
    return save(fig, out, "anomaly_ratio", pdf=True)


def draw_training(runs: pd.DataFrame, dataset: str, ncols: int = 4) -> plt.Figure:
    """One panel per loss of every method: mean over seeds, band from min to max."""
    part = main_scores(table2_runs(runs))
    part = part[part["dataset"] == dataset]
    methods = sorted(set(part["method"]))
    logs = {
        m: [pd.read_csv(Path(r) / "train_log.csv") for r in part.loc[part["method"] == m, "run"]]
        for m in methods
    }
    # losses only: not the counters, timings or learning rates
    losses = {m: [c for c in logs[m][0].columns if c not in ("iteration", "seconds") and not c.startswith("lr")]
              for m in methods if logs[m]}  # fmt: skip
    # each method starts a new row of panels; a method with many losses wraps onto more rows
    slots = []
    for m in losses:
        names = losses[m]
        slots += [(m, names[i : i + ncols]) for i in range(0, len(names), ncols)]
    nrows = max(len(slots), 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 2.3 * nrows), squeeze=False)
    for row, (method, names) in enumerate(slots):
        for col in range(ncols):
            ax = axes[row, col]
            if col >= len(names):
                ax.axis("off")
                continue
            name = names[col]
            # a loss logged only on some iterations (generator steps) has gaps: drop them per run
            frames = [f.set_index("iteration")[name].dropna() for f in logs[method] if name in f.columns]
            table = pd.concat(frames, axis=1).dropna(how="all")
            x = table.index.to_numpy()
            marker = "o" if len(x) <= 5 else None
            ax.fill_between(x, table.min(axis=1), table.max(axis=1), alpha=0.25, color="C0", lw=0)
            ax.plot(x, table.mean(axis=1), color="C0", lw=1.2, marker=marker, ms=3)
            ax.set_title(f"{method}: {name}", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            ax.set_xlabel("iteration", fontsize=7)
    fig.suptitle(
        f"{dataset_label(dataset)}: training losses, mean over seeds (band: min to max)", fontsize=11
    )
    fig.tight_layout()
    return fig


def figure_training(runs: pd.DataFrame, dataset: str, out: Path) -> list[Path]:
    return save(draw_training(runs, dataset), out, f"training_{dataset}", pdf=False)


def figure_localization(runs: pd.DataFrame, dataset: str, out: Path) -> list[Path]:
    return save(draw_localization(runs, dataset), out, f"localization_{dataset}", pdf=True)


def validation_logs(part: pd.DataFrame) -> dict[str, list[pd.DataFrame]]:
    """The val_log.csv of each method's runs, by method (runs without one are left out)."""
    logs: dict[str, list[pd.DataFrame]] = {}
    for method, run in sorted(zip(part["method"], part["run"])):
        path = Path(run) / "val_log.csv"
        if path.is_file():
            logs.setdefault(method, []).append(pd.read_csv(path).set_index("iteration"))
    return logs


def draw_validation(runs: pd.DataFrame, dataset: str) -> plt.Figure:
    """Validation AUC and AP of every method against iteration: mean over seeds, band from min to max;
    a method's extra scores (DDAD's intra) dashed: from its own val_log.csv, not from the extra-score
    rows (ddad-intra) of `runs`, which name the same run folders."""
    part = main_scores(table2_runs(runs))
    logs = validation_logs(part[part["dataset"] == dataset])
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.4))
    for k, (method, frames) in enumerate(logs.items()):
        color = METHOD_COLORS[k % len(METHOD_COLORS)]
        scores = [""] + sorted({c[: -len("_auc")] for f in frames for c in f.columns if c.endswith("_auc")})
        for ax, metric in zip(axes, ("auc", "ap")):
            for name in scores:
                column = f"{name}_{metric}" if name else metric
                table = pd.concat([f[column] for f in frames if column in f.columns], axis=1)
                x = table.index.to_numpy()
                ax.fill_between(x, table.min(axis=1), table.max(axis=1), color=color, alpha=0.15, lw=0)
                label = f"{method} ({name})" if name else method
                ls = "--" if name else ("-" if k < len(METHOD_COLORS) else ":")
                marker = "o" if len(x) <= 5 else None
                ax.plot(x, table.mean(axis=1), color=color, ls=ls, lw=1.4, marker=marker, ms=3, label=label)
    for ax, metric in zip(axes, ("AUC", "AP")):
        ax.axhline(0.5, ls="--", color="grey", lw=1, label="chance")  # AP too: the split is balanced
        ax.set(xlabel="iteration", ylabel=f"validation {metric}", title=metric, ylim=(0, 1.01))
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the curves, not on them
    fig.suptitle(
        f"{dataset_label(dataset)}: validation split (not the test set), mean over seeds (band: min to max)",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def figure_validation(runs: pd.DataFrame, dataset: str, out: Path) -> list[Path]:
    part = main_scores(table2_runs(runs))
    if not validation_logs(part[part["dataset"] == dataset]):
        return []
    return save(draw_validation(runs, dataset), out, f"validation_{dataset}", pdf=False)


def write_figures(results: str | Path, out: str | Path) -> list[Path]:
    out = Path(out)
    runs = load_runs(results)
    written: list[Path] = []
    main = table2_runs(runs)
    for dataset in sorted(set(main["dataset"]), key=dataset_sort_key):
        run = pick_heatmap_run(runs, dataset)
        if run is not None:
            written += figure_heatmaps(run, out)
        written += figure_roc_pr(runs, dataset, out)
        written += figure_training(runs, dataset, out)
        written += figure_localization(runs, dataset, out)
        written += figure_validation(runs, dataset, out)
    if table4_datasets(runs):
        written += figure_anomaly_ratio(runs, out)
    return written


def cli_figures(args) -> int:
    """`sagan figures --results results/<name> --out DIR`."""
    for path in write_figures(args.results, args.out):
        print(f"wrote {path}")
    return 0
