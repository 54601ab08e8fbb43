"""The one trainer shared by every method.

Seeds every random source from the run seed, is deterministic on CPU, device-agnostic (optional bf16
autocast), applies the learning-rate schedule to every optimiser, logs losses to train_log.csv,
checkpoints atomically every K iterations and, when started again on the same run folder (after a
crash or SIGKILL), resumes from the last checkpoint so that the final scores equal those of an
uninterrupted run. With `eval.val_every` it scores the dataset's labelled validation split into
val_log.csv (learning curves); it reads the test set only for `eval.selection: test-oracle`.
"""

from __future__ import annotations

import io
import logging
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from sagan.atomic import write_atomic
from sagan.config import RunConfig, parse_set, read_yaml, save_config
from sagan.data.loading import EpochSampler, TrainingData, load_training_data, to_unit_range
from sagan.errors import ConfigError, TrainingError
from sagan.experiments import SEMI_SUPERVISED
from sagan.methods import Batch, Method
from sagan.methods.base import Transform
from sagan.runtime import (
    EVALUATION_FILES,
    build_method,
    compile_networks,
    identity_config,
    identity_differences,
    keep_freed_memory,
    read_checkpoint,
    resolve_config,
    resolve_device,
    run_identity,
    set_threads,
)
from sagan.scoring import check_finite, image_metrics, score_images

log = logging.getLogger(__name__)


def lr_factor(step: int, iterations: int, mode: str, every: int) -> float:
    """Learning-rate multiplier at a (0-based) step; decay acts over the last half of the run."""
    start = iterations // 2
    if mode == "none" or step < start:
        return 1.0
    updates = (step - start) // every  # completed decay steps
    if mode == "official":
        return 1.0 - updates / max(iterations - start, 1)
    return max(0.0, 1.0 - updates * every / max(iterations - start, 1))


class BatchMaker:
    """Slices the iteration's batches from device tensors and applies the method's pseudo-anomaly
    transform (batched, seeded)."""

    def __init__(self, data: TrainingData, cfg: RunConfig, device: torch.device, transform: Transform | None):
        b = cfg.train.batch_size
        self.data, self.transform = data, transform
        self.normal = EpochSampler(len(data.normal), b, cfg.seed, salt=1, device=device)
        self.unlabeled = (
            EpochSampler(len(data.unlabeled), b, cfg.seed, salt=2, device=device)
            if data.unlabeled is not None
            else None
        )

    def __call__(self, t: int, rng: torch.Generator) -> Batch:
        x_n = to_unit_range(self.data.normal[self.normal.indices(t)])  # (B, 1, H, W)
        x_u = to_unit_range(self.data.unlabeled[self.unlabeled.indices(t)]) if self.unlabeled else None
        x_p, mask = self.transform(x_n, rng) if self.transform else (None, None)
        return Batch(normal=x_n, unlabeled=x_u, pseudo=x_p, pseudo_mask=mask)


def _save(obj: dict, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_atomic(path, buf.getvalue())


def _write_log(rows: list[dict], path: Path) -> None:
    write_atomic(path, pd.DataFrame(rows).to_csv(index=False))


def _write_logs(run: Path, rows: list[dict], val_rows: list[dict] | None) -> None:
    """train_log.csv, and val_log.csv when validation is on (rows as in the checkpoint)."""
    _write_log(rows, run / "train_log.csv")
    if val_rows is not None:
        _write_log(val_rows, run / "val_log.csv")


def check_run_dir(run: Path, cfg: RunConfig) -> None:
    """Refuse a run folder that holds a checkpoint or an evaluation of another configuration (thread
    counts may differ). A folder whose run failed before its first checkpoint holds nothing to keep."""
    path = run / "config.yaml"
    if not path.is_file():
        return
    saved = read_yaml(path, "fix it, or use a new --out folder") or {}
    old, new = identity_config(saved if isinstance(saved, dict) else {}), identity_config(cfg.to_dict())
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    progress = (run / "checkpoints" / "last.pt").is_file() or (run / EVALUATION_FILES[0]).is_file()
    if diff and progress:
        raise ConfigError(
            f"{run} holds a run with a different configuration (differs in {', '.join(diff)}); "
            "use a new --out folder, or delete the old run to retrain it"
        )


def resume_state(last: Path, identity: dict[str, Any]) -> dict | None:
    """The last checkpoint, if it belongs to this run's identity (else None: train from scratch)."""
    if not last.is_file():
        return None
    state = read_checkpoint(last)
    changed = identity_differences(state, identity)
    if changed:
        log.warning(
            "%s: the checkpoint was made with other %s; training from scratch (it is replaced now)",
            last,
            " and ".join(changed),
        )
        return None
    return state


def training_data(method: Method, cfg: RunConfig, device: torch.device) -> TrainingData:
    """The run's images on the device: the unlabelled set only for the methods that learn from it, the
    validation split only for learning curves, and the test set (and its labels) only for the
    test-oracle selection, which is the one use of test labels before the final evaluation."""
    semi = method.group == SEMI_SUPERVISED
    oracle = cfg.eval.selection == "test-oracle"
    val = cfg.eval.val_every > 0
    data = load_training_data(
        cfg.data.path, cfg.data, device, need_unlabeled=semi, need_val=val, need_test=oracle
    )
    if len(data.normal) < 2:
        raise ConfigError(f"{cfg.data.path}: need at least two labelled normal training images")
    if val and data.val is None:
        raise ConfigError(
            f"{cfg.data.path} has no labelled validation split (only the synthetic sets have one); "
            "set eval.val_every=0"
        )
    return data


def validation_row(method: Method, data: TrainingData, cfg: RunConfig, done: int) -> dict[str, float]:
    """Validation AUC and AP of the current model (and of the method's extra scores, as <name>_auc and
    <name>_ap). Scores in eval mode, then puts every module back in its mode, and forks the global RNG,
    so that a run with validation trains exactly the model of a run without."""
    modes = {module: module.training for module in method.modules()}
    with torch.random.fork_rng(devices=[data.val.device] if data.val.device.type == "cuda" else []):
        method.eval()
        scored = score_images(method, data.val, cfg.eval.batch_size, cfg.seed)
    check_finite(scored, f"validation at iteration {done}", "validation images")
    for module, training in modes.items():
        module.train(training)
    row: dict[str, float] = {"iteration": done, **image_metrics(data.val_labels, scored["score"])}
    for key in sorted(k for k in scored if k.startswith("extra_")):  # a fixed column order
        m = image_metrics(data.val_labels, scored[key])
        row.update({f"{key.removeprefix('extra_')}_{k}": v for k, v in m.items()})
    return row


def due(done: int, every: int, total: int) -> bool:
    """Whether an every-K action (logging, validation, selection, checkpoint) falls on this iteration."""
    return every > 0 and (done % every == 0 or done == total)


def set_learning_rates(method: Method, base_lrs: dict[str, list[float]], factor: float) -> None:
    """The schedule acts on every optimiser of the method, from its initial learning rates."""
    for name, opt in method.optimizers.items():
        for group, lr0 in zip(opt.param_groups, base_lrs[name]):
            group["lr"] = lr0 * factor


def train(run: str | Path, cfg: RunConfig) -> Path:
    run = Path(run)
    check_run_dir(run, cfg)
    set_threads(cfg)
    keep_freed_memory()
    device = resolve_device(cfg.train.device)
    method = build_method(cfg, device)
    if cfg.train.compile:
        compile_networks(method)
    data = training_data(method, cfg, device)
    method.train()
    opts = method.optimizers
    base_lrs = {name: [g["lr"] for g in opt.param_groups] for name, opt in opts.items()}
    rng = torch.Generator(device=device).manual_seed(cfg.seed)
    batches = BatchMaker(data, cfg, device, method.transform())

    ckpt_dir = run / "checkpoints"
    last = ckpt_dir / "last.pt"
    start, rows, oracle = 0, [], {"auc": -1.0, "ap": -1.0, "iteration": 0}
    val_rows: list[dict] | None = [] if cfg.eval.val_every > 0 else None
    identity = run_identity(cfg)
    state = resume_state(last, identity)
    if state is not None:
        method.load_state_dict(state["model"])
        for name, opt in opts.items():
            opt.load_state_dict(state["optimizers"][name])
        rng.set_state(state["rng"])
        start, rows, oracle, val_rows = state["iteration"], state["log"], state["oracle"], state["val_log"]
        log.info("resuming %s from iteration %d", run, start)
    if start < cfg.train.iterations:  # the model changes: an earlier evaluation no longer describes it
        for name in EVALUATION_FILES:  # the "done" marker first
            (run / name).unlink(missing_ok=True)
    save_config(cfg, run / "config.yaml")  # first: a kill below leaves a checkpoint evaluate refuses
    if state is None and last.is_file():  # our checkpoint of another identity must not outlive this start
        _save(checkpoint(0, method, rng, rows, oracle, val_rows, identity), last)

    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.train.amp == "bf16")
    t0 = time.perf_counter() - (rows[-1]["seconds"] if rows else 0.0)
    total = cfg.train.iterations
    for t in range(start, total):
        set_learning_rates(
            method, base_lrs, lr_factor(t, total, cfg.train.lr_decay, cfg.train.lr_decay_every)
        )
        with amp:
            losses = method.training_step(batches(t, rng), t, rng)
        values = torch.stack([v.float() for v in losses.values()])
        if not bool(torch.isfinite(values).all()):
            bad = {k: float(v) for k, v in losses.items() if not math.isfinite(float(v))}
            raise TrainingError(
                f"non-finite loss at iteration {t + 1}: {bad}; the run stopped ({run}). Lower the learning "
                "rates (model.lr*) or check the data"
            )
        done = t + 1
        if due(done, cfg.train.log_every, total):
            row = {"iteration": done, **{k: float(v) for k, v in losses.items()}}
            row.update({f"lr_{name}": opt.param_groups[0]["lr"] for name, opt in opts.items()})
            row["seconds"] = round(time.perf_counter() - t0, 3)
            rows.append(row)
            log.info(
                "it %d/%d %s",
                done,
                total,
                " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "iteration"),
            )
        if val_rows is not None and due(done, cfg.eval.val_every, total):
            t0 += _validation_step(method, data, cfg, done, val_rows)  # train_log's seconds: training only
        if cfg.eval.selection == "test-oracle" and due(done, cfg.eval.select_every, total):
            oracle = _oracle_step(method, data, cfg, done, oracle, ckpt_dir, identity)
        if due(done, cfg.train.checkpoint_every, total):
            _save(checkpoint(done, method, rng, rows, oracle, val_rows, identity), last)
            _write_logs(run, rows, val_rows)
    logs = [run / "train_log.csv", *([run / "val_log.csv"] if val_rows is not None else [])]
    if start >= total and not all(p.is_file() for p in logs):  # e.g. removed by Snakemake before a rerun
        _write_logs(run, rows, val_rows)
    return run


def checkpoint(
    done: int,
    method: Method,
    rng: torch.Generator,
    rows: list,
    oracle: dict,
    val_rows: list | None,
    identity: dict,
) -> dict:
    """Everything a resumed run needs to continue exactly as an uninterrupted one, and its identity."""
    return {
        "iteration": done,
        "model": method.state_dict(),
        "optimizers": {k: o.state_dict() for k, o in method.optimizers.items()},
        "rng": rng.get_state(),
        "log": rows,
        "oracle": oracle,
        "val_log": val_rows,
        **identity,
    }


def _validation_step(
    method: Method, data: TrainingData, cfg: RunConfig, done: int, rows: list[dict]
) -> float:
    """Append the validation row of iteration `done`; returns the seconds it took."""
    t = time.perf_counter()
    rows.append(validation_row(method, data, cfg, done))
    shown = " ".join(f"{k}={v:.4f}" for k, v in rows[-1].items() if k != "iteration")
    log.info("it %d/%d validation %s", done, cfg.train.iterations, shown)
    return time.perf_counter() - t


def _oracle_step(
    method: Method, data: TrainingData, cfg: RunConfig, done: int, best: dict, ckpt_dir: Path, identity: dict
) -> dict:
    """The authors' protocol: evaluate on the TEST set, keep the checkpoint whose AUC and AP are both >= the best."""
    method.eval()
    scored = score_images(method, data.test, cfg.eval.batch_size, cfg.seed)
    check_finite(scored, f"{ckpt_dir.parent} at iteration {done} (test-oracle selection)")
    scores = scored["score"]
    method.train()
    m = image_metrics(data.test_labels, scores)
    history = best.get("history", []) + [{"iteration": done, **m}]
    if m["auc"] >= best["auc"] and m["ap"] >= best["ap"]:  # >= as in the authors' code: a tie keeps the later
        best = {"auc": m["auc"], "ap": m["ap"], "iteration": done}
        _save({"iteration": done, "model": method.state_dict(), **identity}, ckpt_dir / "oracle.pt")
    write_atomic(ckpt_dir.parent / "selection_log.csv", pd.DataFrame(history).to_csv(index=False))
    return {**best, "history": history}


def cli_config(args: Any) -> RunConfig:
    """The run configuration of `sagan train` / `sagan run` arguments."""
    overrides = parse_set(args.overrides)
    overrides["data.path"] = args.data
    return resolve_config(args.method, args.seed, args.preset, args.config, overrides)


def cli_train(args: Any) -> int:
    train(args.out, cli_config(args))
    return 0
