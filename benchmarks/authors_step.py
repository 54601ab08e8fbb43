"""SAGAN's full-size training step: the project's against the authors' procedure, same network, same data.

Usage: python benchmarks/authors_step.py [--threads 2] [--iters 2] [--rounds 1]
       python benchmarks/authors_step.py --variant project --device cuda --amp bf16 --compile  (one child)

Both variants train `model.network=authors` (the authors' generator, tests/test_authors_network.py)
at the paper preset (64 px, batch 64) from the same seeded weights on the same random images
(normals, unlabelled, FPI pseudo anomalies). "authors" reproduces the authors' procedure as
design/method.md and issue 12 describe it (StarGAN's training loop), written here from that
description: the critic's fake images come from a generator forward that keeps its graph (detached
only where the critic reads them), the penalty on x_hat = a*real.data + (1-a)*fake.data with the
gradient's norm as sqrt(sum(g^2)), the critic's parameters still requiring gradients during the
generator step, three separate generator passes (x_n, x_p, x_u) in the generator step, plain
(for-loop) Adam, the default allocator and the critic's last conv as a convolution (the project computes
it from the kernel's central taps: `CentralTaps`). "project" is the project's own step
(`RestorationGAN.training_step`) with its optimisers and `keep_freed_memory`, as the trainer runs it;
its generator step part by part at the paper preset (`model.g_pass`; `--g-pass joint`: one pass).

Each variant runs in its own child process (so that its peak memory is its own: ru_maxrss on CPU,
torch.cuda.max_memory_allocated on a GPU); the parent alternates them (ABBA over rounds) and reports
medians. A child builds the method, runs `--warmup` iterations, then times `--iters` iterations
(iteration 1 of a run is a critic + generator step, iteration 2 a critic step: an even count covers
both kinds) and prints one JSON line.
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

import numpy as np
import torch

from sagan.data.loading import TrainingData
from sagan.losses import identity_loss, restoration_loss, wgan_d_loss, wgan_g_loss
from sagan.methods.base import Batch
from sagan.methods.gan import G_PASSES, RestorationGAN
from sagan.models.discriminator import CentralTaps
from sagan.runtime import build_method, compile_networks, keep_freed_memory, resolve_config
from sagan.trainer import BatchMaker

VARIANTS = ("project", "authors")


def setup(
    preset: str, batch: int, device: torch.device, seed: int = 0, g_pass: str = ""
) -> tuple[RestorationGAN, BatchMaker]:
    """The authors' network at the preset, seeded weights, a batch maker over seeded random images
    (g_pass: the project's generator step, `model.g_pass`; "" = the preset's)."""
    overrides = {"model.network": "authors", "train.batch_size": batch}
    cfg = resolve_config(
        "sagan", seed, preset, None, overrides | ({"model.g_pass": g_pass} if g_pass else {})
    )
    size = cfg.data.image_size
    g = torch.Generator().manual_seed(seed)
    images = lambda n: torch.randint(0, 256, (n, size, size), generator=g, dtype=torch.uint8).to(device)  # noqa: E731
    data = TrainingData(
        None, images(4 * batch), images(4 * batch), {}, images(8), np.zeros(8), [], np.arange(8)
    )
    method = build_method(cfg, device)
    method.train()
    return method, BatchMaker(data, cfg, device, method.transform())


def authors_gradient_penalty(out: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Their form: the gradient's L2 norm as sqrt(sum of squares) per sample, graph retained."""
    (g,) = torch.autograd.grad(
        out, x_hat, torch.ones(out.size(), device=out.device), retain_graph=True, create_graph=True
    )
    norm = torch.sqrt(torch.sum(g.view(g.size(0), -1) ** 2, dim=1))
    return torch.mean((norm - 1) ** 2)


def authors_step(m: RestorationGAN, opts: dict, batch: Batch, step: int, rng: torch.Generator) -> dict:
    """One iteration as the authors' training loop does it (see the module docstring)."""
    cfg, x_n, x_u, x_p = m.cfg, batch.normal, batch.unlabeled, batch.pseudo
    fake = m.restore(x_u, rng, train=True)  # graph kept: freed only when `fake` goes
    d_adv = wgan_d_loss(m.D(x_n), m.D(fake.detach()))  # two critic passes
    a = torch.rand(x_n.size(0), 1, 1, 1, generator=rng, device=x_n.device)
    x_hat = (a * x_n.data + (1 - a) * fake.data).requires_grad_(True)
    gp = authors_gradient_penalty(m.D(x_hat), x_hat)
    d_loss = d_adv + cfg.lambda_gp * gp
    for o in opts.values():
        o.zero_grad()
    d_loss.backward()
    opts["d"].step()
    out = {"d_loss": d_loss.detach()}
    if (step + 1) % cfg.n_critic == 0:
        x_u_r = m.restore(x_u, rng, train=True)  # three separate passes
        x_n_r = m.restore(x_n, rng, train=True)
        x_p_r = m.restore(x_p, rng, train=True)
        adv = wgan_g_loss(m.D(x_u_r))  # the critic still requires gradients
        g_loss = (
            adv + cfg.lambda_id * identity_loss(x_n_r, x_n) + cfg.lambda_rec * restoration_loss(x_p_r, x_n)
        )
        for o in opts.values():
            o.zero_grad()
        g_loss.backward()
        opts["g"].step()
        out["g_loss"] = g_loss.detach()
    return out


def run_child(a: argparse.Namespace) -> dict:
    device = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.variant == "project":
        keep_freed_memory()  # as the trainer does
    m, batches = setup(a.preset, a.batch, device, a.seed, a.g_pass)
    if a.compile:  # `train.compile`: the generator (the critic's penalty needs a double backward)
        compile_networks(m, a.compile_backend)
    if a.variant == "authors":
        for i, layer in enumerate(m.D.main):
            if isinstance(layer, CentralTaps):
                m.D.main[i] = layer.as_conv()  # their critic: every layer a full 4x4 conv (same map)
        c = m.cfg
        opts = {
            "g": torch.optim.Adam(m.G.parameters(), c.lr_g, (c.beta1, c.beta2)),
            "d": torch.optim.Adam(m.D.parameters(), c.lr_d, (c.beta1, c.beta2)),
        }
        step = lambda t, rng: authors_step(m, opts, batches(t, rng), t, rng)  # noqa: E731
    else:
        step = lambda t, rng: m.training_step(batches(t, rng), t, rng)  # noqa: E731
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.amp == "bf16")
    rng = torch.Generator(device=device).manual_seed(0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times, cpu = [], []
    for t in range(a.warmup + a.iters):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        with amp:
            losses = step(t, rng)
        assert bool(torch.isfinite(torch.stack([v.float() for v in losses.values()])).all())
        sync()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)  # all threads: steadier than wall time on a shared machine
    out = {
        "label": a.label or a.variant,
        "variant": a.variant,
        "seed": a.seed,
        "device": device.type,
        "preset": a.preset,
        "batch": a.batch,
        "amp": a.amp,
        "compile": a.compile,
        "g_pass": m.cfg.g_pass if a.variant == "project" else "authors (one backward of three passes)",
        "threads": torch.get_num_threads(),
        "s_per_it": statistics.mean(times[a.warmup :]),
        "iteration_s": times,
        "cpu_s_per_it": statistics.mean(cpu[a.warmup :]),
        "peak_rss_GiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }
    if device.type == "cuda":
        out["peak_gpu_GiB"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", choices=VARIANTS, help="run one variant in this process and print JSON")
    p.add_argument("--preset", default="paper", help="paper = full size (64 px); demo = a quick check")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1, help="parent: children per variant, alternated")
    p.add_argument("--amp", choices=("none", "bf16"), default="none")
    p.add_argument("--compile", action="store_true", help="compile the generator (`train.compile`)")
    p.add_argument(
        "--compile-backend", default="inductor", help="aot_eager: traces without compiling (quick)"
    )
    p.add_argument("--seed", type=int, default=0, help="weights and images")
    p.add_argument("--g-pass", default="", choices=("", *G_PASSES), help="the project's generator step")
    p.add_argument("--label", default="", help="child: a name for the JSON line")
    a = p.parse_args()
    if a.variant:
        print(json.dumps(run_child(a)), flush=True)
        return
    child_args = [
        f"--{k.replace('_', '-')}={v}"
        for k, v in vars(a).items()
        if k in ("preset", "batch", "device", "threads", "warmup", "iters", "amp", "g_pass")
    ]
    results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for r in range(a.rounds):
        for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
            cmd = [
                sys.executable,
                __file__,
                "--variant",
                variant,
                *child_args,
                *(["--compile"] if a.compile else []),
            ]
            out = subprocess.run(
                cmd,
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            )
            results[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{variant}: {results[variant][-1]}", file=sys.stderr, flush=True)
    keys = ("s_per_it", "cpu_s_per_it", "peak_rss_GiB")
    med = {v: {k: statistics.median(r[k] for r in rs) for k in keys} for v, rs in results.items()}
    print(f"load average {os.getloadavg()}, {a.preset} preset, batch {a.batch}, {a.threads} threads")
    print("| variant | s / iteration (wall) | CPU s / iteration | peak RSS GiB |")
    print("| --- | --- | --- | --- |")
    for v in VARIANTS:
        print(
            f"| {v} | {med[v]['s_per_it']:.2f} | {med[v]['cpu_s_per_it']:.2f} | {med[v]['peak_rss_GiB']:.2f} |"
        )
    pa, au = med["project"], med["authors"]
    print(
        f"speed: the project's step is {au['s_per_it'] / pa['s_per_it']:.2f}x the authors' (wall), "
        f"{au['cpu_s_per_it'] / pa['cpu_s_per_it']:.2f}x (CPU); peak memory {pa['peak_rss_GiB'] / au['peak_rss_GiB']:.2f}x"
    )


if __name__ == "__main__":
    main()
