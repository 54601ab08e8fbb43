"""The critic's last conv (2x2 -> 1x1) as a convolution and as `CentralTaps`' matrix product, side by side.

Usage: python benchmarks/critic_conv.py [--threads 1] [--repeats 20]
CPU milliseconds per call (one forward + backward, and the gradient penalty's double backward: the
input gradient with its graph, then the backward of its squared norm), same weights and inputs, for
the demo critic's last conv (256 -> 512 channels at batch 16 and 32) and the full-size one (1024 ->
2048 at batch 64). benchmarks/RESULTS.md, "The critic's last conv", has the figures.
"""

from __future__ import annotations

import argparse
import time

import torch

from sagan.models.discriminator import CentralTaps


def cpu_ms(f, repeats: int) -> float:
    for _ in range(2):
        f()
    t = time.process_time()
    for _ in range(repeats):
        f()
    return (time.process_time() - t) / repeats * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print("| layer | batch | conv: forward + backward | product | conv: double backward | product |")
    print("| --- | --- | --- | --- | --- | --- |")
    for batch, c_in, c_out in ((32, 256, 512), (16, 256, 512), (64, 1024, 2048)):
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(c_in, c_out, 4, 2, 1)
        fast = CentralTaps(conv)
        x = torch.randn(batch, c_in, 2, 2, requires_grad=True)
        repeats = a.repeats if c_in < 1024 else max(2, a.repeats // 8)
        row = []
        for net in (conv, fast):
            row.append(cpu_ms(lambda net=net, x=x: net(x).sum().backward(), repeats))
        for net in (conv, fast):

            def penalty(net=net, x=x):
                (g,) = torch.autograd.grad(net(x).pow(2).sum(), x, create_graph=True)
                g.pow(2).sum().backward()

            row.append(cpu_ms(penalty, repeats))
        print(f"| {c_in} -> {c_out} | {batch} | " + " | ".join(f"{v:.1f}" for v in row) + " |")


if __name__ == "__main__":
    main()
