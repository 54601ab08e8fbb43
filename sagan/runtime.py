"""What the trainer and the evaluator share: resolving a run's configuration through the registry,
the device, seeding, building a method, and the run's identity.

A run's identity is its configuration, the fingerprint of its training code and that of its data. A
checkpoint is resumed, and evaluated, only by a run of the same identity. The thread count
(`train.threads`) is not part of it, so that a job rerun with other `--cores` keeps its progress; on
CPU it changes float sums in the last digits, so such a run equals an uninterrupted one up to those.
Nor is `train.compile`, for the same reason: compiled networks compute the same functions, rounded
differently (tests/test_compile.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
from pathlib import Path
from typing import Any

import torch

from sagan.config import SECTIONS, RunConfig, build_config, flatten, read_yaml
from sagan.errors import ConfigError, DatasetError
from sagan.fingerprint import stage_hash
from sagan.methods import Method, get_method, method_names

# config keys that do not change a run's results (see the module docstring)
NOT_IDENTITY = ("train.threads", "train.compile")
# what `sagan evaluate` writes into a run folder, the "done" marker first: metrics.json is written
# last, so a run that has it is evaluated and the other files are of the same evaluation
EVALUATION_FILES = ("metrics.json", "scores.csv", "maps.npz")
# what every checkpoint `sagan train` writes holds (last.pt also the optimisers, RNG and log)
CHECKPOINT_KEYS = ("iteration", "model", "config", "code", "data")


def resolve_config(
    method: str,
    seed: int | None = None,
    preset: str = "paper",
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """The fully resolved, validated configuration of one run (see `sagan.config` for the order)."""
    cls = get_method(method)
    cfg = build_config(method, cls.Config, cls.PRESETS, seed, preset, config_file, overrides)
    if cfg.train.compile and not cls.compiled:
        able = [name for name in method_names() if get_method(name).compiled]
        raise ConfigError(
            f"train.compile=true: method {method} has no network to compile (those that do: "
            f"{', '.join(able)}); set it for those methods only"
        )
    return cfg


def load_run_config(run: str | Path) -> RunConfig:
    """The configuration saved in a run folder, validated again."""
    path = Path(run) / "config.yaml"
    if not path.is_file():
        raise DatasetError(
            f"{run} is not a run folder (no config.yaml); train it first with `sagan train ... --out {run}`"
        )
    saved = read_yaml(path, "fix it (it is the configuration `sagan train` saved), or train the run again")
    try:
        overrides = {f"{s}.{k}": v for s in ("model", *SECTIONS) for k, v in saved[s].items()}
        method, seed, preset = saved["method"], saved["seed"], saved["preset"]
    except (KeyError, TypeError, AttributeError):
        raise DatasetError(
            f"{path} is not a run configuration written by `sagan train`; train the run again in a new folder"
        ) from None
    try:
        return resolve_config(method, seed, preset, None, overrides)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}; fix it, or train the run again in a new folder") from None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is available; use train.device=cpu or auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)  # network initialisation
    torch.use_deterministic_algorithms(True, warn_only=True)
    # deterministic mode also fills every new tensor (NaN for floats), a guard against ops that read
    # uninitialised memory; none of ours does (each method's parameters after 12 demo steps, and the
    # demo's tables, are bit-identical either way: benchmarks/RESULTS.md, "ninth session"), and the
    # fill costs 1-3.5% of a demo iteration
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = False


def set_threads(cfg: RunConfig) -> None:
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> None:
    """Let glibc reuse the memory of freed tensors instead of returning it to the system.

    A training step frees and allocates the same buffers (up to a few MB) every iteration; by default
    glibc unmaps them, and every fresh page then costs a page fault: about 6k-15k faults and 10-30 ms
    of system time per demo iteration of the GANs (benchmarks/RESULTS.md). Buffers under 32 MiB now
    come from the heap, which keeps up to 1 GiB of free memory. Changes no number; does nothing where
    the C library has no mallopt (macOS, musl).
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, 32 << 20)  # glibc's maximum
    mallopt(M_TRIM_THRESHOLD, 1 << 30)


def build_method(cfg: RunConfig, device: torch.device) -> Method:
    """The method of a run, its networks seeded from the run seed, on the device."""
    seed_everything(cfg.seed)
    return get_method(cfg.method)(cfg.model, cfg.data.image_size, cfg.train.iterations).to(device)


def compile_networks(method: Method, backend: str = "inductor") -> None:
    """`train.compile`: torch.compile the method's `compiled` networks in place (`nn.Module.compile`:
    the same parameters and state_dict keys, so checkpoints load compiled or not). The first call of
    each input shape and mode compiles (about 100 s at full size on CPU), the later ones run the compiled
    code."""
    for name in method.compiled:
        getattr(method, name).compile(backend=backend)


# --- identity -----------------------------------------------------------------------------------
def code_fingerprint(method: str) -> str:
    """Fingerprint of the training code of a method: every file on its training path
    (`sagan.fingerprint`), the same value the workflow's train jobs carry."""
    return stage_hash("train", [get_method(method).__module__])


def data_fingerprint(root: str | Path) -> str:
    """sha256 of a prepared dataset's files (images, index, split), so new data never resumes old training."""
    h = hashlib.sha256()
    for name in ("images.npy", "index.csv", "split.json"):
        with open(Path(root) / name, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                h.update(chunk)
    return h.hexdigest()


def identity_config(config: dict) -> dict[str, Any]:
    """A run's configuration (as `RunConfig.to_dict` or its saved config.yaml), flat, without the
    keys that do not change results."""
    return {k: v for k, v in flatten(config).items() if k not in NOT_IDENTITY}


def run_identity(cfg: RunConfig) -> dict[str, Any]:
    """What a checkpoint must match to be resumed or evaluated: configuration, code and data."""
    return {
        "config": identity_config(cfg.to_dict()),
        "code": code_fingerprint(cfg.method),
        "data": data_fingerprint(cfg.data.path),
    }


def read_checkpoint(path: Path) -> dict:
    """A checkpoint written by `sagan train` (tensors and plain values only: nothing in the file is
    executed); a truncated or foreign file is a DatasetError that names it, never a traceback."""
    run = path.parent.parent
    fix = f"move it away and run `sagan train` on {run} again (it trains from scratch), or use a new --out folder"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a damaged file fails anywhere in unpickling (zip, EOF, pickle, type errors)
        raise DatasetError(f"{path} is truncated or not a checkpoint; {fix}") from None
    missing = [k for k in CHECKPOINT_KEYS if k not in state] if isinstance(state, dict) else CHECKPOINT_KEYS
    if missing:
        raise DatasetError(
            f"{path} is not a checkpoint written by `sagan train` (no {', '.join(missing)}); {fix}"
        )
    return state


def identity_differences(state: dict, identity: dict[str, Any]) -> list[str]:
    """The parts of `identity` ("config", "code", "data") a checkpoint's state does not match."""
    return [key for key, value in identity.items() if state.get(key) != value]
