"""Per-run process overhead: what a Python + torch start costs, and what one `sagan run` job per run
(training and evaluation in one process) saves against a `sagan train` and a `sagan evaluate` job.

Usage: python benchmarks/process_overhead.py [--data PREPARED] [--method sagan] [--repeats 3]
Without --data, a synthetic set (synth-lag, size small) is written to a temporary folder. Each run
uses the `ci` preset (6 iterations), so that the figures are the fixed costs of a job, not training.
Medians over the repeats: wall seconds (on a shared machine, upper bounds) and CPU seconds (user +
system of the process, which a loaded machine changes much less).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of a command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return time.perf_counter() - t, cpu


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
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in starts}
    times.update(
        {"sagan train": [], "sagan evaluate": [], "sagan train + sagan evaluate": [], "sagan run": []}
    )
    for k in range(args.repeats):
        for name, cmd in starts.items():
            times[name].append(timed(cmd))
        two, one = tmp / f"two{k}", tmp / f"one{k}"
        t_train = timed(sagan("train", *train_args, "--out", str(two)))
        t_eval = timed(sagan("evaluate", str(two)))
        times["sagan train"].append(t_train)
        times["sagan evaluate"].append(t_eval)
        times["sagan train + sagan evaluate"].append((t_train[0] + t_eval[0], t_train[1] + t_eval[1]))
        times["sagan run"].append(timed(sagan("run", *train_args, "--out", str(one))))
    print(f"method {args.method}, preset ci (6 iterations), {args.repeats} repeats, medians in seconds")
    print(f"{'':34s} {'wall':>8s} {'CPU':>8s}")
    for name, values in times.items():
        wall, cpu = (statistics.median(v) for v in zip(*values))
        print(f"{name:34s} {wall:8.2f} {cpu:8.2f}")
    for kind, i in (("wall", 0), ("CPU", 1)):
        two = statistics.median(v[i] for v in times["sagan train + sagan evaluate"])
        saved = two - statistics.median(v[i] for v in times["sagan run"])
        print(f"saved per run by one process ({kind}): {saved:.2f} s of {two:.2f} s")


if __name__ == "__main__":
    main()
