"""`sagan run`: train a run and evaluate it in one process, the workflow's one job per run.

A Python + torch start costs seconds (benchmarks/process_overhead.py measures it); one process per run
instead of a training and an evaluation process saves one start per run. Training resumes from its
checkpoint as `sagan train` does, so a rerun after an interruption (or after an evaluation that
failed) trains only what is left, then evaluates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sagan.config import RunConfig
from sagan.evaluate import evaluate_run
from sagan.trainer import cli_config, train


def train_and_evaluate(run: str | Path, cfg: RunConfig, n_maps: int = 8) -> dict:
    """Train (or resume) the run, then score its test set; returns the run's metrics."""
    return evaluate_run(train(run, cfg), n_maps)


def cli_run(args: Any) -> int:
    m = train_and_evaluate(args.out, cli_config(args), args.maps)
    print(json.dumps({k: m[k] for k in ("auc", "ap", "selection", "iteration")}))
    return 0
