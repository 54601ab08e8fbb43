"""Figures from fake run folders: the expected files, what is drawn (read back from the matplotlib
objects: box and outline positions and colours, plotted loss curves), determinism."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.contour import ContourSet
from matplotlib.patches import Rectangle
from PIL import Image

from sagan.cli import main
from sagan.report.figures import (
    draw_heatmaps,
    draw_training,
    draw_validation,
    pick_heatmap_run,
    write_figures,
)
from sagan.report.localization_figure import draw_localization
from sagan.report.runs import load_runs
from tests.run_fakes import make_experiment


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    root = make_experiment(tmp_path_factory.mktemp("exp") / "demo", datasets=("synth-rsna", "synth-vindr"),
                           seeds=(0, 1), table3="synth-vindr", table4="synth-rsna")  # fmt: skip
    assert main(["figures", "--results", str(root), "--out", str(root / "figures")]) == 0
    return root / "figures"


def test_expected_files(figures):
    names = sorted(p.name for p in figures.iterdir())
    expected = ["anomaly_ratio.pdf", "anomaly_ratio.png"]
    for d in ("synth-rsna", "synth-vindr"):
        expected += [
            f"heatmaps_{d}.pdf",
            f"heatmaps_{d}.png",
            f"roc_pr_{d}.pdf",
            f"roc_pr_{d}.png",
            f"training_{d}.png",
            f"localization_{d}.pdf",
            f"localization_{d}.png",
            f"validation_{d}.png",
        ]
    assert names == sorted(expected)


def test_files_are_readable_images_large_enough_to_read(figures):
    for png in figures.glob("*.png"):
        with Image.open(png) as im:
            assert im.width >= 600 and im.height >= 300
    for pdf in figures.glob("*.pdf"):
        assert pdf.read_bytes().startswith(b"%PDF")


def heatmap_figure(root):
    run = pick_heatmap_run(load_runs(root), "synth-rsna")
    return run, draw_heatmaps(run)


def test_heatmaps_draw_boxes_in_green_on_the_original_and_red_on_the_map(figures):
    run, fig = heatmap_figure(figures.parent)
    z = np.load(f"{run['run']}/maps.npz")
    axes = np.array(fig.axes[: len(fig.axes) - 4]).reshape(-1, 3)  # the last 4 axes are colour bars
    shown = [0, 4, 5, 6]  # one normal and three abnormal images (HEATMAP_ROWS)
    for row, i in enumerate(shown):
        rows, cols = np.nonzero(z["masks"][i])
        for col, colour in ((0, "lime"), (1, None), (2, "red")):
            rects = [p for p in axes[row, col].patches if isinstance(p, Rectangle)]
            if colour is None or not z["labels"][i]:
                assert rects == []
                continue
            (rect,) = rects
            assert to_hex(rect.get_edgecolor()) == to_hex(colour)
            # the drawn box runs along the outer pixel edges of the recorded box
            left, top = rect.get_x(), rect.get_y()
            right, bottom = left + rect.get_width(), top + rect.get_height()
            assert (left, right) == (cols.min() - 0.5, cols.max() + 0.5)
            assert (top, bottom) == (rows.min() - 0.5, rows.max() + 0.5)
    plt.close(fig)


def test_heatmaps_outline_masks_in_green_on_the_original_and_red_on_the_map(figures):
    _, fig = heatmap_figure(figures.parent)
    axes = np.array(fig.axes[: len(fig.axes) - 4]).reshape(-1, 3)
    for row in range(4):
        for col, colour in ((0, "lime"), (1, None), (2, "red")):
            outlines = [c for c in axes[row, col].collections if isinstance(c, ContourSet)]
            if colour is None or row == 0:  # no outline on the restored image or on a normal image
                assert outlines == []
                continue
            (outline,) = outlines
            assert {to_hex(c) for c in outline.get_edgecolor()} == {to_hex(colour)}
    plt.close(fig)


def test_heatmap_png_shows_the_green_outlines(figures):
    rgb = np.asarray(Image.open(figures / "heatmaps_synth-rsna.png").convert("RGB")).astype(int)
    green = (rgb[..., 1] > 200) & (rgb[..., 0] < 60) & (rgb[..., 2] < 60)
    assert green.sum() > 100  # lime is in neither the grey nor the jet colour map


def test_figures_are_byte_for_byte_reproducible(figures, tmp_path):
    again = write_figures(figures.parent, tmp_path)
    for path in again:
        assert path.read_bytes() == (figures / path.name).read_bytes(), path.name


def test_no_anomaly_ratio_figure_without_table4_runs(tmp_path):
    root = make_experiment(tmp_path / "x", datasets=("synth-lag",), seeds=(0,), table3=None, table4=None)
    names = {p.name for p in write_figures(root, tmp_path / "figs")}
    assert names == {"heatmaps_synth-lag.png", "heatmaps_synth-lag.pdf", "roc_pr_synth-lag.png",
                     "roc_pr_synth-lag.pdf", "training_synth-lag.png", "localization_synth-lag.png",
                     "localization_synth-lag.pdf", "validation_synth-lag.png"}  # fmt: skip


def training_panels(fig) -> dict[str, plt.Axes]:
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def test_training_curves_plot_the_mean_over_seeds_of_every_loss(tmp_path):
    root = make_experiment(tmp_path / "x", datasets=("synth-lag",), seeds=(0, 1, 2), table3=None, table4=None)
    runs = load_runs(root)
    rng = np.random.default_rng(0)
    for run in runs["run"]:  # seeds differ, so that the mean differs from the median, min and max
        log = pd.read_csv(f"{run}/train_log.csv")
        for name in ("d_loss", "gp", "g_loss"):
            log[name] += rng.exponential(1.0, len(log))
        log.to_csv(f"{run}/train_log.csv", index=False)
    panels = training_panels(draw_training(runs, "synth-lag"))
    losses = ["d_loss", "gp", "g_loss"]
    assert sorted(panels) == sorted(f"{m}: {n}" for m in ("brainomaly", "sagan") for n in losses)
    for method in ("brainomaly", "sagan"):
        logs = [pd.read_csv(f"{r}/train_log.csv") for r in runs.loc[runs["method"] == method, "run"]]
        for name in losses:
            (line,) = panels[f"{method}: {name}"].get_lines()
            np.testing.assert_array_equal(line.get_xdata(), logs[0]["iteration"])
            mean = np.mean([log[name] for log in logs], axis=0)
            np.testing.assert_allclose(line.get_ydata(), mean, rtol=1e-12)
    plt.close("all")


def test_training_curves_skip_iterations_where_a_loss_was_not_logged(tmp_path):
    root = make_experiment(
        tmp_path / "x", datasets=("synth-lag",), methods=("sagan",), seeds=(0,), table3=None, table4=None
    )
    log_path = next((root / "runs").glob("**/train_log.csv"))
    log = pd.read_csv(log_path)
    log.loc[log.index % 2 == 0, "g_loss"] = np.nan  # generator steps every second iteration
    log["lr_g"] = 1e-4
    log.to_csv(log_path, index=False)
    panels = training_panels(draw_training(load_runs(root), "synth-lag"))
    assert sorted(panels) == ["sagan: d_loss", "sagan: g_loss", "sagan: gp"]  # learning rates are no loss
    (line,) = panels["sagan: g_loss"].get_lines()
    logged = log["g_loss"].notna()
    np.testing.assert_array_equal(line.get_xdata(), log.loc[logged, "iteration"])
    np.testing.assert_array_equal(line.get_ydata(), log.loc[logged, "g_loss"])
    (line,) = panels["sagan: d_loss"].get_lines()
    assert len(line.get_xdata()) == len(log)
    plt.close("all")


# --- localization grid ------------------------------------------------------------------------
def grid(fig) -> np.ndarray:
    """The figure's axes by their place in the subplot grid."""
    nrows, ncols = fig.axes[0].get_subplotspec().get_gridspec().get_geometry()
    axes = np.empty((nrows, ncols), object)
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        axes[spec.rowspan.start, spec.colspan.start] = ax
    return axes


def test_localization_grid_shows_each_methods_stored_maps_with_outline_and_maximum(tmp_path):
    root = make_experiment(tmp_path / "x", datasets=("synth-rsna",), methods=("ae", "ddad", "sagan"),
                           seeds=(1, 0), table3=None, table4=None)  # fmt: skip
    runs = load_runs(root)
    axes = grid(draw_localization(runs, "synth-rsna"))
    # rows: the images, then the methods in Table 2's order (ddad-intra has no map of its own)
    assert [row[0].get_ylabel() for row in axes] == ["image", "ae", "ddad", "sagan"]
    assert axes.shape[1] == 4
    first = np.load(f"{runs[(runs['method'] == 'ae') & (runs['seed'] == 0)]['run'].iloc[0]}/maps.npz")
    names = [ax.get_title() for ax in axes[0]]
    abnormal = [str(n) for n, label in zip(first["names"], first["labels"]) if label]
    assert names == abnormal[:4]
    position = {str(n): i for i, n in enumerate(first["test_names"])}
    for row, method in zip(axes[1:], ("ae", "ddad", "sagan")):
        run = runs[(runs["method"] == method) & (runs["seed"] == 0)]["run"].iloc[0]  # the lowest seed
        z = np.load(f"{run}/maps.npz")
        maps = z["test_maps"].astype(np.float32) * float(z["test_map_scale"])
        for ax, name in zip(row, names):
            m, t = maps[position[name]], z["test_truth"][position[name]]
            (shown,) = ax.get_images()
            np.testing.assert_array_equal(shown.get_array(), m)
            (outline,) = [c for c in ax.collections if isinstance(c, ContourSet)]
            assert {to_hex(c) for c in outline.get_edgecolor()} == {to_hex("white")}
            (marker,) = ax.get_lines()
            r, c = np.unravel_index(np.argmax(m), m.shape)
            assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (c, r)
            assert to_hex(marker.get_color()) == to_hex("lime" if t[r, c] else "red")
    for ax, name in zip(axes[0], names):  # the image row: the stored image, outlined in lime
        (outline,) = [c for c in ax.collections if isinstance(c, ContourSet)]
        assert {to_hex(c) for c in outline.get_edgecolor()} == {to_hex("lime")}
        np.testing.assert_array_equal(
            ax.get_images()[0].get_array(), first["images"][list(first["names"]).index(name)]
        )
    plt.close("all")


def test_localization_grid_misses_are_red_and_a_method_without_map_says_so(tmp_path):
    root = make_experiment(tmp_path / "x", datasets=("synth-rsna",), methods=("ae", "sagan"), seeds=(0,),
                           table3=None, table4=None)  # fmt: skip
    runs = load_runs(root)
    ae_run = runs[runs["method"] == "ae"]["run"].iloc[0]
    z = dict(np.load(f"{ae_run}/maps.npz"))
    flipped = z["test_maps"].astype(np.float32)
    flipped[z["test_truth"]] = 0  # the map is lowest where the finding is: every maximum misses
    z["test_maps"] = flipped.astype(np.float16)
    np.savez(f"{ae_run}/maps.npz", **z)
    sagan_run = runs[runs["method"] == "sagan"]["run"].iloc[0]
    z = dict(np.load(f"{sagan_run}/maps.npz"))
    del z["test_maps"], z["test_map_scale"]
    np.savez(f"{sagan_run}/maps.npz", **z)
    axes = grid(draw_localization(runs, "synth-rsna"))
    assert all(to_hex(ax.get_lines()[0].get_color()) == to_hex("red") for ax in axes[1])
    assert [t.get_text() for t in axes[2][0].texts] == ["no anomaly map"]
    assert all(ax.get_images() == [] for ax in axes[2])
    plt.close("all")


def test_localization_grid_without_pixel_labels_has_no_outline_or_marker(tmp_path):
    root = make_experiment(tmp_path / "x", datasets=("synth-lag",), seeds=(0,), table3=None, table4=None)
    axes = grid(draw_localization(load_runs(root), "synth-lag"))
    assert axes.shape == (3, 4)
    for ax in axes.ravel():
        assert ax.get_lines() == [] and not [c for c in ax.collections if isinstance(c, ContourSet)]
    plt.close("all")


def curves(ax: plt.Axes) -> dict[str, plt.Line2D]:
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_validation_curves_plot_every_method_s_mean_and_band_over_seeds(tmp_path):
    root = make_experiment(tmp_path / "x", datasets=("synth-lag",), methods=("ae", "brainomaly", "sagan"),
                           seeds=(0, 1, 2), table3="synth-lag", table4="synth-lag")  # fmt: skip
    runs = load_runs(root)
    ae_runs = runs.loc[runs["method"] == "ae", "run"]
    for k, run in enumerate(ae_runs):  # an extra score (as DDAD's intra), logged as <name>_auc, <name>_ap
        log = pd.read_csv(f"{run}/val_log.csv")
        log["intra_auc"], log["intra_ap"] = 0.6 + 0.01 * k, 0.55 + 0.02 * k
        log.to_csv(f"{run}/val_log.csv", index=False)
        metrics = json.loads(Path(f"{run}/metrics.json").read_text())
        metrics["extra"] = {"intra": {"auc": 0.6, "ap": 0.55}}
        Path(f"{run}/metrics.json").write_text(json.dumps(metrics))
    runs = load_runs(root)  # now with the extra score's rows (ae-intra), which name the same folders
    assert (runs["method"] == "ae-intra").sum() == 3
    fig = draw_validation(runs, "synth-lag")
    ax_auc, ax_ap = fig.axes
    assert (ax_auc.get_title(), ax_ap.get_title()) == ("AUC", "AP")
    for ax, metric in ((ax_auc, "auc"), (ax_ap, "ap")):
        lines = curves(ax)
        assert sorted(lines) == ["ae", "ae (intra)", "brainomaly", "chance", "sagan"]
        bands = [c for c in ax.collections if c.get_paths()]
        assert len(bands) == 4  # one min-max band per curve
        for method in ("ae", "brainomaly", "sagan"):
            # Table 2 runs only: the Table 3 and 4 variants of SAGAN are not averaged in
            part = runs[(runs["method"] == method) & runs["run"].str.contains("/ar0.6/default/")]
            logs = [pd.read_csv(f"{r}/val_log.csv") for r in part["run"]]
            assert len(logs) == 3
            for name in ("", "intra"):
                column = f"{name}_{metric}" if name else metric
                if column not in logs[0]:
                    continue
                line = lines[f"{method} ({name})" if name else method]
                np.testing.assert_array_equal(line.get_xdata(), logs[0]["iteration"])
                mean = np.mean([log[column] for log in logs], axis=0)
                np.testing.assert_allclose(line.get_ydata(), mean, rtol=1e-12)
                assert line.get_linestyle() == ("--" if name else "-")
        # the band of the first method runs from the minimum to the maximum over seeds
        logs = [pd.read_csv(f"{r}/val_log.csv") for r in sorted(ae_runs)]
        (verts,) = [p.vertices for p in bands[0].get_paths()]
        low, high = (
            np.min([log[metric] for log in logs], axis=0),
            np.max([log[metric] for log in logs], axis=0),
        )
        n = len(low)
        np.testing.assert_allclose(verts[1 : n + 1, 1], low)
        np.testing.assert_allclose(verts[n + 2 : 2 * n + 2, 1][::-1], high)
    plt.close(fig)


def test_no_validation_figure_for_runs_without_validation_logs(tmp_path):
    root = make_experiment(tmp_path / "x", datasets=("synth-lag",), seeds=(0,), table3=None, table4=None)
    for path in (root / "runs").glob("**/val_log.csv"):
        path.unlink()
    names = {p.name for p in write_figures(root, tmp_path / "figs")}
    assert "validation_synth-lag.png" not in names and "training_synth-lag.png" in names
