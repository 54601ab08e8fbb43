"""Each method's demo training step with fused Adam (one kernel per step, what the methods use) and with
PyTorch's default multi-tensor Adam, side by side in one process on the same batches.

Usage: python benchmarks/fused_adam.py [--methods ae,memae,...] [--reps 6] [--iters 6] [--threads 1]
Prints CPU seconds per iteration (median over `--reps` alternating blocks of `--iters` iterations) and
the ratio. The two give the same update up to float rounding. Random in-memory images of the demo
preset's size; multi-stage methods are timed in their first stage.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from stage_speed import in_memory_method

from sagan.methods import method_names


def set_fused(method, fused: bool) -> None:
    for opt in method.optimizers.values():
        if isinstance(opt, (torch.optim.Adam, torch.optim.AdamW)):
            for group in opt.param_groups:
                group["fused"], group["foreach"] = (True, False) if fused else (None, None)


def bench(name: str, reps: int, iters: int) -> tuple[float, float]:
    _, method, batches, rng = in_memory_method(name, "demo", {}, torch.device("cpu"))
    t = 0
    for _ in range(4):  # warm-up
        method.training_step(batches(t, rng), t, rng)
        t += 1
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(reps):
        for fused in (True, False):
            set_fused(method, fused)
            t0 = time.process_time()
            for _ in range(iters):
                method.training_step(batches(t, rng), t, rng)
                t += 1
            times[fused].append((time.process_time() - t0) / iters)
    return float(np.median(times[True])), float(np.median(times[False]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default=",".join(method_names()))
    p.add_argument("--reps", type=int, default=6)
    p.add_argument("--iters", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print("| method | fused Adam: CPU s / it | default Adam: CPU s / it | default / fused |")
    print("| --- | --- | --- | --- |")
    for name in a.methods.split(","):
        fused, default = bench(name, a.reps, a.iters)
        print(f"| {name} | {fused:.4f} | {default:.4f} | {default / fused:.2f} |", flush=True)


if __name__ == "__main__":
    main()
