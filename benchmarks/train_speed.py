"""Training speed and memory: seconds per iteration of every method at a given batch size.

Usage: python benchmarks/train_speed.py [--preset paper|demo] [--batch 64] [--iters 3] [--device cpu|cuda]
       [--compile]
Uses random in-memory images of the preset's size (speed does not depend on the pixel values); the
timed loop is the trainer's own (BatchMaker slices device tensors and applies the method's transform
on the device, method step).
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable

import torch
from stage_speed import in_memory_method

from sagan.methods import get_method, method_names
from sagan.runtime import compile_networks


def bench(
    method: str,
    preset: str,
    batch: int,
    iters: int,
    device: torch.device,
    amp: bool,
    overrides: dict | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict:
    cfg, m, batches, rng = in_memory_method(
        method, preset, {**(overrides or {}), "train.batch_size": batch}, device
    )
    if cfg.train.compile:
        compile_networks(m)  # compiled in the warm-up (the critic's and the generator's step)
    size = cfg.data.image_size
    ctx = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    n_critic = getattr(cfg.model, "n_critic", 1)
    warm = n_critic  # one full D+G cycle before timing
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for t in range(warm + iters):
        if t == warm:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = clock()
        with ctx:
            m.training_step(batches(t, rng), t, rng)
    if device.type == "cuda":
        torch.cuda.synchronize()
    sec = (clock() - t0) / iters
    out = {
        "method": method,
        "preset": preset,
        "image_size": size,
        "batch": batch,
        "s_per_it": sec,
        "params": {name: sum(p.numel() for p in child.parameters()) for name, child in m.named_children()},
    }
    if device.type == "cuda":
        out["peak_gpu_GiB"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="demo")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument(
        "--iters", type=int, default=4, help="timed iterations (an even number covers D and G steps)"
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--bf16", action="store_true")
    p.add_argument(
        "--compile", action="store_true", help="train.compile for the methods that have it (the others eager)"
    )
    p.add_argument("--methods", default=",".join(method_names()))
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(
        f"device={a.device} threads={torch.get_num_threads()} torch={torch.__version__} bf16={a.bf16} compile={a.compile}"
    )
    for method in a.methods.split(","):
        sets = {"train.compile": True} if a.compile and get_method(method).compiled else {}
        r = bench(method, a.preset, a.batch, a.iters, torch.device(a.device), a.bf16, sets)
        extra = f" peak_gpu={r['peak_gpu_GiB']:.2f}GiB" if "peak_gpu_GiB" in r else ""
        print(
            f"{r['method']:11s} preset={r['preset']:5s} {r['image_size']}px batch={r['batch']:3d} "
            f"{r['s_per_it']:.4f} s/it  params {', '.join(f'{k}={v:,}' for k, v in r['params'].items())}{extra}"
        )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
