"""benchmarks/gpu_check.sh --dry: every step of the GPU check runs on CPU at a tiny size (the same
script and benchmarks/authors_step.py), so that the check cannot rot before a GPU is lent."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_writes_one_result_per_step(tmp_path):
    out = tmp_path / "results.jsonl"
    subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry", "--out", str(out)], check=True
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r.get("error") for r in rows] == [None] * len(rows)
    labels = ["fp32", "fp32-joint", "bf16", "authors-fp32", "compile", "shared-2", "shared-2"]
    assert [r["label"] for r in rows] == labels
    by = {r["label"]: r for r in rows}
    assert by["fp32"]["g_pass"] == "per_part" and by["fp32-joint"]["g_pass"] == "joint"
    assert (
        by["bf16"]["amp"] == "bf16"
        and by["compile"]["compile"]
        and by["authors-fp32"]["variant"] == "authors"
    )
    assert sorted(r["seed"] for r in rows if r["label"] == "shared-2") == [1, 2]  # two runs at once
    for r in rows:
        assert r["device"] == "cpu" and r["batch"] == 4
        assert len(r["iteration_s"]) >= 3 and math.isfinite(r["s_per_it"]) and r["peak_rss_GiB"] > 0


def test_synthetic_quality_reports_a_finished_experiment(tmp_path):
    """`synthetic_quality.py --results`: per method its Table 2 AUC/AP and curve state on each synthetic
    set and the job wall of its run jobs (Snakemake's benchmark files), without training."""
    from tests.run_fakes import make_experiment

    root = make_experiment(
        tmp_path / "demo",
        datasets=("synth-rsna",),
        methods=("ae", "ddad"),
        seeds=(0, 1),
        table3=None,
        table4=None,
        preset="demo",
    )
    for method, wall in (("ae", 12.4), ("ddad", 30.0)):
        tsv = root / "benchmarks" / "run" / "synth-rsna" / method / "ar0.6" / "default.tsv"
        tsv.parent.mkdir(parents=True)
        tsv.write_text(f"s\th:m:s\tmax_rss\tcpu_time\n{wall}\t0:00:12\t100\t{wall - 2}\n")
    out = subprocess.run(
        ["python", str(ROOT / "benchmarks" / "synthetic_quality.py"), "--results", str(root)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines() if line.startswith("| ")}
    assert set(rows) >= {"ae", "ddad", "ddad-intra"}
    assert rows["ae"].endswith("| 12 |") and rows["ddad"].endswith("| 30 |")
    assert "| ae | 200 (2000) |" in rows["ae"] and "| ddad | 200 (1600) |" in rows["ddad"]
    assert "(the same runs)" in rows["ddad-intra"] and (
        "flat from" in rows["ae"] or "rising (+" in rows["ae"]
    )
    assert "run jobs in all: 42 s of job wall" in out.splitlines() and "CPU" not in out


def test_seed_batching_times_the_same_work_it_compares(tmp_path):
    """`seed_batching.py`: every conv call of a real training step (convs and transposed convs), timed as
    one, three and one grouped call; the script itself checks that the grouped call computes the three
    networks' outputs (a grouped layout that silently computed something else would fail here)."""
    out = subprocess.run(
        ["python", str(ROOT / "benchmarks" / "seed_batching.py"), "--methods", "ae", "--repeats", "1"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    (row,) = [line for line in out.splitlines() if line.startswith("| ae |")]
    calls, *ms, ratio, _ = (float(c) for c in row.strip("| ").split(" | ")[1:])
    assert calls == 8  # the AE's four convs and four transposed convs, once each per step
    assert all(v > 0 for v in ms) and ratio > 0


def test_convergence_judges_a_staged_method_from_the_stage_that_trains_its_score(tmp_path):
    """`convergence.py`: real runs (synth, `sagan run`, the validation log), one table row per method and
    set; AMAE's curve is judged from its last stage (Method.score_start), the AE's from 0."""
    from sagan.runtime import build_method, resolve_config

    cmd = ["python", str(ROOT / "benchmarks" / "convergence.py"), "--work", str(tmp_path), "--methods",
           "ae,amae", "--datasets", "synth-lag", "--seeds", "0", "--iterations", "20", "--every", "2"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    table = out[: out.index("Seed-mean")].splitlines()  # the summary table, before the fractions table
    (head,) = [r for r in table if r.startswith("| dataset ")]
    header = [c.strip() for c in head.split("|")[1:-1]]
    cells = [[c.strip() for c in r.split("|")[1:-1]] for r in table if r.startswith("| synth-lag ")]
    rows = {c[header.index("method")]: c for c in cells}
    start = {m: rows[m][header.index("judged from")] for m in ("ae", "amae")}
    cfg = resolve_config("amae", 0, "demo", None, {"train.iterations": 20})
    s2 = build_method(cfg, torch.device("cpu")).s2
    assert start == {"ae": "0", "amae": str(s2)} and 0 < s2 < 20
    assert all(rows[m][header.index("finished")] == "1" for m in rows)
