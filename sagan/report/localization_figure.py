"""Where does each method's map point? One grid per dataset: a few abnormal test images (top row, the
ground truth outlined in lime), and below, one row per method, its anomaly map of the same images
with the ground truth outlined in white and the map's maximum marked (the pointing game: a lime x
inside the ground truth, a red x outside).

Maps come from the evaluator's maps.npz (`test_maps` x `test_map_scale`, every test image; the
images from its examples), of each method's lowest-seed Table 2 run. Each row has its own colour scale,
from 0 (or the map's minimum, if lower) to the 99.5th percentile of that run's maps of every test image:
methods' maps are in different units. A method without a map gets an empty row that says so.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sagan.report.runs import dataset_label, main_scores, row_order, table2_runs

N_IMAGES = 4  # abnormal test images shown per dataset
TRUTH_ON_IMAGE, TRUTH_ON_MAP = "lime", "white"
HIT, MISS = "lime", "red"


def method_runs(runs: pd.DataFrame, dataset: str) -> list[pd.Series]:
    """The lowest-seed Table 2 run of every method on the dataset, in Table 2's order."""
    part = main_scores(table2_runs(runs))
    part = part[part["dataset"] == dataset].sort_values("seed")
    firsts = [g.iloc[0] for _, g in part.groupby("method")]
    return sorted(firsts, key=lambda r: row_order(r["group"], r["method"], r["dataset"]))


def chosen_examples(z: np.lib.npyio.NpzFile) -> list[str]:
    """Names of the abnormal example images (those with a stored image) to show: the annotated ones
    where the dataset has pixel labels."""
    truth = dict(zip(z["test_names"], z["test_truth"])) if "test_truth" in z.files else {}
    abnormal = [str(n) for n, label in zip(z["names"], z["labels"]) if label == 1]
    annotated = [n for n in abnormal if n in truth and truth[n].any()]
    return (annotated if truth else abnormal)[:N_IMAGES]


def map_scale(maps: np.ndarray) -> tuple[float, float]:
    lo = min(0.0, float(maps.min()))
    hi = float(np.percentile(maps, 99.5))
    return lo, hi if hi > lo else lo + 1.0


def draw_panel(ax, img: np.ndarray, cmap: str, limits: tuple[float, float], truth, outline: str) -> None:
    ax.imshow(img, cmap=cmap, vmin=limits[0], vmax=limits[1], interpolation="nearest")
    if truth is not None and truth.any():
        ax.contour(truth.astype(float), levels=[0.5], colors=outline, linewidths=1.0)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_localization(runs: pd.DataFrame, dataset: str) -> plt.Figure:
    """Rows: the images, then one per method; columns: up to N_IMAGES abnormal test images."""
    rows = method_runs(runs, dataset)
    stored = [np.load(Path(r["run"]) / "maps.npz", allow_pickle=False) for r in rows]
    first = stored[0]
    names = chosen_examples(first)
    position = {str(n): i for i, n in enumerate(first["test_names"])}
    example = {str(n): i for i, n in enumerate(first["names"])}
    truth = first["test_truth"] if "test_truth" in first.files else None
    ncols = max(len(names), 1)
    fig, axes = plt.subplots(len(rows) + 1, ncols, figsize=(1.9 * ncols + 0.8, 1.9 * (len(rows) + 1)),
                             squeeze=False)  # fmt: skip
    for col, name in enumerate(names):
        t = truth[position[name]] if truth is not None else None
        draw_panel(axes[0, col], first["images"][example[name]], "gray", (-1, 1), t, TRUTH_ON_IMAGE)
        axes[0, col].set_title(name, fontsize=7)
    axes[0, 0].set_ylabel("image", fontsize=9)
    for row, (run, z) in enumerate(zip(rows, stored), start=1):
        axes[row, 0].set_ylabel(run["method"], fontsize=9)
        if "test_maps" not in z.files:
            for ax in axes[row]:
                ax.set_xticks([])
                ax.set_yticks([])
            axes[row, 0].text(
                0.5, 0.5, "no anomaly map", ha="center", va="center", transform=axes[row, 0].transAxes
            )
            continue
        maps = z["test_maps"].astype(np.float32) * float(z["test_map_scale"])
        limits = map_scale(maps)
        for col, name in enumerate(names):
            m = maps[position[name]]
            t = truth[position[name]] if truth is not None else None
            draw_panel(axes[row, col], m, "jet", limits, t, TRUTH_ON_MAP)
            if t is not None and t.any():  # the pointing game: where the maximum falls
                r, c = np.unravel_index(int(np.argmax(m)), m.shape)
                axes[row, col].plot(
                    [c], [r], marker="x", ms=7, mew=2, ls="none", color=HIT if t[r, c] else MISS
                )
    kind = "no pixel labels" if truth is None else "ground truth outlined; x = map maximum (lime: inside)"
    seeds = ", ".join(sorted({str(r["seed"]) for r in rows}))
    fig.suptitle(f"{dataset_label(dataset)}: anomaly maps of abnormal test images (seed {seeds}); {kind}",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig
