"""Small chest-like phantoms for method tests, and a one-thread fixture for tiny CPU networks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """One torch thread: tiny networks only lose from threads on a loaded 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def one_thread():
    with one_torch_thread():
        yield


def phantoms(n: int, size: int, seed: int) -> torch.Tensor:
    """(n, 1, size, size) in [-1, 1]: black background, a bright body, two darker lungs, noise."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        cx, cy = 0.5 + g.normal(0, 0.02), 0.5 + g.normal(0, 0.02)
        body = ((xx - cx) / 0.42) ** 2 + ((yy - cy) / 0.47) ** 2 < 1
        lungs = sum(
            (((xx - cx - dx) / 0.13) ** 2 + ((yy - cy + 0.05) / 0.3) ** 2 < 1) for dx in (-0.19, 0.19)
        )
        im = 8 + body * (170 + 20 * np.sin(9 * yy)) - lungs * 80 + g.normal(0, 4, (size, size))
        out.append(np.clip(im, 0, 255).round())
    return torch.tensor(np.stack(out), dtype=torch.float32)[:, None] / 127.5 - 1
