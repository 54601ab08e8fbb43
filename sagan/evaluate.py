"""The one evaluator: per-image scores, AUC/AP and anomaly maps for every method.

Model selection is the last checkpoint by default (what the authors' test script evaluates).
`eval.selection: test-oracle` reports the checkpoint the authors' training loop keeps (chosen on the
test set) and is labelled as such; the metrics of the last checkpoint are then reported beside it,
with the gap. Which of the two gave the paper's numbers is not known.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from sklearn.metrics import average_precision_score, roc_auc_score

from sagan.atomic import write_atomic
from sagan.config import RunConfig, resolve_config
from sagan.data.loading import load_training_data, resize_images, to_unit_range
from sagan.errors import DatasetError
from sagan.methods import Method

log = logging.getLogger(__name__)


def metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Image-level AUC and AP (abnormal = 1), as fractions."""
    return {"auc": float(roc_auc_score(labels, scores)), "ap": float(average_precision_score(labels, scores))}


@torch.no_grad()
def score_images(
    method: Method,
    images: torch.Tensor,
    batch_size: int,
    cfg: RunConfig,
    rng_seed: int,
    keep: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Scores of uint8 images (N, H, W) in batched passes; restored images and maps for rows `keep`."""
    rng = torch.Generator(device=images.device).manual_seed(rng_seed + 1)  # only used if the gate stays on
    scores, restored, maps = [], [], []
    keep_set = set(keep.tolist()) if keep is not None else set()
    for i in range(0, len(images), batch_size):
        x = to_unit_range(images[i : i + batch_size])
        out = method.predict(x, rng)
        scores.append(out["score"].float().cpu())
        rows = [j for j in range(i, i + len(x)) if j in keep_set]
        if rows:
            local = torch.tensor([j - i for j in rows])
            restored.append(out["restored"][local, 0].float().cpu())
            maps.append(out["map"][local, 0].float().cpu())
    result = {"score": torch.cat(scores).numpy().astype(np.float64)}
    if keep_set:
        result["restored"] = torch.cat(restored).numpy()
        result["map"] = torch.cat(maps).numpy()
    return result


def load_run_config(run: Path) -> RunConfig:
    path = run / "config.yaml"
    if not path.is_file():
        raise DatasetError(
            f"{run} is not a run folder (no config.yaml); train it first with `sagan train ... --out {run}`"
        )
    saved = yaml.safe_load(path.read_text())
    overrides = {f"{s}.{k}": v for s in ("model", "data", "train", "eval") for k, v in saved[s].items()}
    return resolve_config(saved["method"], saved["seed"], saved["preset"], None, overrides)


def evaluate_run(run: str | Path, n_maps: int = 8) -> dict:
    from sagan.trainer import build_method, resolve_device

    run = Path(run)
    cfg = load_run_config(run)
    device = resolve_device(cfg.train.device)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    data = load_training_data(cfg.data.path, cfg.data, device, need_train=False)
    method = build_method(cfg, device)
    labels = data.test_labels
    normal_idx, abnormal_idx = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    keep = np.concatenate([normal_idx[:n_maps], abnormal_idx[:n_maps]])

    def scored(ckpt: Path) -> tuple[dict, int]:
        if not ckpt.is_file():
            raise DatasetError(f"{ckpt} is missing: the run is not trained; run `sagan train` on {run} first")
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        method.load_state_dict(state["model"])
        method.eval()
        return score_images(method, data.test, cfg.eval.batch_size, cfg, cfg.seed, keep), state["iteration"]

    last, last_it = scored(run / "checkpoints" / "last.pt")
    if last_it != cfg.train.iterations:
        raise DatasetError(
            f"{run}: the last checkpoint is at iteration {last_it} of {cfg.train.iterations}; "
            "training did not finish, run `sagan train` again on this folder to resume it"
        )
    result, iteration = last, last_it
    extra: dict = {}
    if cfg.eval.selection == "test-oracle":
        result, iteration = scored(run / "checkpoints" / "oracle.pt")
        m_last, m_oracle = metrics(labels, last["score"]), metrics(labels, result["score"])
        extra = {
            "last": {**m_last, "iteration": last_it},
            "oracle": {**m_oracle, "iteration": iteration},
            "oracle_gap": {k: m_oracle[k] - m_last[k] for k in ("auc", "ap")},
        }

    scores = result["score"]
    ds = data.dataset
    write_atomic(
        run / "scores.csv",
        pd.DataFrame({"name": data.test_names, "label": labels, "score": scores}).to_csv(
            index=False, float_format="%.8g"
        ),
    )
    model = cfg.model
    m = {
        **metrics(labels, scores),
        "selection": cfg.eval.selection,
        "iteration": int(iteration),
        "method": cfg.method,
        "dataset": ds.name,
        "seed": cfg.seed,
        "preset": cfg.preset,
        "anomaly_ratio": cfg.data.anomaly_ratio,
        "unlabeled": data.unlabeled_info,
        **{
            k: getattr(model, k)
            for k in ("use_acm", "use_arrm", "network", "gate_at_test")
            if hasattr(model, k)
        },
        "n_test": int(len(labels)),
        "n_normal": int((labels == 0).sum()),
        "n_abnormal": int((labels == 1).sum()),
        **extra,
    }
    write_atomic(run / "metrics.json", json.dumps(m, indent=2))

    rows = data.test_rows[keep]
    index = ds.index
    masks = np.zeros((len(keep), *data.test.shape[1:]), np.uint8)
    if ds.masks is not None:
        for j, r in enumerate(rows):
            if int(index.at[r, "mask"]) >= 0:
                masks[j] = resize_images(ds.masks[int(index.at[r, "mask"])][None], cfg.data.image_size)[0]
    tmp = run / ".maps.tmp.npz"
    np.savez_compressed(
        tmp,
        names=np.array([data.test_names[i] for i in keep]),
        labels=labels[keep],
        scores=scores[keep],
        images=to_unit_range(data.test[torch.as_tensor(keep)])[:, 0].cpu().numpy(),
        restored=result["restored"],
        maps=result["map"],
        boxes=np.array([index.at[r, "boxes"] for r in rows]),
        masks=masks,
    )
    tmp.replace(run / "maps.npz")
    log.info("%s: AUC %.4f AP %.4f (%s checkpoint)", run, m["auc"], m["ap"], cfg.eval.selection)
    return m


def cli_evaluate(args) -> int:
    m = evaluate_run(args.run, args.maps)
    print(json.dumps({k: m[k] for k in ("auc", "ap", "selection", "iteration")}))
    return 0
