"""Wall-time estimate of a workflow configuration from measured speeds (config/bench.yaml's header).

Usage: python benchmarks/workflow_estimate.py config/bench.yaml [--jobs 2] [--device cpu|cuda] [--fixed S]
The run jobs come from the workflow itself (`snakemake -n -p`: each job's method, preset and `--set`
options), their budgets from the configuration they resolve to (each method's PRESETS), and the speeds
are measured here, one thread as in a workflow job:
    one run  = I * s + ceil(I / val_every) * v + v        one job = c + k * (one run)
    T        = sum over the run jobs / jobs running at once
I: the run's iterations; s: seconds per training iteration (the trainer's loop, benchmarks/train_speed.py,
per method and Table 3 variant; staged methods such as AMAE at their first stage); v: one validation
pass (the 2 x VAL_COUNT validation images, scored in batches; the last v stands for the final
evaluation); k: the runs the job runs (`sagan run --seed 0 1 2`: a row job of `seeds_in_one_job`; with
`--data A B C` as well, a method job of `datasets_in_one_job`: nine);
c: the fixed cost of a job, measured as a Python start that imports `sagan.run` and `torch._dynamo`
(or --fixed, which then stands for c + the evaluations).
On CPU the clock is CPU seconds (`--clock cpu`, the default): what an unloaded core takes, which a
machine shared with other jobs does not inflate; `--clock wall` measures wall seconds (always on CUDA).
The synth, splits, tables and figures jobs (about a minute together) are not included.
"""

from __future__ import annotations

import argparse
import math
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import takewhile
from pathlib import Path

import torch
from train_speed import bench

from sagan.config import parse_set
from sagan.data.synthetic import VAL_COUNT
from sagan.runtime import build_method, resolve_config
from sagan.scoring import score_images

REPO = Path(__file__).resolve().parents[1]


def run_jobs(configfile: Path) -> list[tuple[str, str, dict[str, str], int]]:
    """(method, preset, --set options, number of runs) of every run job of a dry run in an empty
    folder (a row job of `seeds_in_one_job: true` runs several seeds in one process, a method job of
    `datasets_in_one_job: true` several datasets' rows)."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            ["snakemake", "-s", str(REPO / "Snakefile"), "-d", tmp, "-n", "-p", "--configfile", str(configfile)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    jobs = []
    for line in done.stdout.splitlines():
        if "sagan run " in line:  # "Shell command: sagan run ... > log 2>&1"
            words = shlex.split(line[line.index("sagan run ") :].split(">", 1)[0])
            opt = {w: words[i + 1] for i, w in enumerate(words) if w in ("--method", "--preset")}
            sets = parse_set([words[i + 1] for i, w in enumerate(words) if w == "--set"])
            sets.pop("train.threads", None)
            jobs.append(
                (opt["--method"], opt["--preset"], sets, values(words, "--seed") * values(words, "--data"))
            )
    return jobs


def values(words: list[str], flag: str) -> int:
    """How many values follow `flag` in a command's words (`--seed 0 1 2`: 3)."""
    return len(list(takewhile(lambda w: not w.startswith("--"), words[words.index(flag) + 1 :])))


def validation_seconds(cfg, device: torch.device, clock: Callable[[], float], repeats: int = 3) -> float:
    """One scoring pass over 2 x VAL_COUNT images of the run's size, median of `repeats`."""
    method = build_method(cfg, device)
    size = cfg.data.image_size
    images = torch.randint(0, 256, (2 * VAL_COUNT, size, size), dtype=torch.uint8).to(device)
    times = []
    for _ in range(repeats):
        t = clock()
        score_images(method, images, cfg.eval.batch_size, cfg.seed)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(clock() - t)
    return statistics.median(times)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def start_seconds(clock: str, repeats: int = 3) -> float:
    """A job's Python start and imports (`sagan run`'s modules), median of `repeats`."""
    child_clock = children_cpu if clock == "cpu" else time.perf_counter
    times = []
    for _ in range(repeats):
        t = child_clock()
        # torch's optimisers import torch._dynamo when they are built: part of every training job's start
        subprocess.run([sys.executable, "-c", "import sagan.run, torch._dynamo"], check=True)
        times.append(child_clock() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("configfile", type=Path)
    p.add_argument("--jobs", type=int, default=2, help="run jobs at once (2 on 2 cores, one thread each)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--iters", type=int, default=4, help="timed iterations per measurement")
    p.add_argument("--fixed", type=float, help="a job's fixed seconds (default: measured)")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    a = p.parse_args()
    torch.set_num_threads(1)
    device = torch.device(a.device)
    clock_name = "wall" if device.type == "cuda" else a.clock
    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    jobs = run_jobs(a.configfile)
    start = start_seconds(clock_name) if a.fixed is None else 0.0
    speed: dict[tuple, tuple[float, float]] = {}  # (method, model/variant options) -> (s, v)
    rows: dict[str, list[float]] = {}  # method -> [runs, iterations, seconds]
    for method, preset, sets, runs in jobs:
        ar = sets.pop("data.anomaly_ratio", "0.6")
        key = (method, preset, tuple(sorted(sets.items())), ar == "0_u")
        cfg = resolve_config(method, 0, preset, None, {**sets, "data.anomaly_ratio": ar})
        if key not in speed:
            overrides = {**sets, "data.anomaly_ratio": ar}
            s = bench(method, preset, cfg.train.batch_size, a.iters, device, False, overrides, clock)
            speed[key] = (s["s_per_it"], validation_seconds(cfg, device, clock))
        s, v = speed[key]
        n_val = math.ceil(cfg.train.iterations / cfg.eval.val_every) if cfg.eval.val_every else 0
        one_run = cfg.train.iterations * s + n_val * v + (0.0 if a.fixed is not None else v)
        row = rows.setdefault(method, [0, 0, 0.0])
        row[0] += runs
        row[1] = max(row[1], cfg.train.iterations)
        row[2] += runs * one_run + (a.fixed if a.fixed is not None else start)
    print(f"{a.configfile}: {len(jobs)} run jobs ({sum(j[3] for j in jobs)} runs), {a.jobs} at once, device {a.device}, one thread a job, "
          f"{clock_name} seconds")  # fmt: skip
    print(f"fixed cost per job: {'--fixed ' if a.fixed is not None else ''}"
          f"{a.fixed if a.fixed is not None else start:.2f} s (Python start, import sagan.run and torch._dynamo) + evaluation")  # fmt: skip
    print(f"{'method':12s} {'runs':>5s} {'iterations':>10s} {'s/it':>8s} {'val pass s':>10s} {'total s':>9s}")
    for method, (n, iters, total) in rows.items():
        s, v = next(speed[k] for k in speed if k[0] == method)
        print(f"{method:12s} {n:5d} {iters:10d} {s:8.4f} {v:10.3f} {total:9.0f}")
    total = sum(r[2] for r in rows.values())
    print(f"sum {total:.0f} s of one-thread work; wall time with {a.jobs} jobs at once: "
          f"{total / a.jobs:.0f} s = {total / a.jobs / 3600:.2f} h")  # fmt: skip


if __name__ == "__main__":
    main()
