"""Would training a row's three seeds as one grouped network pay? Every convolution of one training step,
as one network's call, as three networks' calls, and as one grouped call over the three, side by side.

Usage: python benchmarks/seed_batching.py [--methods sagan,brainomaly,fanogan] [--threads 1] [--repeats 10]
A row job trains its three seeds one after the other. Stacking the three networks into one (each layer
a grouped convolution over the three seeds' weights, as sagan/models/ensemble.py does for DDAD's K
AEs, which share one batch) saves per-call overheads only if a call's cost is mostly fixed per call.
This records every Conv2d / ConvTranspose2d call of one demo-preset training step (forward hooks on
the real networks, with the real shapes), then times each call's forward + backward (input and
weight gradients) in CPU ms, side by side in one process:
  one     one network's call;
  3 x     three networks' calls one after the other (three weights, three inputs);
  grouped the three as one grouped call (inputs side by side in channels, weights stacked, groups x 3);
  batch   one weight on the three inputs stacked in the batch (not possible for three seeds: their
          weights differ; it shows how much of a call's cost is the weight's rather than the batch's).
Summed over the step's calls (each weighted by how often the step makes it). The critic's last layer
(`CentralTaps`, a matrix product, not a conv) and the gradient penalty's double backward are not in
these sums. benchmarks/RESULTS.md, "Three seeds as one network", has the figures.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import torch
import torch.nn.functional as F
from stage_speed import in_memory_method
from torch import nn


def conv_calls(method: str) -> Counter:
    """(module, input shape) -> calls per training step, over one full D + G cycle of the demo preset."""
    cfg, m, batches, rng = in_memory_method(method, "demo", {}, torch.device("cpu"))
    calls: Counter = Counter()
    hooks = [
        mod.register_forward_hook(lambda mod, args, out: calls.update([(mod, tuple(args[0].shape))]))
        for mod in m.modules()
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    cycle = getattr(cfg.model, "n_critic", 1)
    for t in range(cycle):
        m.training_step(batches(t, rng), t, rng)
    for h in hooks:
        h.remove()
    return Counter({k: v / cycle for k, v in calls.items()})


def call(mod: nn.Module, x: torch.Tensor, w: torch.Tensor, groups: int) -> torch.Tensor:
    if isinstance(mod, nn.ConvTranspose2d):
        return F.conv_transpose2d(x, w, None, mod.stride, mod.padding, mod.output_padding, groups)
    return F.conv2d(x, w, None, mod.stride, mod.padding, mod.dilation, groups)


def cpu_ms(f, repeats: int) -> float:
    f()
    t = time.process_time()
    for _ in range(repeats):
        f()
    return (time.process_time() - t) / repeats * 1000


def variants(mod: nn.Module, shape: tuple, repeats: int) -> dict[str, float]:
    """CPU ms of forward + backward of one call in each variant (see the module docstring)."""
    w0 = mod.weight.detach()
    g = mod.groups
    ws = [(w0 + 0.01 * k).requires_grad_() for k in range(3)]
    xs = [torch.randn(shape, requires_grad=True) for _ in range(3)]
    wg = torch.cat([w.detach() for w in ws]).requires_grad_()  # groups stack along dim 0 in both layouts
    xg = torch.cat([x.detach() for x in xs], dim=1).requires_grad_()
    xb = torch.cat([x.detach() for x in xs], dim=0).requires_grad_()
    with torch.no_grad():  # the grouped call is the three networks' calls, not some other work
        separate = torch.cat([call(mod, x, w, g) for x, w in zip(xs, ws)], dim=1)
        torch.testing.assert_close(call(mod, xg, wg, 3 * g), separate, rtol=1e-4, atol=1e-4)

    def one():
        call(mod, xs[0], ws[0], g).sum().backward()

    def three():
        for x, w in zip(xs, ws):
            call(mod, x, w, g).sum().backward()

    def grouped():
        call(mod, xg, wg, 3 * g).sum().backward()

    def batch():
        call(mod, xb, ws[0], g).sum().backward()

    return {
        name: cpu_ms(f, repeats)
        for name, f in (("one", one), ("3 x", three), ("grouped", grouped), ("batch", batch))
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="sagan,brainomaly,fanogan", type=lambda s: s.split(","))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=10)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"threads={torch.get_num_threads()} torch={torch.__version__}; CPU ms per training step")
    print("| method | conv calls / step | one | 3 x | grouped | grouped / 3 x | batch (one weight) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for method in a.methods:
        torch.manual_seed(0)
        calls = conv_calls(method)
        total = Counter()
        for (mod, shape), n in calls.items():
            for name, ms in variants(mod, shape, a.repeats).items():
                total[name] += n * ms
        print(
            f"| {method} | {sum(calls.values()):.0f} | {total['one']:.1f} | {total['3 x']:.1f} | "
            f"{total['grouped']:.1f} | {total['grouped'] / total['3 x']:.2f} | {total['batch']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
