"""Tables 1-4, the metrics file, check-tables and compare-paper, on fake run folders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from sagan import stats
from sagan.cli import main
from sagan.report.markup import ranks
from sagan.report.tables import TABLE_COLUMNS, build_tables, paper_values, render_all
from tests.run_fakes import make_experiment, make_run, make_splits


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = make_experiment(tmp_path_factory.mktemp("exp") / "paper")
    assert main(["tables", "--results", str(root), "--out", str(root / "tables")]) == 0
    return root


def read(root, name):
    return pd.read_csv(root / "tables" / name, keep_default_na=False, dtype=str)


def test_every_table_in_three_formats_with_the_required_columns(experiment):
    for name, columns in TABLE_COLUMNS.items():
        for ext in ("csv", "md", "tex"):
            assert (experiment / "tables" / f"{name}.{ext}").stat().st_size > 0
        assert list(read(experiment, f"{name}.csv").columns) == columns
    assert (experiment / "tables" / "table2.tex").read_text().startswith(r"\begin{table}")


def test_table2_values_are_percent_means_and_sample_stds_over_seeds(experiment):
    t2 = read(experiment, "table2.csv")
    assert len(t2) == 6 and set(t2["n_seeds"]) == {"3"}
    row = t2[(t2["method"] == "sagan") & (t2["dataset"] == "vindr")].iloc[0]
    aps = [
        json.loads((p / "metrics.json").read_text())["ap"]
        for p in sorted((experiment / "runs/vindr/sagan/ar0.6/default").iterdir())
    ]
    assert row["ap_mean"] == f"{100 * np.mean(aps):.2f}"
    assert row["ap_std"] == f"{100 * np.std(aps, ddof=1):.2f}"
    assert all(len(v.split(".")[1]) == 2 for v in t2["auc_mean"])  # two decimals
    # paper values only where the paper states them (VinDr); RSNA and LAG absolute values are unknown
    assert (row["paper_ap"], row["paper_auc"]) == ("89.30", "91.47")
    assert set(t2.loc[t2["dataset"] != "vindr", "paper_ap"]) == {""}
    assert set(t2["selection"]) == {"last"}
    # the ablation variants and other anomaly ratios do not leak into Table 2
    assert set(t2["method"]) == {"brainomaly", "sagan"}


def run_scores(folder) -> tuple[np.ndarray, np.ndarray]:
    frames = [pd.read_csv(p / "scores.csv") for p in sorted(folder.iterdir())]  # seed0, seed1, seed2
    return np.stack([f["score"] for f in frames]), frames[0]["label"].to_numpy()


def test_table2_interval_is_the_two_way_bootstrap_of_the_runs_scores(experiment):
    t2 = read(experiment, "table2.csv")
    row = t2[(t2["method"] == "brainomaly") & (t2["dataset"] == "rsna")].iloc[0]
    ci = stats.row_interval(*run_scores(experiment / "runs/rsna/brainomaly/ar0.6/default"))
    assert (row["ap_low"], row["ap_high"]) == tuple(f"{100 * v:.2f}" for v in ci["ap"])
    assert (row["auc_low"], row["auc_high"]) == tuple(f"{100 * v:.2f}" for v in ci["auc"])
    assert float(row["auc_low"]) < float(row["auc_mean"]) < float(row["auc_high"])
    md = (experiment / "tables" / "table2.md").read_text()
    assert f"{row['auc_mean']} ± {row['auc_std']} [{row['auc_low']}, {row['auc_high']}]" in md


def test_table3_p_values_compare_each_variant_with_the_best_after_holm(experiment):
    t3 = read(experiment, "table3.csv")
    folders = {"Baseline (Brainomaly)": "brainomaly/ar0.6/default", "SAGAN w/o ACM, ARRM": "sagan/ar0.6/acm0-arrm0",
               "+ACM": "sagan/ar0.6/acm1-arrm0", "+ARRM": "sagan/ar0.6/acm0-arrm1",
               "+ACM and ARRM": "sagan/ar0.6/default"}  # fmt: skip
    scores = {v: run_scores(experiment / "runs/vindr" / f)[0] for v, f in folders.items()}
    labels = run_scores(experiment / "runs/vindr/sagan/ar0.6/default")[1]
    expected = stats.compare_to_best(scores, labels)
    for metric in ("ap", "auc"):
        for variant, p in zip(t3["variant"], t3[f"{metric}_p"]):
            holm = expected[metric][variant].p_holm
            assert p == ("" if np.isnan(holm) else f"{holm:.4f}")
        best = t3["variant"][t3[f"{metric}_mean"].astype(float).idxmax()]
        assert t3.loc[t3["variant"] == best, f"{metric}_p"].item() == ""  # the best row has no p
    assert (t3["auc_p"] != "").sum() == 4 and any(p != "" and float(p) < 0.05 for p in t3["auc_p"])


def test_dagger_marks_exactly_the_significant_cells(experiment):
    t3 = read(experiment, "table3.csv")
    md = (experiment / "tables" / "table3.md").read_text()
    tex = (experiment / "tables" / "table3.tex").read_text()
    lines = {
        r.variant: next(line for line in md.splitlines() if line.startswith(f"| {r.variant} |"))
        for r in t3.itertuples()
    }
    for r in t3.itertuples():
        cells = lines[r.variant].split(" | ")[1:3]  # AP, AUC
        for cell, p in zip(cells, (r.ap_p, r.auc_p)):
            assert cell.rstrip("*").endswith("†") == (p != "" and float(p) < 0.05), (r.variant, cell, p)
    assert tex.count(r"$^\dagger$") == md.count("†")


def test_missing_scores_of_a_run_name_the_file(tmp_path, capsys):
    root = make_experiment(tmp_path / "x", datasets=("rsna",), seeds=(0, 1), table3=None, table4=None)
    scores = root / "runs/rsna/sagan/ar0.6/default/seed1/scores.csv"
    scores.unlink()
    assert main(["tables", "--results", str(root), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert str(scores) in err and "sagan evaluate" in err


def test_table3_rows_paper_values_and_network(experiment):
    t3 = read(experiment, "table3.csv")
    assert list(t3["variant"]) == [
        "Baseline (Brainomaly)", "SAGAN w/o ACM, ARRM", "+ACM", "+ARRM", "+ACM and ARRM",
    ]  # fmt: skip
    assert list(t3["paper_ap"]) == ["84.37", "", "86.07", "87.57", "89.30"]
    assert list(t3["paper_auc"]) == ["88.54", "", "89.89", "90.37", "91.47"]
    assert set(t3["dataset"]) == {"vindr"}
    # the full model row is the same runs as Table 2's SAGAN on VinDr (trained once)
    t2 = read(experiment, "table2.csv")
    full = t2[(t2["method"] == "sagan") & (t2["dataset"] == "vindr")].iloc[0]
    assert t3.iloc[4]["ap_mean"] == full["ap_mean"]
    assert list(t3["network"]) == ["", "paper", "paper", "paper", "paper"]
    for ext in ("md", "tex"):
        assert "SAGAN network: paper (" in (experiment / "tables" / f"table3.{ext}").read_text()


def test_table4_orders_ratios_with_0u_first(experiment):
    t4 = read(experiment, "table4.csv")
    assert list(t4["ar"]) == ["0_u", "0", "0.2", "0.6", "1"]
    assert set(t4["dataset"]) == {"rsna"}
    md = (experiment / "tables" / "table4.md").read_text()
    assert "| 0_u |" in md and "| 20% |" in md and "| 100% |" in md


def test_table1_from_split_summaries(experiment):
    t1 = read(experiment, "table1.csv")
    assert list(t1["dataset"]) == ["rsna", "vindr", "lag"]
    assert list(t1.iloc[0])[1:] == ["154", "154", "160", "200", "40", "40"]
    assert "154 (160 normal + 200 abnormal)" in (experiment / "tables" / "table1.md").read_text()


def test_best_bold_and_second_underlined_within_each_group(experiment):
    md = (experiment / "tables" / "table3.md").read_text()
    t3 = read(experiment, "table3.csv")
    ap = t3["ap_mean"].astype(float)
    best, second = t3["ap_mean"][ap.idxmax()], t3["ap_mean"][ap.drop(ap.idxmax()).idxmax()]
    assert f"**{best} ± " in md and f"<u>{second} ± " in md
    tex = (experiment / "tables" / "table3.tex").read_text()
    assert rf"\textbf{{{best} $\pm$" in tex and rf"\underline{{{second} $\pm$" in tex
    assert ranks([1.0, 3.0, 2.0, 3.0, float("nan")]) == [0, 1, 2, 1, 0]


def test_metrics_file_for_dvc(experiment, tmp_path):
    metrics = json.loads((experiment / "metrics.json").read_text())
    t2 = read(experiment, "table2.csv")
    row = t2[(t2["method"] == "sagan") & (t2["dataset"] == "rsna")].iloc[0]
    assert metrics["table2"]["rsna"]["sagan"]["ap_mean"] == float(row["ap_mean"])
    assert set(metrics["table4"]["rsna"]) == {"ar_0_u", "ar_0", "ar_0.2", "ar_0.6", "ar_1"}
    # real dvc reads it as a metrics file (no network: analytics off)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    shutil.copy(experiment / "metrics.json", tmp_path / "metrics.json")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True, env=env)
    subprocess.run(["dvc", "config", "core.analytics", "false"], cwd=tmp_path, check=True, env=env)
    shown = subprocess.run(
        ["dvc", "metrics", "show", "metrics.json", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    assert str(row["ap_mean"]) in shown.stdout


def test_test_oracle_selection_is_labelled_in_every_table(tmp_path):
    root = make_experiment(
        tmp_path / "oracle", datasets=("vindr", "rsna"), seeds=(0, 1), selection="test-oracle"
    )
    files = render_all(build_tables(root))
    for name in ("table2", "table3", "table4"):
        assert "test-oracle" in files[f"{name}.md"] and "test-oracle" in files[f"{name}.tex"]
        assert "test-oracle" in files[f"{name}.csv"]
    assert "last checkpoint" not in files["table2.md"]


def test_tables_are_deterministic_and_empty_tables_still_written(tmp_path):
    root = make_experiment(tmp_path / "small", datasets=("synth-rsna",), seeds=(0,), table3=None, table4=None)
    first, second = render_all(build_tables(root)), render_all(build_tables(root))
    assert first == second
    assert first["table3.csv"].strip() == ",".join(TABLE_COLUMNS["table3"])  # header only
    assert "–" in first["table4.md"]
    t2 = pd.read_csv(pd.io.common.StringIO(first["table2.csv"]), keep_default_na=False)
    assert set(t2["ap_std"]) == {""}  # one seed: no standard deviation


def test_check_tables_passes_then_fails_on_a_changed_or_missing_table(experiment, tmp_path, capsys):
    committed = tmp_path / "committed"
    shutil.copytree(experiment / "tables", committed)
    assert main(["check-tables", "--results", str(experiment), "--tables", str(committed)]) == 0
    text = (committed / "table2.csv").read_text()
    (committed / "table2.csv").write_text(text.replace("89.30", "90.00", 1))
    (committed / "table4.tex").unlink()
    capsys.readouterr()
    assert main(["check-tables", "--results", str(experiment), "--tables", str(committed)]) == 1
    out = capsys.readouterr().out
    assert "table2.csv" in out and "90.00" in out and "table4.tex: missing" in out


def test_compare_paper_within_and_beyond_tolerance(experiment, tmp_path, capsys):
    t3 = experiment / "tables" / "table3.csv"
    assert main(["compare-paper", str(t3), "--tolerance", "100"]) == 0
    out = capsys.readouterr().out
    assert "+ARRM" in out and "87.57" in out
    # each paper value against our 95% interval, from the table's own columns
    table = read(experiment, "table3.csv")
    row = table[table["variant"] == "+ARRM"].iloc[0]
    inside = float(row["ap_low"]) <= 87.57 <= float(row["ap_high"])
    line = next(line for line in out.splitlines() if line.startswith("vindr +ARRM") and " AP " in line)
    assert f"[{row['ap_low']}, {row['ap_high']}]" in line and line.split()[-1] == ("yes" if inside else "no")
    assert "paper value(s) lie inside our 95% interval" in out
    assert main(["compare-paper", str(t3), "--tolerance", "0.001"]) == 1
    assert "BEYOND TOLERANCE" in capsys.readouterr().out
    # Table 2: absolute VinDr values and SAGAN's stated gains on RSNA and LAG over Brainomaly
    assert main(["compare-paper", str(experiment / "tables" / "table2.csv"), "--tolerance", "100"]) == 0
    out = capsys.readouterr().out
    assert "vindr sagan" in out and "rsna gain of sagan over brainomaly" in out and "4.67" in out
    assert "lag gain of sagan over brainomaly" in out and "2.25" in out


def test_compare_paper_on_synthetic_data_has_nothing_to_compare(tmp_path, capsys):
    root = make_experiment(
        tmp_path / "demo", datasets=("synth-vindr",), seeds=(0,), table3="synth-vindr", table4=None
    )
    main(["tables", "--results", str(root), "--out", str(root / "tables")])
    capsys.readouterr()
    assert main(["compare-paper", str(root / "tables" / "table3.csv"), "--tolerance", "0"]) == 0
    assert "nothing to compare" in capsys.readouterr().out
    assert main(["compare-paper", str(root / "tables" / "table4.csv"), "--tolerance", "1"]) == 2


def test_paper_values_hold_only_what_the_paper_states():
    ref = paper_values()
    assert ref["table2"]["values"] == {
        "vindr": {"sagan": {"ap": 89.30, "auc": 91.47}, "brainomaly": {"ap": 84.37, "auc": 88.54},
                  "amae": {"ap": 84.50, "auc": 86.10}},
    }  # fmt: skip
    assert ref["table2"]["gains_of_sagan_over"]["rsna"] == {
        "amae": {"ap": 1.05, "auc": 1.00},
        "brainomaly": {"ap": 4.67, "auc": 1.44},
    }
    assert ref["table2"]["gains_of_sagan_over"]["lag"] == {
        "ddad": {"ap": 4.66, "auc": 3.88},
        "brainomaly": {"ap": 2.25, "auc": 1.06},
    }
    assert [ref["table3"]["values"][k]["ap"] for k in ("baseline", "acm", "arrm", "full")] == [
        84.37,
        86.07,
        87.57,
        89.30,
    ]
    assert [ref["table3"]["values"][k]["auc"] for k in ("baseline", "acm", "arrm", "full")] == [
        88.54,
        89.89,
        90.37,
        91.47,
    ]
    assert "table4" not in ref
    # the stated gains on VinDr agree with the stated absolute values
    vindr = ref["table2"]["values"]["vindr"]
    for other in ("amae", "brainomaly"):
        for m in ("ap", "auc"):
            gain = ref["table2"]["gains_of_sagan_over"]["vindr"][other][m]
            assert vindr["sagan"][m] - vindr[other][m] == pytest.approx(gain, abs=1e-9)


def test_bad_metrics_file_names_the_file(tmp_path, capsys):
    run = make_run(tmp_path / "bad", "rsna", "sagan", 0)
    (run / "metrics.json").write_text('{"auc": 0.5}')
    assert main(["tables", "--results", str(tmp_path / "bad"), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert str(run / "metrics.json") in err and "sagan evaluate" in err


def test_plateau_criterion_on_closed_form_curves():
    from sagan.report.curves import flattened, last_quarter_rise, plateau

    its = [100, 200, 300, 400, 500]
    flat = pd.Series([0.5, 0.6, 0.7, 0.705, 0.708], index=its)  # after 300 under +0.01
    assert plateau(flat) == 300 and flattened(300, 500)
    rising = pd.Series([0.5, 0.6, 0.7, 0.8, 0.9], index=its)
    assert plateau(rising) == 500 and not flattened(500, 500)
    assert last_quarter_rise(rising, 500) == pytest.approx(20.0)  # 0.7 at 300 (<= 375) -> 0.9
    peaked = pd.Series([0.5, 0.8, 0.7, 0.6, 0.65], index=its)  # falls after its peak: flat from 200
    assert plateau(peaked) == 200 and last_quarter_rise(peaked, 500) == 0.0  # 0.7 at 300, then lower
    late = pd.Series([0.5, 0.6, 0.7, 0.75, 0.75], index=its)  # flat from 400 > 375: not flattened
    assert plateau(late) == 400 and not flattened(400, 500)
    assert last_quarter_rise(late, 500) == pytest.approx(5.0)  # > TOL whenever the curve has not flattened


def test_a_staged_method_is_judged_over_the_stage_that_trains_its_score(tmp_path):
    """AMAE's score exists only in its last stage: at chance before it, whatever the budget. Judged over
    the whole budget the curve would always read 'rising'; over [score_start, budget] it can flatten."""
    from sagan.report.curves import flattened, last_quarter_rise, plateau, scoring_span

    its = list(range(100, 1100, 100))
    staged = pd.Series([0.5] * 8 + [0.7, 0.705], index=its)  # the score's stage starts at 800
    assert plateau(staged) == 900 and not flattened(900, 1000)  # whole budget: 900 > 750
    assert last_quarter_rise(staged, 1000) == pytest.approx(20.5)  # 0.5 at 700 -> 0.705
    span = scoring_span(staged, 800)
    assert list(span.index) == [900, 1000] and plateau(span) == 900
    assert flattened(900, 1000, 800)  # 100 <= 75% of the stage's 200
    assert last_quarter_rise(staged, 1000, 800) == pytest.approx(0.5)  # 0.7 at 900 (<= 950) -> 0.705

    # Table 2 reads the start from metrics.json (`sagan evaluate` writes Method.score_start)
    root = tmp_path / "staged"
    make_splits(root, "synth-rsna")
    for seed in range(3):
        run = make_run(root, "synth-rsna", "amae", seed)
        metrics = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**metrics, "score_start": 160}))
        val_its = np.arange(20, 220, 20)
        auc = np.where(val_its <= 160, 0.5, 0.8) + np.where(val_its == 200, 0.005, 0.0)
        pd.DataFrame({"iteration": val_its, "auc": auc, "ap": auc}).to_csv(run / "val_log.csv", index=False)
    assert main(["tables", "--results", str(root), "--out", str(root / "tables")]) == 0
    row = read(root, "table2.csv").iloc[0]
    assert (row["method"], row["val_plateau"], row["val_flat"]) == ("amae", "180", "1")  # 20 <= 0.75 * 40
    assert float(row["val_rise"]) == pytest.approx(0.5)  # 0.8 at 180 (<= 190) -> 0.805 at 200
    assert "flat from 180" in (root / "tables" / "table2.md").read_text()


def test_table2_val_curve_columns_come_from_the_seed_mean_validation_curve(experiment):
    from sagan.report.curves import FLAT_FRACTION, plateau

    t2 = read(experiment, "table2.csv")
    for _, row in t2.iterrows():
        runs = sorted((experiment / f"runs/{row['dataset']}/{row['method']}/ar0.6/default").iterdir())
        logs = [pd.read_csv(r / "val_log.csv").set_index("iteration")["auc"] for r in runs]
        mean = pd.concat(logs, axis=1).mean(axis=1)
        t = plateau(mean)
        assert row["iterations"] == "200" and row["val_plateau"] == str(t)
        assert row["val_flat"] == ("1" if t <= FLAT_FRACTION * 200 else "0")
        head, tail = mean[mean.index <= 150], mean[mean.index > 150]
        assert float(row["val_rise"]) == pytest.approx(max(0, 100 * (tail.max() - head.iloc[-1])), abs=0.01)
    md = (experiment / "tables" / "table2.md").read_text()
    assert "val. curve" in md and ("flat from" in md or "rising (+" in md)


def test_a_synthetic_row_under_a_tenth_of_its_bench_budget_is_shown_but_not_ranked(tmp_path):
    """Demo-preset runs of 200 iterations: f-AnoGAN's bench budget is 5600 (200 < 560: a pipeline
    check), the AE's 2000 (200 is a tenth: ranked). f-AnoGAN scores higher than the AE here, yet the AE
    is its group's best, f-AnoGAN takes no rank and no p, and the AE's p is not against it."""
    from sagan.report.curves import bench_budget

    root = make_experiment(
        tmp_path / "demo", datasets=("synth-rsna",), methods=("ae", "fanogan"), seeds=(0, 1),
        table3=None, table4=None, preset="demo",
    )  # fmt: skip
    assert main(["tables", "--results", str(root), "--out", str(root / "tables")]) == 0
    t2 = read(root, "table2.csv").set_index("method")
    assert bench_budget("fanogan", "demo", "synth-rsna") == 5600.0
    assert np.isnan(bench_budget("fanogan", "paper", "synth-rsna")) and np.isnan(
        bench_budget("ae", "demo", "rsna")
    )
    assert t2.loc["fanogan", "bench_iterations"] == "5600" and t2.loc["ae", "bench_iterations"] == "2000"
    assert (t2.loc["fanogan", "ranked"], t2.loc["ae", "ranked"]) == ("0", "1")
    assert float(t2.loc["fanogan", "auc_mean"]) > float(t2.loc["ae", "auc_mean"])
    assert (t2.loc[["fanogan", "ae"], ["ap_p", "auc_p"]] == "").all().all()  # the AE is alone in its ranking
    md = (root / "tables" / "table2.md").read_text()
    fanogan, ae = (next(line for line in md.splitlines() if f"| {m} |" in line) for m in ("fanogan", "ae"))
    assert "| 200 (5600), not ranked |" in fanogan and "**" not in fanogan and "<u>" not in fanogan
    assert "| 200 (2000) |" in ae and ae.count("**") == 4  # AP and AUC bold
    # the same runs without a preset (runs from before metrics.json recorded it): no column, all ranked
    for path in (root / "runs").glob("**/metrics.json"):
        m = json.loads(path.read_text())
        del m["preset"]
        path.write_text(json.dumps(m))
    assert main(["tables", "--results", str(root), "--out", str(root / "tables")]) == 0
    assert set(read(root, "table2.csv")["ranked"]) == {"1"}
    assert "Iterations (bench)" not in (root / "tables" / "table2.md").read_text()
