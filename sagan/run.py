"""`sagan run`: train a run and evaluate it in one process, the workflow's one job per run.

A Python + torch start costs seconds (benchmarks/process_overhead.py measures it); one process per run
instead of a training and an evaluation process saves one start per run, and `--seed 0 1 2` trains and
evaluates several seeds of the same configuration one after the other in one process (`--out` then
names each run folder with `{seed}`), which saves two more (the synthetic configurations' jobs).
Training resumes from its checkpoint as `sagan train` does, so a rerun after an interruption (or after
an evaluation that failed) trains only what is left, then evaluates; a seed whose run had finished is
only evaluated again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sagan.config import RunConfig
from sagan.errors import ConfigError
from sagan.evaluate import evaluate_run
from sagan.trainer import cli_config, train

SEED_FIELD = "{seed}"  # in `--out`: replaced by each run's seed


def train_and_evaluate(run: str | Path, cfg: RunConfig, n_maps: int = 8) -> dict:
    """Train (or resume) the run, then score its test set; returns the run's metrics."""
    return evaluate_run(train(run, cfg), n_maps)


def seed_runs(args: Any) -> list[tuple[str, RunConfig]]:
    """(run folder, configuration) of every seed of `sagan run`, all resolved and checked before any
    of them trains, so that a bad setting stops the command before the first seed's work."""
    seeds = args.seed or [None]  # None: the --config file's seed, else 0
    if len(seeds) > 1 and SEED_FIELD not in args.out:
        raise ConfigError(
            f"--out {args.out}: with several seeds each run needs its own folder; put {SEED_FIELD} in it, "
            f"e.g. --out 'results/x/seed{SEED_FIELD}'"
        )
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"--seed {' '.join(map(str, seeds))}: a seed is given twice")
    runs = []
    for seed in seeds:
        cfg = cli_config(argparse.Namespace(**{**vars(args), "seed": seed}))
        runs.append((args.out.replace(SEED_FIELD, str(cfg.seed)), cfg))
    return runs


def cli_run(args: Any) -> int:
    for out, cfg in seed_runs(args):
        m = train_and_evaluate(out, cfg, args.maps)
        print(json.dumps({"seed": cfg.seed, **{k: m[k] for k in ("auc", "ap", "selection", "iteration")}}))
    return 0
