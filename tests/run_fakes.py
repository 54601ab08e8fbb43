"""Fake experiment folders in the exact layout `sagan train` + `sagan evaluate` write, for the
table and figure tests (real runs are exercised by the workflow's end-to-end test)."""

from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from sagan.experiments import VARIANTS
from sagan.localization import compact_maps, run_localization
from sagan.methods import get_method
from sagan.scoring import image_metrics
from sagan.stats import run_interval


def box_of(mask: np.ndarray) -> str:
    """The bounding box of a mask as index.csv stores it: JSON [[x0, y0, x1, y1]] in fractions."""
    rows, cols = np.nonzero(mask)
    if not rows.size:
        return "[]"
    h, w = mask.shape
    return json.dumps([[cols.min() / w, rows.min() / h, (cols.max() + 1) / w, (rows.max() + 1) / h]])


def make_run(
    root: Path,
    dataset: str,
    method: str,
    seed: int,
    ar: str = "0.6",
    variant: str = "default",
    separation: float = 1.0,
    selection: str = "last",
    network: str = "paper",
    n_test: int = 40,
    size: int = 32,
    preset: str | None = None,
) -> Path:
    """One run folder with metrics.json, scores.csv, maps.npz, train_log.csv and val_log.csv."""
    run = root / "runs" / dataset / method / f"ar{ar}" / variant / f"seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(f"{dataset}/{method}/{ar}/{variant}/{seed}".encode()))
    labels = np.array([0] * (n_test // 2) + [1] * (n_test // 2))
    scores = rng.normal(0.1, 0.03, n_test) + labels * separation * 0.03
    names = [f"{dataset}_{i:04d}.png" for i in range(n_test)]
    pd.DataFrame({"name": names, "label": labels, "score": scores}).to_csv(run / "scores.csv", index=False)
    cls = get_method(method)
    model = dataclasses.asdict(cls.Config())  # the method's settings, with the variant's options
    model.update({key.removeprefix("model."): value for key, value in VARIANTS[variant].items()})
    if "network" in model:
        model["network"] = network

    # every test image: smooth, abnormal ones with a bright square (its mask and box recorded, except on
    # LAG, which has no pixel labels); the map is |x - x'| / 2 with x' restoring the square, plus noise
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = np.stack([0.5 * np.sin(5 * xx + i) * np.cos(3 * yy) for i in range(n_test)]).astype(np.float32)
    masks = np.zeros((n_test, size, size), np.uint8)
    for i in np.flatnonzero(labels):
        x0, y0 = 4 + 2 * (i % 6), 6 + i % 5
        images[i, y0 : y0 + 8, x0 : x0 + 8] += 0.6
        masks[i, y0 : y0 + 8, x0 : x0 + 8] = 1
    restored = images * (1 - 0.8 * masks)
    test_maps = np.abs(images - restored) / 2 * separation / 2 + 0.15 * rng.random(images.shape)
    kind = None if dataset.endswith("lag") else "masks" if dataset.startswith("synth-") else "boxes"
    truth = masks.astype(bool) if kind else None
    examples = np.concatenate([np.arange(4), n_test // 2 + np.arange(4)])  # 4 normal, 4 abnormal
    boxes = [box_of(masks[i]) if kind else "[]" for i in examples]
    extra = {}
    if method == "ddad":  # DDAD-intra, an extra score in the normal-only group
        intra = rng.normal(0.1, 0.03, n_test) + labels * 0.6 * 0.03
        extra["intra"] = {**image_metrics(labels, intra), "group": cls.extra_groups["intra"]}
        pd.DataFrame({"name": names, "label": labels, "score": scores, "intra": intra}).to_csv(
            run / "scores.csv", index=False
        )
    metrics = {
        **image_metrics(labels, scores),
        "ci95": run_interval(scores, labels, n_boot=200),
        "localization": run_localization(test_maps, labels, truth, kind),
        "selection": selection,
        "iteration": 200,
        "method": method,
        "dataset": dataset,
        "seed": seed,
        "anomaly_ratio": None if ar == "0_u" else float(ar),
        "model": model,
        "group": cls.group,
        "n_test": n_test,
        **({"extra": extra} if extra else {}),
        **({"preset": preset} if preset else {}),
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    stored, scale = compact_maps(test_maps)
    np.savez(
        run / "maps.npz",
        names=np.array(names)[examples],
        labels=labels[examples],
        scores=scores[examples],
        images=np.clip(images[examples], -1, 1),
        restored=np.clip(restored[examples], -1, 1),
        maps=test_maps[examples],
        boxes=np.array(boxes),
        masks=masks[examples] if kind else np.zeros_like(masks[examples]),
        test_names=np.array(names),
        test_labels=labels,
        test_maps=stored,
        test_map_scale=scale,
        **({"test_truth": truth} if truth is not None else {}),
    )
    its = np.arange(10, 210, 10)
    log = {
        "iteration": its,
        "d_loss": 10 - its / 100,
        "gp": 1 - its / 1000,
        "g_loss": 0.4 - its / 2000,
        "seconds": its / 10,
    }
    pd.DataFrame(log).to_csv(run / "train_log.csv", index=False)
    val_its = np.arange(50, 250, 50)  # validation curves (`eval.val_every`), rising towards `separation`
    rise = 0.5 + 0.4 * (1 - np.exp(-separation * val_its / 100))
    val = {
        "iteration": val_its,
        "auc": rise + rng.normal(0, 0.01, 4),
        "ap": rise - 0.05 + rng.normal(0, 0.01, 4),
    }
    pd.DataFrame(val).to_csv(run / "val_log.csv", index=False)
    (run / "checkpoints").mkdir(exist_ok=True)
    return run


def make_splits(root: Path, dataset: str, counts: tuple = (154, 154, 160, 200, 40, 40)) -> Path:
    keys = [
        "train_normal",
        "unlabeled_total",
        "unlabeled_normal",
        "unlabeled_abnormal",
        "test_normal",
        "test_abnormal",
    ]
    path = root / "splits" / f"{dataset}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"dataset": dataset, "table1": dict(zip(keys, counts))}))
    return path


def make_experiment(
    root: Path,
    datasets: tuple = ("rsna", "vindr", "lag"),
    methods: tuple = ("brainomaly", "sagan"),
    seeds: tuple = (0, 1, 2),
    table3: str | None = "vindr",
    table4: str | None = "rsna",
    selection: str = "last",
    preset: str | None = None,
) -> Path:
    """The run matrix of the workflow (Tables 2-4), with SAGAN better than Brainomaly."""
    strength = {"brainomaly": 1.0, "sagan": 2.0, "ae": 0.5}
    variants = [v for v in VARIANTS if v != "default"]  # the Table 3 variants, weakest first
    for seed in seeds:
        for d in datasets:
            make_splits(root, d)
            for m in methods:
                make_run(
                    root, d, m, seed, separation=strength.get(m, 1.0), selection=selection, preset=preset
                )
        if table3:
            for v, s in zip(variants, (1.2, 1.5, 1.7)):
                make_run(root, table3, "sagan", seed, variant=v, separation=s, selection=selection)
        if table4:
            for ar, s in (("0_u", 0.8), ("0", 1.0), ("0.2", 1.4), ("1", 1.9)):
                make_run(root, table4, "sagan", seed, ar=ar, separation=s, selection=selection)
    return root
