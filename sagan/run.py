"""`sagan run`: train a run and evaluate it in one process, the workflow's one job per run.

A Python + torch start costs seconds (benchmarks/process_overhead.py measures it); one process per run
instead of a training and an evaluation process saves one start per run, and `--seed 0 1 2` trains and
evaluates several seeds of the same configuration one after the other in one process (`--out` then
names each run folder with `{seed}`), which saves two more (the synthetic configurations' jobs).
`--data A B C` does the same for several datasets (`--out` then names each folder with `{dataset}`, the
data folder's name): a method's Table 2 rows in one process (`datasets_in_one_job` of the workflow).
Training resumes from its checkpoint as `sagan train` does, so a rerun after an interruption (or after
an evaluation that failed) trains only what is left, then evaluates; a run whose training had finished
is only evaluated again.
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
DATASET_FIELD = "{dataset}"  # in `--out`: replaced by each run's data folder name


def train_and_evaluate(run: str | Path, cfg: RunConfig, n_maps: int = 8) -> dict:
    """Train (or resume) the run, then score its test set; returns the run's metrics."""
    return evaluate_run(train(run, cfg), n_maps)


def job_runs(args: Any) -> list[tuple[str, RunConfig]]:
    """(run folder, configuration) of every dataset and seed of `sagan run`, dataset by dataset, all
    resolved and checked before any of them trains, so that a bad setting stops the command before
    the first run's work."""
    seeds = args.seed or [None]  # None: the --config file's seed, else 0
    datas = args.data  # one or more prepared dataset folders
    names = [Path(d).name for d in datas]
    for field, what, values, example in (
        (SEED_FIELD, "seeds", seeds, "results/x/seed{seed}"),
        (DATASET_FIELD, "datasets", names, "results/{dataset}/x"),
    ):
        if len(values) > 1 and field not in args.out:
            raise ConfigError(
                f"--out {args.out}: with several {what} each run needs its own folder; put {field} in it, "
                f"e.g. --out '{example}'"
            )
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"--seed {' '.join(map(str, seeds))}: a seed is given twice")
    if len(set(names)) < len(names):
        raise ConfigError(f"--data {' '.join(datas)}: two dataset folders have the same name")
    runs = []
    for data, name in zip(datas, names):
        for seed in seeds:
            cfg = cli_config(argparse.Namespace(**{**vars(args), "data": data, "seed": seed}))
            out = args.out.replace(DATASET_FIELD, name).replace(SEED_FIELD, str(cfg.seed))
            runs.append((out, cfg))
    return runs


def cli_run(args: Any) -> int:
    for out, cfg in job_runs(args):
        m = train_and_evaluate(out, cfg, args.maps)
        keys = ("dataset", "seed", "auc", "ap", "selection", "iteration")
        print(json.dumps({k: m[k] for k in keys}))
    return 0
