"""Demo-size speed of this checkout against a reference commit, side by side on the same machine.

Usage:
    git archive 5c03a60 | (mkdir -p /tmp/ref && tar -x -C /tmp/ref)   # or: git worktree add /tmp/ref 5c03a60
    python benchmarks/demo_speed.py --ref /tmp/ref [--rounds 3] [--iters 10]
    python benchmarks/demo_speed.py --ref /tmp/ref --methods sagan,ddad [--iters 20]   # own demo presets

Each measurement is a child process that runs one code version (PYTHONPATH = its checkout): the
demo preset (32 px, batch 16, one thread, as the demo's jobs run; with `--methods`, each method's
own demo preset, batch included, and no matrix total), random images, the trainer's
per-iteration work (learning-rate schedule, batch with the method's transform, the method's step,
the finite-loss check), 2 warm-up iterations, then `--iters` timed ones. The two versions alternate
(ABBA across rounds) and the medians are reported, in wall seconds and in CPU seconds of the child
(user + system; less sensitive to other jobs on a shared machine). A process start is timed (wall
and CPU) as a Python start that imports what a job imports (CLI, trainer, evaluator).

The demo matrix of the reference commit: 54 runs of 160 iterations (Table 2: 3 datasets x sagan,
brainomaly, ae; Table 3: three SAGAN ablations on one dataset; Table 4: six more anomaly ratios of
SAGAN, counted as full SAGAN runs), 3 seeds each; two process starts per run at the reference (a
`sagan train` and a `sagan evaluate` job), 12 in this checkout, as the synthetic configurations run
them: one per Table 2 method (a method job, `sagan run --data A B C --seed 0 1 2`) and one per other
table row (a row job, `sagan run --seed 0 1 2`). Its total is the sum
over runs of iterations x seconds per iteration, plus the process starts; evaluation, validation
and checkpoints are not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (label, method, overrides, runs in the reference demo matrix)
CONFIGS = [
    ("sagan", "sagan", {}, 27),
    ("sagan plain", "sagan", {"model.use_acm": False, "model.use_arrm": False}, 3),
    ("sagan +acm", "sagan", {"model.use_acm": True, "model.use_arrm": False}, 3),
    ("sagan +arrm", "sagan", {"model.use_acm": False, "model.use_arrm": True}, 3),
    ("brainomaly", "brainomaly", {}, 9),
    ("ae", "ae", {}, 9),
]
# process starts in the demo matrix: the reference's `sagan train` and `sagan evaluate` job per run
# (2 x 54); here a method job per Table 2 method (every dataset and seed) and a row job per other
# table row (3 ablations, 6 ratios), as the synthetic configurations run them
STARTS = {"ref": 2 * 54, "new": 3 + 3 + 6}

# Runs in the child; written against both this checkout's API and the reference commit's.
CHILD = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
import sagan.trainer as tr
from sagan.data.loading import TrainingData
try:
    import sagan.runtime as rt
    resolve_config, build_method = rt.resolve_config, rt.build_method
    if hasattr(rt, "keep_freed_memory"):
        rt.keep_freed_memory()  # as the trainer does
except ImportError:  # the reference commit
    from sagan.config import resolve_config
    build_method = tr.build_method
method, overrides, iters, own = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "own"
base = {} if own else {"train.batch_size": 16, "train.iterations": 160}  # own: the method's demo preset
cfg = resolve_config(method, 0, "demo", None, {**base, **overrides})
size, b, dev = cfg.data.image_size, cfg.train.batch_size, torch.device("cpu")
g = torch.Generator().manual_seed(0)
images = lambda n: torch.randint(0, 256, (n, size, size), generator=g, dtype=torch.uint8)
data = TrainingData(None, images(8 * b), images(8 * b), {}, images(8), np.zeros(8), [], np.arange(8))
m = build_method(cfg, dev)
m.train()
rng = torch.Generator().manual_seed(0)
try:
    batches = tr.BatchMaker(data, cfg, dev, m.transform())
except (TypeError, AttributeError):  # the reference commit: the batch maker applies FPI itself
    batches = tr.BatchMaker(data, cfg, dev)
opts = m.optimizers() if callable(m.optimizers) else m.optimizers
base = {k: [grp["lr"] for grp in o.param_groups] for k, o in opts.items()}
def step(t):
    if hasattr(tr, "set_learning_rates"):  # this checkout: the trainer applies the schedule
        f = tr.lr_factor(t, cfg.train.iterations, cfg.train.lr_decay, cfg.train.lr_decay_every)
        tr.set_learning_rates(m, base, f)
    losses = m.training_step(batches(t, rng), t, rng)
    assert bool(torch.isfinite(torch.stack([v.float() for v in losses.values()])).all())
for t in range(2):
    step(t)
w, c = time.perf_counter(), time.process_time()
for t in range(2, 2 + iters):
    step(t)
print(json.dumps({"wall": (time.perf_counter() - w) / iters, "cpu": (time.process_time() - c) / iters}))
"""
START = "import sagan.cli, sagan.trainer, sagan.evaluate"


def child(code: Path, args: list[str]) -> tuple[float, float, str]:
    """Runs a child process: its wall seconds, its CPU seconds (user + system) and its output."""
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, *args], env=env, cwd=code, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"a child process failed in {code}:\n{out.stderr}")
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, out.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", required=True, help="checkout of the reference commit")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iters", type=int, default=10, help="timed iterations per child (even: D and G steps)")
    p.add_argument("--matrix-iterations", type=int, default=160)
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    p.add_argument(
        "--methods", default=None, help="these methods at their own demo preset instead (no matrix total)"
    )
    a = p.parse_args()
    configs = [(m, m, {}, 0) for m in a.methods.split(",")] if a.methods else CONFIGS
    mode = "own" if a.methods else "matrix"
    codes = {"ref": Path(a.ref).resolve(), "new": ROOT}
    steps: dict[tuple[str, str], dict[str, list[float]]] = {}
    starts: dict[tuple[str, str], list[float]] = {}
    for r in range(a.rounds):
        order = ["ref", "new"] if r % 2 == 0 else ["new", "ref"]
        for version in order:
            wall, cpu, _ = child(codes[version], ["-c", START])
            starts.setdefault((version, "wall"), []).append(wall)
            starts.setdefault((version, "cpu"), []).append(cpu)
        for label, method, overrides, _ in configs:
            for version in order:
                args = ["-c", CHILD, method, json.dumps(overrides), str(a.iters), mode]
                _, _, out = child(codes[version], args)
                got = json.loads(out.strip().splitlines()[-1])
                for kind, value in got.items():
                    steps.setdefault((label, version), {}).setdefault(kind, []).append(value)
            print(f"round {r + 1}/{a.rounds} {label} done", file=sys.stderr, flush=True)

    med = {key: {k: statistics.median(v) for k, v in d.items()} for key, d in steps.items()}
    start = {key: statistics.median(s) for key, s in starts.items()}
    print(f"load average at the end: {os.getloadavg()}")
    print(
        "| configuration | runs | ref s/it wall | new s/it wall | ratio | ref s/it CPU | new s/it CPU | ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, _, _, runs in configs:
        ref, new = med[(label, "ref")], med[(label, "new")]
        print(
            f"| {label} | {runs or '–'} | {ref['wall']:.4f} | {new['wall']:.4f} | {ref['wall'] / new['wall']:.2f} "
            f"| {ref['cpu']:.4f} | {new['cpu']:.4f} | {ref['cpu'] / new['cpu']:.2f} |"
        )
    if a.methods:
        return
    n_runs = sum(c[3] for c in CONFIGS)
    totals = {}
    for kind in ("wall", "cpu"):
        for version in ("ref", "new"):
            train_s = sum(
                runs * a.matrix_iterations * med[(label, version)][kind] for label, _, _, runs in CONFIGS
            )
            totals[(kind, version)] = (train_s, STARTS[version] * start[(version, kind)])
    print(
        f"\nprocess start (median): ref {start[('ref', 'wall')]:.2f} s wall, {start[('ref', 'cpu')]:.2f} s CPU; "
        f"new {start[('new', 'wall')]:.2f} s wall, {start[('new', 'cpu')]:.2f} s CPU"
    )
    print(
        "| demo matrix | ref training s | ref starts s | ref total | new training s | new starts s | new total | ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind in ("wall", "cpu"):
        (rt, rs), (nt, ns) = totals[(kind, "ref")], totals[(kind, "new")]
        print(
            f"| {kind} s/it, {n_runs} runs x {a.matrix_iterations} it, starts {STARTS['ref']} vs {STARTS['new']} "
            f"| {rt:.0f} | {rs:.0f} | {rt + rs:.0f} | {nt:.0f} | {ns:.0f} | {nt + ns:.0f} | {(rt + rs) / (nt + ns):.2f} |"
        )
    if a.out:
        Path(a.out).write_text(
            json.dumps(
                {
                    "steps": {f"{k[0]}|{k[1]}": v for k, v in steps.items()},
                    "starts": {f"{k[0]}|{k[1]}": v for k, v in starts.items()},
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
