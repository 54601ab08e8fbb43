"""Detection quality on the synthetic sets: AUC/AP and wall time of every method.

Two modes:
- train: trains every method on each synthetic dataset through the package CLI (as the workflow does)
  at each method's own budget of the preset (`train.iterations` in its PRESETS) or at `--iterations`,
  and prints AUC/AP and the wall time of each run.
- `--results DIR`: reports a finished workflow experiment instead (the demo: `results/demo`), without
  training: per method and synthetic set the test AUC/AP (mean ± std over seeds, from its Table 2) and
  the validation curve's state at the end of the budget, and per method the job wall of its run jobs
  (Snakemake's benchmark files, `DIR/benchmarks/run/`). Their `cpu_time` is not reported: Snakemake
  samples a job's CPU seconds (every 0.5 s for its first 15 s, then every 30 s; snakemake/benchmark.py)
  and keeps the last sample; in the demo of cbc5249 every job's was about 15 s, for jobs of 24 to 200 s
  of wall alike (why the samples after the first 15 s did not count was not found).

Usage: python benchmarks/synthetic_quality.py [--iterations N] [--preset demo] [--seeds 0]
       [--datasets synth-rsna,synth-vindr,synth-lag] [--methods sagan,brainomaly] [--work DIR]
       python benchmarks/synthetic_quality.py --results results/demo
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from sagan.cli import main as sagan
from sagan.methods import method_names
from sagan.report.curves import curve_text
from sagan.report.runs import dataset_sort_key
from sagan.report.tables import budget_text, build_tables


def job_times(results: Path) -> pd.DataFrame:
    """Job wall seconds of each run job: DIR/benchmarks/run/<dataset>/<method>/...tsv for a row or run
    job, DIR/benchmarks/run/<method>.tsv for a method job (every dataset; `datasets_in_one_job`)."""
    rows = []
    for path in sorted((results / "benchmarks" / "run").glob("**/*.tsv")):
        parts = path.relative_to(results / "benchmarks" / "run").parts
        dataset, method = ("(every dataset)", path.stem) if len(parts) == 1 else parts[:2]
        bench = pd.read_csv(path, sep="\t")
        rows.append({"dataset": dataset, "method": method, "wall": bench["s"].sum()})
    return pd.DataFrame(rows, columns=["dataset", "method", "wall"])


def report(results: Path) -> str:
    t2 = build_tables(results)["table2"]
    t2 = t2[t2["dataset"].str.startswith("synth-")]
    datasets = sorted(set(t2["dataset"]), key=dataset_sort_key)
    times = job_times(results).groupby("method")["wall"].sum()
    head = ["method", "it. (bench)"] + [f"{d} AUC / AP (val. curve)" for d in datasets] + ["job wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for method, part in t2.groupby("method", sort=False):
        cells = [method, budget_text(part)]
        for d in datasets:
            hit = part[part["dataset"] == d]
            r = hit.iloc[0] if len(hit) else None
            cells.append(
                "–"
                if r is None
                else f"{r['auc_mean']:.1f} ± {r['auc_std']:.1f} / {r['ap_mean']:.1f} ({curve_text(r)})"
            )
        if method in times.index:
            cells.append(f"{times[method]:.0f}")
        else:  # an extra score (ddad-intra): a row of its method's runs, which have no jobs of their own
            cells.append("(the same runs)")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"run jobs in all: {times.sum():.0f} s of job wall"]
    return "\n".join(lines)


def train(a: argparse.Namespace) -> None:
    work = Path(a.work or tempfile.mkdtemp(prefix="sagan-bench-"))
    budget = f"iterations={a.iterations}" if a.iterations else "each method's own budget"
    print(f"budget: preset={a.preset} {budget} extra={a.overrides} work={work}")
    print(f"{'dataset':12s} {'method':11s} {'seed':>4s} {'AUC':>7s} {'AP':>7s} {'train+eval s':>12s}")
    for ds in a.datasets.split(","):
        data = work / "data" / ds
        if not (data / "images.npy").is_file():
            assert sagan(["synth", ds, "--out", str(data), "--size", a.size]) == 0
        for method in a.methods.split(","):
            for seed in a.seeds.split(","):
                run = work / "runs" / ds / method / f"seed{seed}"
                sets = ([f"train.iterations={a.iterations}"] if a.iterations else []) + a.overrides
                argv = ["train", "--data", str(data), "--method", method, "--seed", seed, "--out", str(run)]
                argv += ["--preset", a.preset] + [x for s in sets for x in ("--set", s)]
                t0 = time.perf_counter()
                assert sagan(argv) == 0 and sagan(["evaluate", str(run)]) == 0
                m = json.loads((run / "metrics.json").read_text())
                print(
                    f"{ds:12s} {method:11s} {seed:>4s} {m['auc']:7.4f} {m['ap']:7.4f} {time.perf_counter() - t0:12.1f}"
                )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=None, help="report this finished experiment, no training")
    p.add_argument("--iterations", type=int, default=None, help="default: each method's preset budget")
    p.add_argument("--preset", default="demo")
    p.add_argument("--seeds", default="0")
    p.add_argument("--datasets", default="synth-rsna,synth-vindr,synth-lag")
    p.add_argument("--methods", default=",".join(method_names()))
    p.add_argument("--size", default="small", help="synthetic dataset size")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="extra --set for training")
    p.add_argument("--work", default=None, help="folder for data and runs (default: a temporary one)")
    a = p.parse_args()
    if a.results is not None:
        print(report(a.results))
    else:
        train(a)


if __name__ == "__main__":
    main()
