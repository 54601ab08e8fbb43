"""Fake experiment folders in the exact layout `sagan train` + `sagan evaluate` write, for the
table and figure tests (real runs are exercised by the workflow's end-to-end test)."""

from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from sagan.experiments import VARIANTS
from sagan.methods import get_method


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
    metrics = {
        "auc": float(roc_auc_score(labels, scores)),
        "ap": float(average_precision_score(labels, scores)),
        "selection": selection,
        "iteration": 200,
        "method": method,
        "dataset": dataset,
        "seed": seed,
        "anomaly_ratio": None if ar == "0_u" else float(ar),
        "model": model,
        "group": cls.group,
        "n_test": n_test,
    }
    (run / "metrics.json").write_text(json.dumps(metrics))

    # anomaly maps: smooth images, abnormal ones with a bright square (box + mask recorded)
    k = 8
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = np.stack([0.5 * np.sin(5 * xx + i) * np.cos(3 * yy) for i in range(k)]).astype(np.float32)
    masks = np.zeros((k, size, size), np.uint8)
    boxes = []
    map_labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    for i in range(k):
        if map_labels[i]:
            x0, y0 = 4 + 2 * i, 6 + i
            images[i, y0 : y0 + 8, x0 : x0 + 8] += 0.6
            masks[i, y0 : y0 + 8, x0 : x0 + 8] = 1
            boxes.append(json.dumps([[x0 / size, y0 / size, (x0 + 8) / size, (y0 + 8) / size]]))
        else:
            boxes.append("[]")
    restored = images * (1 - 0.8 * masks)
    np.savez(
        run / "maps.npz",
        names=np.array(names[:k]),
        labels=map_labels,
        scores=scores[:k],
        images=np.clip(images, -1, 1),
        restored=np.clip(restored, -1, 1),
        maps=np.abs(images - restored) / 2,
        boxes=np.array(boxes),
        masks=masks,
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
) -> Path:
    """The run matrix of the workflow (Tables 2-4), with SAGAN better than Brainomaly."""
    strength = {"brainomaly": 1.0, "sagan": 2.0, "ae": 0.5}
    variants = [v for v in VARIANTS if v != "default"]  # the Table 3 variants, weakest first
    for seed in seeds:
        for d in datasets:
            make_splits(root, d)
            for m in methods:
                make_run(root, d, m, seed, separation=strength.get(m, 1.0), selection=selection)
        if table3:
            for v, s in zip(variants, (1.2, 1.5, 1.7)):
                make_run(root, table3, "sagan", seed, variant=v, separation=s, selection=selection)
        if table4:
            for ar, s in (("0_u", 0.8), ("0", 1.0), ("0.2", 1.4), ("1", 1.9)):
                make_run(root, table4, "sagan", seed, ar=ar, separation=s, selection=selection)
    return root
