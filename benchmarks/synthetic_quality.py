"""Detection quality on the synthetic sets: trains every method on each synthetic dataset with a
stated small budget (through the package CLI, as the workflow does) and prints AUC/AP and wall time.

Usage: python benchmarks/synthetic_quality.py [--iterations 600] [--preset demo] [--seeds 0]
       [--datasets synth-rsna,synth-vindr,synth-lag] [--methods sagan,brainomaly] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from sagan.cli import main as sagan
from sagan.methods import method_names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--preset", default="demo")
    p.add_argument("--seeds", default="0")
    p.add_argument("--datasets", default="synth-rsna,synth-vindr,synth-lag")
    p.add_argument("--methods", default=",".join(method_names()))
    p.add_argument("--size", default="small", help="synthetic dataset size")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="extra --set for training")
    p.add_argument("--work", default=None, help="folder for data and runs (default: a temporary one)")
    a = p.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="sagan-bench-"))
    print(f"budget: preset={a.preset} iterations={a.iterations} extra={a.overrides} work={work}")
    print(f"{'dataset':12s} {'method':11s} {'seed':>4s} {'AUC':>7s} {'AP':>7s} {'train+eval s':>12s}")
    for ds in a.datasets.split(","):
        data = work / "data" / ds
        if not (data / "images.npy").is_file():
            assert sagan(["synth", ds, "--out", str(data), "--size", a.size]) == 0
        for method in a.methods.split(","):
            for seed in a.seeds.split(","):
                run = work / "runs" / ds / method / f"seed{seed}"
                sets = [f"train.iterations={a.iterations}", *a.overrides]
                argv = ["train", "--data", str(data), "--method", method, "--seed", seed, "--out", str(run)]
                argv += ["--preset", a.preset] + [x for s in sets for x in ("--set", s)]
                t0 = time.perf_counter()
                assert sagan(argv) == 0 and sagan(["evaluate", str(run)]) == 0
                m = json.loads((run / "metrics.json").read_text())
                print(
                    f"{ds:12s} {method:11s} {seed:>4s} {m['auc']:7.4f} {m['ap']:7.4f} {time.perf_counter() - t0:12.1f}"
                )


if __name__ == "__main__":
    main()
