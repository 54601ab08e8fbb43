"""Seconds per iteration in each training stage of a multi-stage method (AMAE, f-AnoGAN).

Usage: python benchmarks/stage_speed.py --methods amae [--preset paper|demo] [--batch 64] [--iters 5]
       [--device cpu|cuda] [--threads 1] [--bf16]
`train_speed.py` times a run's first iterations, which belong to its first stage only. Here the
iterations are timed from the start of every stage (found from the method's `stage(step)`), on random
in-memory images of the preset's size, through the trainer's own batches and the method's own step.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sagan.data.loading import TrainingData
from sagan.runtime import build_method, resolve_config
from sagan.trainer import BatchMaker


def stage_starts(method, iterations: int) -> dict[object, int]:
    """First step of every stage of a method that names its stage with `stage(step)`."""
    starts: dict[object, int] = {}
    for t in range(iterations):
        starts.setdefault(method.stage(t), t)
    return starts


def in_memory_method(name: str, preset: str, overrides: dict, device: torch.device):
    """(config, method in train mode, the trainer's batches, generator) of a method on random in-memory
    images of the preset's size: its own training step on the trainer's own batches, no dataset."""
    cfg = resolve_config(name, 0, preset, None, overrides)
    size, batch = cfg.data.image_size, cfg.train.batch_size
    g = torch.Generator().manual_seed(0)
    images = lambda n: torch.randint(0, 256, (n, size, size), generator=g, dtype=torch.uint8).to(device)  # noqa: E731
    data = TrainingData(
        None, images(4 * batch), images(4 * batch), {}, images(8), np.zeros(8), [], np.arange(8)
    )
    method = build_method(cfg, device)
    method.train()
    batches = BatchMaker(data, cfg, device, method.transform())
    return cfg, method, batches, torch.Generator(device=device).manual_seed(0)


def bench(name: str, preset: str, batch: int, iters: int, device: torch.device, amp: bool) -> dict:
    cfg, method, batches, rng = in_memory_method(name, preset, {"train.batch_size": batch}, device)
    ctx = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    result = {}
    for stage, start in stage_starts(method, cfg.train.iterations).items():
        steps = range(start, start + 2 + iters)  # two warm-up iterations
        for t in steps:
            if t == start + 2:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            with ctx:
                method.training_step(batches(t, rng), t, rng)
        if device.type == "cuda":
            torch.cuda.synchronize()
        result[stage] = (time.perf_counter() - t0) / iters
    return {
        "iterations": cfg.train.iterations,
        "starts": stage_starts(method, cfg.train.iterations),
        **result,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="amae")
    p.add_argument("--preset", default="demo")
    p.add_argument("--batch", type=int, default=0, help="0: the preset's batch size")
    p.add_argument("--iters", type=int, default=5, help="timed iterations per stage")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--bf16", action="store_true")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"device={a.device} threads={torch.get_num_threads()} torch={torch.__version__} bf16={a.bf16}")
    for name in a.methods.split(","):
        batch = a.batch or resolve_config(name, 0, a.preset).train.batch_size
        r = bench(name, a.preset, batch, a.iters, torch.device(a.device), a.bf16)
        stages = " ".join(f"stage {s} (from it. {r['starts'][s]}): {r[s]:.4f} s/it" for s in r["starts"])
        print(f"{name} preset={a.preset} batch={batch} iterations={r['iterations']} {stages}")


if __name__ == "__main__":
    main()
