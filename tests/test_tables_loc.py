"""The localization table, DDAD-intra as its own Table 2 row, and the other papers' published values in
their own columns of Tables 2 and 4, on fake run folders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sagan import stats
from sagan.cli import main
from sagan.experiments import NORMAL_ONLY, SEMI_SUPERVISED
from sagan.report.other_papers import other_papers
from sagan.report.tables import build_tables, render_all
from tests.run_fakes import make_experiment

METRICS = ("pixel_auroc", "aupro", "pointing_game", "best_dice")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = make_experiment(tmp_path_factory.mktemp("exp") / "paper", methods=("ae", "ddad", "sagan"),
                           seeds=(0, 1, 2), table3=None, table4="rsna")  # fmt: skip
    assert main(["tables", "--results", str(root), "--out", str(root / "tables")]) == 0
    return root


def read(root, name):
    return pd.read_csv(root / "tables" / name, keep_default_na=False, dtype=str)


def run_metrics(root, dataset, method):
    folders = sorted((root / f"runs/{dataset}/{method}/ar0.6/default").iterdir())
    return [json.loads((p / "metrics.json").read_text()) for p in folders]


# --- table_loc --------------------------------------------------------------------------------
def test_table_loc_is_the_mean_and_std_over_seeds_of_each_runs_localization(experiment):
    t = read(experiment, "table_loc.csv")
    assert len(t) == 9 and set(t["n_seeds"]) == {"3"}  # 3 methods x 3 datasets; ddad-intra has no map
    for dataset, truth in (("rsna", "boxes"), ("vindr", "boxes")):
        for method in ("ae", "ddad", "sagan"):
            row = t[(t["dataset"] == dataset) & (t["method"] == method)].iloc[0]
            assert row["ground_truth"] == truth
            for metric in METRICS:
                values = [100 * m["localization"][metric] for m in run_metrics(experiment, dataset, method)]
                assert row[f"{metric}_mean"] == f"{np.mean(values):.2f}"
                assert row[f"{metric}_std"] == f"{np.std(values, ddof=1):.2f}"


def test_lag_rows_say_na_not_zero(experiment):
    t = read(experiment, "table_loc.csv")
    lag = t[t["dataset"] == "lag"]
    assert len(lag) == 3 and set(lag["ground_truth"]) == {"none"}
    assert {lag[f"{m}_{s}"].iloc[i] for m in METRICS for s in ("mean", "std") for i in range(3)} == {""}
    md = (experiment / "tables/table_loc.md").read_text().splitlines()
    lag_lines = [line for line in md if line.startswith("| LAG |")]
    assert len(lag_lines) == 3 and all(line.count("| n/a ") == 4 for line in lag_lines)
    tex = (experiment / "tables/table_loc.tex").read_text()
    assert all(line.count(" n/a ") == 4 for line in tex.splitlines() if line.startswith("LAG &"))


def test_a_method_without_a_map_says_na(tmp_path):
    root = make_experiment(tmp_path / "x", datasets=("rsna",), seeds=(0, 1), table3=None, table4=None)
    for path in (root / "runs/rsna/brainomaly").glob("**/metrics.json"):
        m = json.loads(path.read_text())
        m["localization"] = {**m["localization"], **dict.fromkeys(METRICS), "has_map": False}
        path.write_text(json.dumps(m))
    tables = build_tables(root)
    row = tables["table_loc"].set_index("method").loc["brainomaly"]
    assert all(np.isnan(row[f"{m}_mean"]) for m in METRICS)
    line = next(x for x in render_all(tables)["table_loc.md"].splitlines() if "| brainomaly |" in x)
    assert line.count("| n/a ") == 4
    sagan_line = next(x for x in render_all(tables)["table_loc.md"].splitlines() if "| sagan |" in x)
    assert "n/a" not in sagan_line and "**" in sagan_line  # the only one with a map is the best


def test_table_loc_marks_the_best_and_second_of_each_dataset(experiment):
    t = read(experiment, "table_loc.csv")
    md = [line.split(" | ") for line in (experiment / "tables/table_loc.md").read_text().splitlines()]
    for dataset, label in (("rsna", "| RSNA"), ("vindr", "| VinDr-CXR")):
        lines = {cells[2]: cells for cells in md if cells[0] == label}
        for k, metric in enumerate(("pixel_auroc", "aupro", "best_dice")):
            column = (3, 4, 6)[k]
            means = t[t["dataset"] == dataset].set_index("method")[f"{metric}_mean"].astype(float)
            best, second = means.sort_values(ascending=False).index[:2]
            assert lines[best][column].startswith("**") and lines[second][column].startswith("<u>")


# --- DDAD-intra -------------------------------------------------------------------------------
def test_ddad_intra_is_its_own_normal_only_row_from_the_intra_scores(experiment):
    t2 = read(experiment, "table2.csv")
    intra = t2[(t2["method"] == "ddad-intra") & (t2["dataset"] == "rsna")].iloc[0]
    inter = t2[(t2["method"] == "ddad") & (t2["dataset"] == "rsna")].iloc[0]
    assert intra["group"] == NORMAL_ONLY and inter["group"] == SEMI_SUPERVISED
    runs = run_metrics(experiment, "rsna", "ddad")
    assert intra["auc_mean"] == f"{100 * np.mean([m['extra']['intra']['auc'] for m in runs]):.2f}"
    assert inter["auc_mean"] == f"{100 * np.mean([m['auc'] for m in runs]):.2f}"
    # its interval is the two-way bootstrap of the intra column of the runs' scores.csv
    folders = sorted((experiment / "runs/rsna/ddad/ar0.6/default").iterdir())
    frames = [pd.read_csv(p / "scores.csv").sort_values("name") for p in folders]
    ci = stats.row_interval(np.stack([f["intra"] for f in frames]), frames[0]["label"].to_numpy())
    assert (intra["auc_low"], intra["auc_high"]) == (f"{100 * ci['auc'][0]:.2f}", f"{100 * ci['auc'][1]:.2f}")
    # compared within the normal-only group (with ae), not with the semi-supervised methods
    normal_only = t2[(t2["group"] == NORMAL_ONLY) & (t2["dataset"] == "rsna")]
    assert sorted(normal_only["method"]) == ["ae", "ddad-intra"]
    assert (normal_only["auc_p"] == "").sum() == 1  # one best of the group


# --- other papers' values -----------------------------------------------------------------------
def published(source, dataset, method, score="main", ar=None):
    (r,) = [
        r for r in other_papers()["values"]
        if (r["source"], r["dataset"], r["method"], r["score"], r["anomaly_ratio"]) == (source, dataset, method, score, ar)
    ]  # fmt: skip
    return r


def test_table2_shows_other_papers_values_in_their_own_columns(experiment):
    t2 = read(experiment, "table2.csv").set_index(["method", "dataset"])
    ae = published("ae4ad", "rsna", "ae")
    assert (t2.at[("ae", "rsna"), "ref_ae4ad_auc"], t2.at[("ae", "rsna"), "ref_ae4ad_ap"]) == (
        f"{ae['auc']:.2f}", f"{ae['ap']:.2f}",
    )  # fmt: skip
    assert t2.at[("ae", "rsna"), "ref_ddad_auc"] == f"{published('ddad', 'rsna', 'ae')['auc']:.2f}"
    assert t2.at[("ddad-intra", "rsna"), "ref_ddad_auc"] == "69.40"  # DDAD-intra, no anomaly ratio
    assert t2.at[("ddad", "rsna"), "ref_ddad_auc"] == "81.50"  # DDAD-inter at the main AR, 60%
    assert t2.at[("ddad", "rsna"), "ref_ddad_ap"] == ""  # the source gives no AP
    assert t2.at[("sagan", "rsna"), "ref_ae4ad_auc"] == "" and t2.at[("ae", "lag"), "ref_ae4ad_auc"] == ""
    assert set(t2["paper_auc"]) <= {"", "89.30", "91.47", "88.54"}  # never mixed with the paper's own
    md = (experiment / "tables/table2.md").read_text()
    header = md.splitlines()[2]
    assert "RSNA AUC (AE4AD)" in header and "RSNA AUC (DDAD paper)" in header and "LAG AUC (" not in header
    assert (
        "(AE4AD) = published in Cai, Chen, Cheng" in md
        and "(DDAD paper) = published in Cai, Chen, Yang" in md
    )


def test_table4_shows_ddads_published_anomaly_ratio_curve(experiment):
    t4 = read(experiment, "table4.csv").set_index("ar")
    assert t4.at["0", "ref_ddad_ddad_auc"] == "70.30" and t4.at["1", "ref_ddad_ddad_auc"] == "82.20"
    assert t4.at["0_u", "ref_ddad_ddad_auc"] == ""  # no unlabelled data is not AR 0
    assert "ddad AUC (DDAD paper)" in (experiment / "tables/table4.md").read_text()


def test_no_reference_columns_where_no_source_gives_values(tmp_path):
    root = make_experiment(
        tmp_path / "s", datasets=("synth-rsna",), seeds=(0,), table3=None, table4="synth-rsna"
    )
    files = render_all(build_tables(root))
    assert "AE4AD" not in files["table2.md"] and "DDAD paper" not in files["table4.md"]
    assert "Other papers" not in files["table2.tex"]


def test_check_tables_covers_table_loc(experiment, tmp_path, capsys):
    committed = tmp_path / "committed"
    committed.mkdir()
    for path in (experiment / "tables").iterdir():
        (committed / path.name).write_text(path.read_text())
    assert main(["check-tables", "--results", str(experiment), "--tables", str(committed)]) == 0
    md = (committed / "table_loc.md").read_text()
    (committed / "table_loc.md").write_text(md.replace("| n/a ", "| 0.00 ", 1))  # LAG as 0: caught
    (committed / "table_loc.tex").unlink()
    capsys.readouterr()
    assert main(["check-tables", "--results", str(experiment), "--tables", str(committed)]) == 1
    out = capsys.readouterr().out
    assert "table_loc.md" in out and "table_loc.tex: missing" in out
