"""Per-run process overhead: what a Python + torch start costs, and what one `sagan run` job per run
(training and evaluation in one process) saves against a `sagan train` and a `sagan evaluate` job.

Usage: python benchmarks/process_overhead.py [--data PREPARED] [--method sagan] [--repeats 3]
Without --data, a synthetic set (synth-lag, size small) is written to a temporary folder. Each run
uses the `ci` preset (6 iterations), so that the figures are the fixed costs of a job, not training.
Medians over the repeats, in seconds of wall time; on a shared machine they are upper bounds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def sagan(*args: str) -> list[str]:
    return [sys.executable, "-m", "sagan.cli", *args]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="prepared dataset (default: a fresh synth-lag)")
    p.add_argument("--method", default="sagan")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="overhead-"))
    data = args.data or str(tmp / "synth-lag")
    if args.data is None:
        subprocess.run(sagan("synth", "synth-lag", "--out", data), check=True, stdout=subprocess.DEVNULL)
    train_args = ["--data", data, "--method", args.method, "--preset", "ci", "--set", "train.threads=1"]

    starts = {
        "python (no imports)": [sys.executable, "-c", "pass"],
        "python + import torch": [sys.executable, "-c", "import torch"],
        "python + import sagan.trainer": [sys.executable, "-c", "import sagan.trainer"],
        "python + import sagan.evaluate": [sys.executable, "-c", "import sagan.evaluate"],
        "python + import sagan.run": [sys.executable, "-c", "import sagan.run"],
    }
    times: dict[str, list[float]] = {name: [] for name in starts}
    times.update(
        {"sagan train": [], "sagan evaluate": [], "sagan train + sagan evaluate": [], "sagan run": []}
    )
    for k in range(args.repeats):
        for name, cmd in starts.items():
            times[name].append(wall(cmd))
        two, one = tmp / f"two{k}", tmp / f"one{k}"
        t_train = wall(sagan("train", *train_args, "--out", str(two)))
        t_eval = wall(sagan("evaluate", str(two)))
        times["sagan train"].append(t_train)
        times["sagan evaluate"].append(t_eval)
        times["sagan train + sagan evaluate"].append(t_train + t_eval)
        times["sagan run"].append(wall(sagan("run", *train_args, "--out", str(one))))
    print(f"method {args.method}, preset ci (6 iterations), {args.repeats} repeats, median wall seconds")
    print(f"{'':34s} {'median':>8s}  all")
    for name, values in times.items():
        shown = " ".join(f"{v:.2f}" for v in values)
        print(f"{name:34s} {statistics.median(values):8.2f}  {shown}")
    saved = statistics.median(times["sagan train + sagan evaluate"]) - statistics.median(times["sagan run"])
    print(f"saved per run by one process: {saved:.2f} s")


if __name__ == "__main__":
    main()
