"""The one evaluator: per-image scores, AUC/AP and anomaly maps for every method.

Model selection is the last checkpoint by default (what the authors' test script evaluates).
`eval.selection: test-oracle` reports the checkpoint the authors' training loop keeps (chosen on the
test set) and is labelled as such; the metrics of the last checkpoint are then reported beside it,
with the gap. Which of the two gave the paper's numbers is not known. A checkpoint is used only
if its identity (configuration, training code, data) is the run's. An evaluation first removes the
previous one's files, then writes maps.npz, scores.csv and, last, metrics.json, each atomically: a run
folder with metrics.json holds a whole evaluation (`sagan run` evaluates through the same function).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sagan.atomic import write_atomic
from sagan.data.ground_truth import pixel_ground_truth
from sagan.data.loading import load_training_data, resize_images, to_unit_range
from sagan.errors import DatasetError
from sagan.localization import compact_maps, run_localization
from sagan.methods import Method
from sagan.runtime import (
    EVALUATION_FILES,
    build_method,
    identity_differences,
    load_run_config,
    read_checkpoint,
    resolve_device,
    run_identity,
    set_threads,
)
from sagan.scoring import check_finite, image_metrics, score_images
from sagan.stats import run_interval

log = logging.getLogger(__name__)


def load_checkpoint(method: Method, ckpt: Path, identity: dict[str, Any]) -> int:
    """Load a run's checkpoint into the method (eval mode); returns its iteration."""
    run = ckpt.parent.parent
    if not ckpt.is_file():
        raise DatasetError(f"{ckpt} is missing: the run is not trained; run `sagan train` on {run} first")
    state = read_checkpoint(ckpt)
    changed = identity_differences(state, identity)
    if changed:
        raise DatasetError(
            f"{ckpt} was made with other {' and '.join(changed)} than {run}/config.yaml and the current "
            f"code and data; run `sagan train` on {run} again to train the run as configured"
        )
    method.load_state_dict(state["model"])
    method.eval()
    return int(state["iteration"])


def evaluate_run(run: str | Path, n_maps: int = 8) -> dict:
    run = Path(run)
    cfg = load_run_config(run)
    for name in EVALUATION_FILES:  # an evaluation that fails must not leave an earlier one looking current
        (run / name).unlink(missing_ok=True)
    set_threads(cfg)
    device = resolve_device(cfg.train.device)
    data = load_training_data(cfg.data.path, cfg.data, device, need_train=False)
    method = build_method(cfg, device)
    identity = run_identity(cfg)
    labels = data.test_labels
    normal_idx, abnormal_idx = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    keep = np.concatenate([normal_idx[:n_maps], abnormal_idx[:n_maps]])  # the examples for figures
    every = np.arange(len(labels))  # maps of every test image, for the localization metrics

    def scored(ckpt: Path) -> tuple[dict, int]:
        iteration = load_checkpoint(method, ckpt, identity)
        result = score_images(method, data.test, cfg.eval.batch_size, cfg.seed, every)
        check_finite(result, str(ckpt))
        return result, iteration

    last, last_it = scored(run / "checkpoints" / "last.pt")
    if last_it != cfg.train.iterations:
        raise DatasetError(
            f"{run}: the last checkpoint is at iteration {last_it} of {cfg.train.iterations}; "
            "training did not finish, run `sagan train` again on this folder to resume it"
        )
    result, iteration = last, last_it
    selection: dict = {}
    if cfg.eval.selection == "test-oracle":
        result, iteration = scored(run / "checkpoints" / "oracle.pt")
        m_last, m_oracle = image_metrics(labels, last["score"]), image_metrics(labels, result["score"])
        selection = {
            "last": {**m_last, "iteration": last_it},
            "oracle": {**m_oracle, "iteration": iteration},
            "oracle_gap": {k: m_oracle[k] - m_last[k] for k in ("auc", "ap")},
        }

    truth, truth_kind = pixel_ground_truth(data.dataset, data.test_rows, cfg.data.image_size)
    write_maps(run / "maps.npz", data, result, keep, cfg.data.image_size, truth)
    scores = result["score"]
    extra = {k.removeprefix("extra_"): v for k, v in result.items() if k.startswith("extra_")}
    table = pd.DataFrame({"name": data.test_names, "label": labels, "score": scores, **extra})
    write_atomic(run / "scores.csv", table.to_csv(index=False, float_format="%.8g"))
    m = {
        **image_metrics(labels, scores),
        "ci95": run_interval(scores, labels),  # stratified bootstrap over the test images
        "localization": run_localization(result.get("map"), labels, truth, truth_kind),
        "selection": cfg.eval.selection,
        "iteration": int(iteration),
        "score_start": method.score_start(),  # where its validation curve is judged from
        "method": cfg.method,
        "group": method.group,
        "dataset": data.dataset.name,
        "seed": cfg.seed,
        "preset": cfg.preset,
        "anomaly_ratio": cfg.data.anomaly_ratio,
        "unlabeled": data.unlabeled_info,
        "model": dataclasses.asdict(cfg.model),
        "n_test": int(len(labels)),
        "n_normal": int((labels == 0).sum()),
        "n_abnormal": int((labels == 1).sum()),
        **({"extra": {k: extra_metrics(method, k, labels, v) for k, v in extra.items()}} if extra else {}),
        **selection,
    }
    write_atomic(run / "metrics.json", json.dumps(m, indent=2, allow_nan=False))  # last: the "done" marker
    log.info("%s: AUC %.4f AP %.4f (%s checkpoint)", run, m["auc"], m["ap"], cfg.eval.selection)
    return m


def extra_metrics(method: Method, name: str, labels: np.ndarray, scores: np.ndarray) -> dict:
    """AUC, AP, their interval and the Table 2 group of one of the method's extra scores."""
    group = method.extra_groups.get(name, method.group)
    return {**image_metrics(labels, scores), "ci95": run_interval(scores, labels), "group": group,
            "score_start": method.score_start(name)}  # fmt: skip


def write_maps(
    path: Path, data: Any, result: dict, keep: np.ndarray, image_size: int, truth: np.ndarray | None
) -> None:
    """Images, restorations, anomaly maps, boxes and masks of the kept test images, for figures; and
    the map (float16 times test_map_scale) and pixel ground truth of every test image."""
    ds, labels = data.dataset, data.test_labels
    rows = data.test_rows[keep]
    index = ds.index
    masks = np.zeros((len(keep), *data.test.shape[1:]), np.uint8)
    if ds.masks is not None:
        for j, r in enumerate(rows):
            if int(index.at[r, "mask"]) >= 0:
                masks[j] = resize_images(ds.masks[int(index.at[r, "mask"])][None], image_size)[0]
    arrays = {
        "names": np.array([data.test_names[i] for i in keep]),
        "labels": labels[keep],
        "scores": result["score"][keep],
        "images": to_unit_range(data.test[torch.as_tensor(keep)])[:, 0].cpu().numpy(),
        **({"restored": result["restored"][keep]} if "restored" in result else {}),
        **({"maps": result["map"][keep]} if "map" in result else {}),
        "boxes": np.array([index.at[r, "boxes"] for r in rows]),
        "masks": masks,
        "test_names": np.array(data.test_names),
        "test_labels": labels,
        **({"test_truth": truth} if truth is not None else {}),
    }
    if "map" in result:
        arrays["test_maps"], arrays["test_map_scale"] = compact_maps(result["map"])
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_atomic(path, buf.getvalue())


def cli_evaluate(args: Any) -> int:
    m = evaluate_run(args.run, args.maps)
    print(json.dumps({k: m[k] for k in ("auc", "ap", "selection", "iteration")}))
    return 0
