"""The one trainer shared by every method.

Seeds every random source from the run seed, is deterministic on CPU, device-agnostic (optional bf16
autocast on CUDA), logs losses to train_log.csv, checkpoints atomically every K iterations and, when
started again on the same run folder (after a crash or SIGKILL), resumes from the last checkpoint so
that the final scores equal those of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from sagan.atomic import write_atomic
from sagan.config import RunConfig, flatten, resolve_config, save_config
from sagan.data.loading import EpochSampler, TrainingData, load_training_data, to_unit_range
from sagan.errors import ConfigError, TrainingError
from sagan.fpi import foreign_patch_interpolation
from sagan.methods import Batch, Method, get_method

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is available; use train.device=cpu or auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)  # network initialisation
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def build_method(cfg: RunConfig, device: torch.device) -> Method:
    seed_everything(cfg.seed)
    return get_method(cfg.method)(cfg.model, cfg.data.image_size, cfg.train.iterations).to(device)


class BatchMaker:
    """Slices the iteration's batches from device tensors and applies FPI (batched, seeded)."""

    def __init__(self, data: TrainingData, cfg: RunConfig, device: torch.device):
        b = cfg.train.batch_size
        self.data = data
        self.normal = EpochSampler(len(data.normal), b, cfg.seed, salt=1, device=device)
        self.unlabeled = (
            EpochSampler(len(data.unlabeled), b, cfg.seed, salt=2, device=device)
            if data.unlabeled is not None
            else None
        )

    def __call__(self, t: int, rng: torch.Generator) -> Batch:
        x_n = to_unit_range(self.data.normal[self.normal.indices(t)])
        x_u = to_unit_range(self.data.unlabeled[self.unlabeled.indices(t)]) if self.unlabeled else None
        x_p, mask = foreign_patch_interpolation(x_n, rng)
        return Batch(normal=x_n, unlabeled=x_u, pseudo=x_p, pseudo_mask=mask)


# Source files whose change invalidates a checkpoint (the training code path of every method).
TRAINING_CODE = [
    "config.py",
    "trainer.py",
    "fpi.py",
    "losses.py",
    "methods",
    "models",
    "data/loading.py",
    "data/prepared.py",
    "data/splits.py",
]


def code_fingerprint() -> str:
    """sha256 over the training code, so a checkpoint is never resumed by different code."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for entry in TRAINING_CODE:
        for f in sorted((root / entry).rglob("*.py")) if (root / entry).is_dir() else [root / entry]:
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def data_fingerprint(root: str | Path) -> str:
    """sha256 of a prepared dataset's files (images, index, split), so new data never resumes old training."""
    h = hashlib.sha256()
    for name in ("images.npy", "index.csv", "split.json"):
        with open(Path(root) / name, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                h.update(chunk)
    return h.hexdigest()


def _save(obj: dict, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_atomic(path, buf.getvalue())


def _write_log(rows: list[dict], path: Path) -> None:
    write_atomic(path, pd.DataFrame(rows).to_csv(index=False))


def prepare_run_dir(run: Path, cfg: RunConfig) -> None:
    """Save the resolved config; refuse to resume a run folder trained with another configuration."""
    path = run / "config.yaml"
    if path.is_file():
        old, new = flatten(yaml.safe_load(path.read_text()) or {}), flatten(cfg.to_dict())
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if diff:
            raise ConfigError(
                f"{run} holds a run with a different configuration (differs in {', '.join(diff)}); "
                "use a new --out folder, or delete the old run to retrain it"
            )
    save_config(cfg, path)


def train(run: str | Path, cfg: RunConfig) -> Path:
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    prepare_run_dir(run, cfg)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    data = load_training_data(cfg.data.path, cfg.data, device)
    if len(data.normal) < 2:
        raise ConfigError(f"{cfg.data.path}: need at least two labelled normal training images")
    method = build_method(cfg, device)
    method.train()
    opts = method.optimizers()
    rng = torch.Generator(device=device).manual_seed(cfg.seed)
    batches = BatchMaker(data, cfg, device)

    ckpt_dir = run / "checkpoints"
    last = ckpt_dir / "last.pt"
    start, rows, oracle = 0, [], {"auc": -1.0, "ap": -1.0, "iteration": 0}
    identity = {"config": cfg.to_dict(), "code": code_fingerprint(), "data": data_fingerprint(cfg.data.path)}
    state = torch.load(last, map_location="cpu", weights_only=False) if last.is_file() else None
    if state is not None and any(state.get(k) != v for k, v in identity.items()):
        changed = [k for k, v in identity.items() if state.get(k) != v]
        log.warning(
            "%s: the checkpoint was made with other %s; training from scratch", last, " and ".join(changed)
        )
        state = None
    if state is not None:
        method.load_state_dict(state["model"])
        for name, opt in opts.items():
            opt.load_state_dict(state["optimizers"][name])
        rng.set_state(state["rng"])
        start, rows, oracle = state["iteration"], state["log"], state["oracle"]
        log.info("resuming %s from iteration %d", run, start)

    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.train.amp == "bf16")
    t0 = time.perf_counter() - (rows[-1]["seconds"] if rows else 0.0)
    total = cfg.train.iterations
    for t in range(start, total):
        with amp:
            losses = method.training_step(batches(t, rng), t, rng)
        values = torch.stack([v.float() for v in losses.values()])
        if not bool(torch.isfinite(values).all()):
            bad = {k: float(v) for k, v in losses.items() if not math.isfinite(float(v))}
            raise TrainingError(f"non-finite loss at iteration {t + 1}: {bad}; the run stopped ({run})")
        done = t + 1
        if done % cfg.train.log_every == 0 or done == total:
            row = {"iteration": done, **{k: float(v) for k, v in losses.items()}}
            row.update({f"lr_{name}": opt.param_groups[0]["lr"] for name, opt in opts.items()})
            row["seconds"] = round(time.perf_counter() - t0, 3)
            rows.append(row)
            log.info(
                "it %d/%d %s",
                done,
                total,
                " ".join(f"{k}={v:.4f}" for k, v in row.items() if k != "iteration"),
            )
        if cfg.eval.selection == "test-oracle" and (done % cfg.eval.select_every == 0 or done == total):
            oracle = _oracle_step(method, data, cfg, rng, done, oracle, ckpt_dir)
        if done % cfg.train.checkpoint_every == 0 or done == total:
            state = {
                "iteration": done,
                "model": method.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in opts.items()},
                "rng": rng.get_state(),
                "log": rows,
                "oracle": oracle,
                **identity,
            }
            _save(state, last)
            _write_log(rows, run / "train_log.csv")
    if start >= total and not (run / "train_log.csv").is_file():
        _write_log(rows, run / "train_log.csv")
    return run


def _oracle_step(
    method: Method, data: TrainingData, cfg: RunConfig, rng, done: int, best: dict, ckpt_dir: Path
) -> dict:
    """The authors' protocol: evaluate on the TEST set, keep the checkpoint whose AUC and AP are both >= the best."""
    from sagan.evaluate import metrics, score_images

    method.eval()
    scores = score_images(method, data.test, cfg.eval.batch_size, cfg, rng_seed=cfg.seed)["score"]
    method.train()
    m = metrics(data.test_labels, scores)
    history = best.get("history", []) + [{"iteration": done, **m}]
    if m["auc"] >= best["auc"] and m["ap"] >= best["ap"]:  # >= as in the authors' code: a tie keeps the later
        best = {"auc": m["auc"], "ap": m["ap"], "iteration": done}
        _save(
            {"iteration": done, "model": method.state_dict(), "config": cfg.to_dict()}, ckpt_dir / "oracle.pt"
        )
    write_atomic(ckpt_dir.parent / "selection_log.csv", pd.DataFrame(history).to_csv(index=False))
    return {**best, "history": history}


def cli_train(args) -> int:
    from sagan.config import parse_set

    overrides = parse_set(args.overrides)
    overrides["data.path"] = args.data
    cfg = resolve_config(args.method, args.seed, args.preset, args.config, overrides)
    train(args.out, cfg)
    return 0
