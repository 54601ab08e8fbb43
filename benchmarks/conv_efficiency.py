"""Each convolution of a restoration GAN's generator at its real input shape, timed alone: forward, backward
(input and weight gradients) and GFLOP/s, to see how much of a training step is convolution work and
which layers run far below the machine's best.

Usage: python benchmarks/conv_efficiency.py [--method sagan] [--preset paper] [--batch 64] [--threads 2]
The shapes are those of one generator call on `--batch` images (SAGAN's ACM makes that 4x as many
patches); a training step's generator step makes one such call per part (x_n, x_p, x_u).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from sagan.methods import get_method, method_names
from sagan.runtime import build_method, resolve_config


def best_of(fn, n: int = 3) -> float:
    fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def conv_flops(m: nn.Module, shape: tuple, out: torch.Tensor) -> int:
    """Multiply-adds x 2 of the forward pass (a transposed conv: per input pixel)."""
    k = m.kernel_size[0] * m.kernel_size[1]
    if isinstance(m, nn.ConvTranspose2d):
        return 2 * shape[0] * shape[2] * shape[3] * m.in_channels * m.out_channels * k // m.groups
    return 2 * out.numel() * m.in_channels * k // m.groups


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    gans = [name for name in method_names() if "G" in get_method(name).compiled]  # SAGAN, Brainomaly, ...
    p.add_argument("--method", default="sagan", choices=gans)
    p.add_argument("--preset", default="paper")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg = resolve_config(a.method, 0, a.preset)
    method = build_method(cfg, torch.device("cpu"))
    shapes: dict[str, tuple[nn.Module, tuple]] = {}

    def record(name: str):
        def hook(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            shapes.setdefault(name, (m, tuple(inputs[0].shape)))

        return hook

    for name, m in method.G.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.register_forward_hook(record(name))
    size = cfg.data.image_size
    with torch.no_grad():
        method.restore(torch.zeros(a.batch, 1, size, size), torch.Generator().manual_seed(0), train=True)

    rows, total_f, total_b = [], 0.0, 0.0
    for name, (m, shape) in shapes.items():
        x = torch.randn(shape, requires_grad=True)
        with torch.no_grad():
            out = m(x)
        flops, grad = conv_flops(m, shape, out), torch.randn_like(out)

        def forward_backward(m=m, x=x, grad=grad):
            m.zero_grad()
            x.grad = None
            m(x).backward(grad)

        t_f = best_of(lambda m=m, x=x: m(x).detach())
        t_b = max(best_of(forward_backward) - t_f, 1e-9)  # the backward does twice the forward's work
        total_f, total_b = total_f + t_f, total_b + t_b
        rows.append(
            (t_f + t_b, name, type(m).__name__, shape, m.out_channels, m.kernel_size[0], t_f, t_b, flops)
        )
    print(f"{a.method} preset={a.preset} batch={a.batch} threads={torch.get_num_threads()}")
    for _, name, kind, shape, c_out, k, t_f, t_b, flops in sorted(rows, reverse=True):
        print(
            f"{name:26s} {kind:15s} in={str(shape):20s} out_ch={c_out:4d} k={k} "
            f"fwd {t_f * 1e3:7.1f} ms {flops / t_f / 1e9:6.1f} GF/s  bwd {t_b * 1e3:7.1f} ms "
            f"{2 * flops / t_b / 1e9:6.1f} GF/s"
        )
    print(f"all convolutions of one generator call: forward {total_f:.2f} s, backward {total_b:.2f} s")


if __name__ == "__main__":
    main()
