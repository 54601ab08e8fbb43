"""Figures from fake run folders: the expected files, readable images, boxes drawn, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sagan.cli import main
from sagan.report.figures import write_figures
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
        ]
    assert names == sorted(expected)
    for png in figures.glob("*.png"):
        with Image.open(png) as im:
            assert im.width >= 600 and im.height >= 300  # large enough to read
    for pdf in figures.glob("*.pdf"):
        assert pdf.read_bytes().startswith(b"%PDF")


def test_heatmaps_draw_ground_truth_in_green_and_red(figures):
    rgb = np.asarray(Image.open(figures / "heatmaps_synth-rsna.png").convert("RGB")).astype(int)
    green = (rgb[..., 1] > 200) & (rgb[..., 0] < 60) & (rgb[..., 2] < 60)
    assert green.sum() > 100  # box and mask outlines on the originals


def test_figures_are_byte_for_byte_reproducible(figures, tmp_path):
    again = write_figures(figures.parent, tmp_path)
    for path in again:
        assert path.read_bytes() == (figures / path.name).read_bytes(), path.name


def test_no_anomaly_ratio_figure_without_table4_runs(tmp_path):
    root = make_experiment(tmp_path / "x", datasets=("synth-lag",), seeds=(0,), table3=None, table4=None)
    names = {p.name for p in write_figures(root, tmp_path / "figs")}
    assert names == {"heatmaps_synth-lag.png", "heatmaps_synth-lag.pdf", "roc_pr_synth-lag.png",
                     "roc_pr_synth-lag.pdf", "training_synth-lag.png"}  # fmt: skip


def test_training_curves_handle_losses_logged_on_some_iterations(tmp_path):
    root = make_experiment(
        tmp_path / "x", datasets=("synth-lag",), methods=("sagan",), seeds=(0,), table3=None, table4=None
    )
    log_path = next((root / "runs").glob("**/train_log.csv"))
    log = pd.read_csv(log_path)
    log.loc[log.index % 2 == 0, "g_loss"] = np.nan  # generator steps every second iteration
    log["lr_g"] = 1e-4
    log.to_csv(log_path, index=False)
    out = write_figures(root, tmp_path / "figs")
    assert (tmp_path / "figs" / "training_synth-lag.png") in out
