"""Shared fixtures: a tiny prepared dataset (written with the real format writer) for fast unit tests."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sagan.data.prepared import split_entries, write_prepared
from sagan.data.synthetic import make_synthetic


def make_tiny_dataset(
    root, size: int = 32, n_train: int = 12, n_unl: int = 8, n_test: int = 6, seed: int = 0, n_val: int = 0
):
    """Smooth 'anatomy' images; abnormal ones carry a bright square (box recorded); with `n_val`, a
    labelled validation split of n_val normal and n_val abnormal images (as the synthetic sets have)."""
    rng = np.random.default_rng(seed)
    names = lambda prefix, n: [f"{prefix}_{i:03d}.png" for i in range(n)]  # noqa: E731
    split = {
        "train": {
            "0": names("tr", n_train),
            "unlabeled": {"0": names("un0", n_unl), "1": names("un1", n_unl)},
        },
        "test": {"0": names("te0", n_test), "1": names("te1", n_test)},
    }
    if n_val:
        split["val"] = {"0": names("va0", n_val), "1": names("va1", n_val)}
    yy, xx = np.mgrid[0:size, 0:size] / size
    rows, images = [], []
    for name, label, pool in split_entries(split):
        im = 100 + 60 * np.sin(6 * xx + rng.uniform(0, 0.3)) * np.cos(4 * yy) + rng.normal(0, 4, (size, size))
        boxes = []
        if label:
            x0, y0 = rng.integers(4, size - 12, 2)
            im[y0 : y0 + 8, x0 : x0 + 8] += 90
            boxes = [[x0 / size, y0 / size, (x0 + 8) / size, (y0 + 8) / size]]
        images.append(np.clip(im, 0, 255).astype(np.uint8))
        rows.append({"name": name, "label": label, "pool": pool, "boxes": json.dumps(boxes), "mask": -1})
    return write_prepared(
        root, np.stack(images), pd.DataFrame(rows), split, {"dataset": "tiny", "source": "test"}
    )


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="session")
def tiny_val_dataset(tmp_path_factory):
    """The tiny dataset with a labelled validation split (6 normal, 6 abnormal images)."""
    return make_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny-val", n_val=6)


@pytest.fixture(scope="session")
def synthetic_set(tmp_path_factory):
    """A synthetic set at the demo's settings (config/demo.yaml and the workflow's synth rule: seed 0,
    size small, 64 px), generated on first use and shared by the session."""
    made = {}

    def get(name: str):
        if name not in made:
            root = tmp_path_factory.mktemp("synth")
            made[name] = make_synthetic(name, root / name, seed=0, size="small", image_size=64, workers=1)
        return made[name]

    return get
