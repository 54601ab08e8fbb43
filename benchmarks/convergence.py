"""Convergence study on the synthetic sets (issue 12): validation AUC/AP against iterations, the plateau
of each curve, and the final test AUC/AP, for each method, dataset and seed.

Each run is one `sagan run` process (train, then evaluate; the package CLI, as the workflow runs it) at
the demo preset's networks and image size, with a budget of `--iterations` and the method's own
schedule scaled to that budget (the GANs decay the learning rate over the budget's last half), scoring
the dataset's labelled validation split every `--every` iterations (`eval.val_every`; never the test
set). Runs that finished are not rerun, so the command can be resumed or extended with more seeds.

Plateau criterion (per method and dataset, on the mean over seeds of the validation AUC): the first
logged iteration t after which the curve never rises more than `--tol` (0.01) above its value at t
(sagan/report/curves.py, which Table 2's "val. curve" column uses too).
The curve has flattened when t <= 75% of the budget, i.e. at least the last quarter of the run adds
less than `--tol`; otherwise the table says "rising". A staged method (AMAE, f-AnoGAN) is judged over
the stage that trains its score ("judged from": `Method.score_start`, of the runs' configuration).
Test AUC/AP: mean ± the standard deviation over seeds with ddof = 1, as in the tables (ddof 0 in the
studies of benchmarks/RESULTS.md before 2026-12-04, which say so).

Usage: python benchmarks/convergence.py --work DIR --methods sagan,brainomaly,ae --seeds 0,1,2
         [--datasets synth-rsna,synth-vindr,synth-lag] [--iterations 3000] [--every 100] [--jobs 2]
         [--set KEY=VALUE ...] [--summary-only]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sagan.report.curves import TOL, flattened, plateau, scoring_span, seed_mean
from sagan.runtime import build_method, load_run_config

SAGAN = [sys.executable, "-m", "sagan.cli"]  # the package CLI, also where it is not installed (PYTHONPATH)


def synth(work: Path, dataset: str) -> Path:
    data = work / "data" / dataset
    if not (data / "meta.json").is_file():
        subprocess.run([*SAGAN, "synth", dataset, "--out", str(data), "--size", "small"], check=True)
    return data


def run_one(work: Path, a: argparse.Namespace, dataset: str, method: str, seed: str) -> tuple[str, float]:
    out = work / "runs" / f"it{a.iterations}" / dataset / method / f"seed{seed}"
    if (out / "metrics.json").is_file():
        return str(out), 0.0
    sets = [f"train.iterations={a.iterations}", f"eval.val_every={a.every}", "train.threads=1", *a.sets]
    cmd = [*SAGAN, "run", "--data", str(work / "data" / dataset), "--method", method, "--seed", seed]
    cmd += ["--preset", "demo", "--out", str(out)] + [x for s in sets for x in ("--set", s)]
    t0 = time.perf_counter()
    log = (work / "logs" / f"{dataset}-{method}-{seed}-it{a.iterations}.log").open("w")
    subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    return str(out), time.perf_counter() - t0


def score_start(run: Path) -> int:
    """Where a run's curve is judged from: `Method.score_start` of the method its saved configuration
    builds (a staged method, AMAE or f-AnoGAN, from the stage that trains its score; unfinished runs
    too, and runs evaluated before metrics.json recorded it)."""
    return build_method(load_run_config(run), torch.device("cpu")).score_start()


def summarize(work: Path, a: argparse.Namespace) -> str:
    rows, curves = [], {}
    for dataset in a.datasets:
        for method in a.methods:
            runs = [work / "runs" / f"it{a.iterations}" / dataset / method / f"seed{s}" for s in a.seeds]
            runs = [r for r in runs if (r / "val_log.csv").is_file()]  # unfinished runs: curve so far
            if not runs:
                continue
            mean = seed_mean([str(r) for r in runs], "auc")
            curves[(dataset, method)] = mean
            test = [
                json.loads((r / "metrics.json").read_text()) for r in runs if (r / "metrics.json").is_file()
            ]
            start = score_start(runs[0])  # the same configuration, so the same start, in every seed
            span = scoring_span(mean, start)
            if not len(span):
                continue
            t = plateau(span, a.tol)
            # pandas' std: ddof 1 and NaN for one seed, as the tables (sagan/report/tables.py)
            auc, ap = (pd.Series([m[k] for m in test] or [np.nan]) * 100 for k in ("auc", "ap"))
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "seeds": len(runs),
                    "finished": len(test),
                    "last logged": int(mean.index[-1]),
                    "judged from": start,
                    "plateau at": (
                        "unfinished"
                        if mean.index[-1] < a.iterations
                        else t
                        if flattened(t, a.iterations, start)
                        else f"rising ({t})"
                    ),
                    "val AUC there": f"{100 * mean[t]:.1f}",
                    "val AUC max": f"{100 * mean.max():.1f}",
                    "val AUC final": f"{100 * mean.iloc[-1]:.1f}",
                    "test AUC": f"{auc.mean():.1f} ± {auc.std():.1f}",
                    "test AP": f"{ap.mean():.1f} ± {ap.std():.1f}",
                }
            )
    table = pd.DataFrame(rows)
    lines = [table.to_markdown(index=False) if len(table) else "(no finished runs)", ""]
    marks = [k for k in (0.1, 0.25, 0.5, 0.75, 1.0)]
    lines.append("Seed-mean validation AUC (%) at fractions of the budget:")
    head = "| dataset | method | " + " | ".join(f"{int(f * a.iterations)}" for f in marks) + " |"
    lines += [head, "|" + " --- |" * (len(marks) + 2)]
    for (dataset, method), mean in curves.items():
        cells = [f"{100 * mean.iloc[np.abs(mean.index - f * a.iterations).argmin()]:.1f}" for f in marks]
        lines.append(f"| {dataset} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--methods", default="sagan,brainomaly,ae", type=lambda s: s.split(","))
    p.add_argument("--datasets", default="synth-rsna,synth-vindr,synth-lag", type=lambda s: s.split(","))
    p.add_argument("--seeds", default="0,1,2", type=lambda s: s.split(","))
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--tol", type=float, default=TOL)
    p.add_argument("--set", dest="sets", action="append", default=[])
    p.add_argument("--summary-only", action="store_true")
    a = p.parse_args()
    (a.work / "logs").mkdir(parents=True, exist_ok=True)
    if not a.summary_only:
        for dataset in a.datasets:
            synth(a.work, dataset)
        todo = [(d, m, s) for s in a.seeds for d in a.datasets for m in a.methods]
        with ThreadPoolExecutor(a.jobs) as pool:
            for out, seconds in pool.map(lambda job: run_one(a.work, a, *job), todo):
                print(f"{out}: {seconds:.0f} s", flush=True)
    print(f"budget {a.iterations} iterations, validation every {a.every}, preset demo, extra {a.sets}")
    print(summarize(a.work, a))


if __name__ == "__main__":
    sys.exit(main())
