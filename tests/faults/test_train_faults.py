"""Fault injection on the training side (issue 11, rows 2, 3, 5 and 6): seeds, checkpoints of another
run, failed runs and resumed runs, through the real CLI; kills are real SIGKILLs of real `sagan`
processes, at an exact point of their work (see `tests/faults/runs.py`)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from sagan.cli import main
from tests.conftest import make_tiny_dataset
from tests.faults.runs import (
    checkpoint_of,
    evaluated,
    killed_at,
    metrics,
    refused,
    train_argv,
    train_ok,
)
from tests.faults.test_data_faults import run_sagan

# --------------------------------------------------------------------------------------------
# Row 2: an explicit --seed wins over the seed of a --config file
# --------------------------------------------------------------------------------------------


def test_a_seed_sweep_reusing_a_saved_config_trains_the_seeds_asked_for(data, tmp_path):
    train_ok(data, tmp_path / "seed0", seed=0, iters=2)
    saved = tmp_path / "seed0" / "config.yaml"  # holds seed: 0
    for seed in (1, 2):
        run = tmp_path / f"seed{seed}"
        argv = ["train", "--data", str(data), "--method", "ae", "--preset", "demo", "--config", str(saved)]
        assert main([*argv, "--seed", str(seed), "--out", str(run)]) == 0
        assert main(["evaluate", str(run)]) == 0
        assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == seed
        assert metrics(run)["seed"] == seed and checkpoint_of(run)["config"]["seed"] == seed
    assert main(["evaluate", str(tmp_path / "seed0")]) == 0
    scores = {s: (tmp_path / f"seed{s}" / "scores.csv").read_bytes() for s in (0, 1, 2)}
    assert len(set(scores.values())) == 3  # three seeds really trained three models
    run = tmp_path / "again"  # without --seed, the file's seed
    argv = ["train", "--data", str(data), "--method", "ae", "--preset", "demo", "--config", str(saved)]
    assert main([*argv, "--out", str(run)]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 0


# --------------------------------------------------------------------------------------------
# Row 3: evaluate never scores a checkpoint of another run; a restart never leaves the old model
# --------------------------------------------------------------------------------------------


def test_evaluate_refuses_a_checkpoint_of_another_run(data, tmp_path, capsys):
    train_ok(data, tmp_path / "mine", seed=0, iters=2)
    train_ok(data, tmp_path / "other", seed=1, iters=2)
    shutil.copy(tmp_path / "other" / "checkpoints" / "last.pt", tmp_path / "mine" / "checkpoints" / "last.pt")
    line = refused(["evaluate", str(tmp_path / "mine")], capsys)
    assert "mine/checkpoints/last.pt was made with other config" in line and "sagan train" in line
    assert evaluated(tmp_path / "mine") == []


@pytest.mark.parametrize("command", ["train", "run"])  # run: the workflow's job, train then evaluate
def test_a_restart_killed_before_its_first_checkpoint_never_reports_the_old_model(
    data, tmp_path, capsys, command
):
    run = tmp_path / "run"
    train_ok(data, run, seed=0, iters=4, command=command, **{"train.checkpoint_every": 4})
    if command == "train":
        assert main(["evaluate", str(run)]) == 0
    assert metrics(run)["seed"] == 0
    # the workflow reruns the job with another seed: Snakemake removes its outputs (config.yaml,
    # train_log.csv) first; sagan train starts from scratch, and is killed before its first checkpoint
    (run / "config.yaml").unlink()
    (run / "train_log.csv").unlink()
    argv = train_argv(data, run, seed=1, iters=4, command=command, **{"train.checkpoint_every": 4})
    killed_at("checkpoint", 1, argv)
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 1
    assert checkpoint_of(run)["config"]["seed"] == 1  # seed 0's model did not outlive the restart
    assert evaluated(run) == []  # nor did its evaluation
    line = refused(["evaluate", str(run)], capsys)
    assert "iteration 0 of 4" in line and "training did not finish" in line
    assert evaluated(run) == []
    train_ok(data, run, seed=1, iters=4, command=command, **{"train.checkpoint_every": 4})  # resumes
    if command == "train":
        assert main(["evaluate", str(run)]) == 0
    assert metrics(run)["seed"] == 1 and metrics(run)["iteration"] == 4


# --------------------------------------------------------------------------------------------
# Row 5: a failed run does not block its own folder
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"model.lr": -1e-3}, "model.lr must be a finite number >= 0, got -0.001"),
        ({"train.batch_size": 1}, "train.batch_size must be >= 2"),
        ({"data.image_size": 40}, "image size 40 must be divisible by 16"),
        ({"--data": "nowhere"}, "nowhere is not a prepared dataset"),
        ({"model.lr": 1e30}, "non-finite loss at iteration"),  # diverges before its first checkpoint
    ],
)
def test_the_corrected_command_runs_in_the_folder_of_a_failed_run(data, tmp_path, capsys, bad, message):
    run = tmp_path / "run"
    argv = train_argv(data, run, iters=4, **{k: v for k, v in bad.items() if not k.startswith("--")})
    if "--data" in bad:
        argv[argv.index("--data") + 1] = str(tmp_path / bad["--data"])
    assert message in refused(argv, capsys)
    train_ok(data, run, iters=4)
    assert checkpoint_of(run)["iteration"] == 4
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["path"] == str(data)


def test_a_run_with_progress_still_refuses_another_configuration(data, tmp_path, capsys):
    run = tmp_path / "run"
    train_ok(data, run, iters=4)
    before = (run / "checkpoints" / "last.pt").read_bytes()
    line = refused(train_argv(data, run, iters=6), capsys)
    assert "different configuration (differs in train.iterations)" in line
    assert (run / "checkpoints" / "last.pt").read_bytes() == before


# --------------------------------------------------------------------------------------------
# Row 6: an interrupted run resumed with another thread count (another --cores) keeps its progress
# --------------------------------------------------------------------------------------------


def test_a_killed_run_resumes_with_another_thread_count(data, tmp_path):
    run = tmp_path / "run"
    killed_at("checkpoint", 4, train_argv(data, run, iters=8))  # checkpoint of iteration 2 on disk
    assert checkpoint_of(run)["iteration"] == 2
    done = run_sagan(*train_argv(data, run, iters=8, **{"train.threads": 2}))
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming {run} from iteration 2" in done.stderr and "from scratch" not in done.stderr
    assert checkpoint_of(run)["iteration"] == 8
    assert pd.read_csv(run / "train_log.csv")["iteration"].tolist() == [2, 4, 6, 8]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["threads"] == 2


def test_a_method_job_killed_in_its_second_dataset_resumes_there_and_retrains_nothing(tmp_path):
    # the workflow's method job (`datasets_in_one_job`): `sagan run --data A B`, killed as B's run saves
    # its iteration-4 checkpoint, after A's run was trained and evaluated; the same command again
    # evaluates A only and resumes B from iteration 2, to the result of B trained alone, uninterrupted
    a = make_tiny_dataset(tmp_path / "set-a", size=32, n_train=8, n_unl=4, n_test=4)
    b = make_tiny_dataset(tmp_path / "set-b", size=32, n_train=8, n_unl=4, n_test=4, seed=1)
    argv = train_argv(a, tmp_path / "runs" / "{dataset}" / "seed{seed}", iters=6, command="run")
    argv.insert(argv.index(str(a)) + 1, str(b))
    run_a, run_b = tmp_path / "runs" / "set-a" / "seed0", tmp_path / "runs" / "set-b" / "seed0"
    killed_at("checkpoint", f"{run_b}:4", argv)
    assert evaluated(run_a) == ["maps.npz", "metrics.json", "scores.csv"]
    assert checkpoint_of(run_a)["iteration"] == 6 and checkpoint_of(run_b)["iteration"] == 2
    assert evaluated(run_b) == []
    trained_a = (run_a / "checkpoints" / "last.pt").read_bytes()
    done = run_sagan(*argv)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming {run_a} from iteration 6" in done.stderr
    assert f"resuming {run_b} from iteration 2" in done.stderr and "from scratch" not in done.stderr
    assert (run_a / "checkpoints" / "last.pt").read_bytes() == trained_a  # evaluated again, not retrained
    assert evaluated(run_b) == ["maps.npz", "metrics.json", "scores.csv"]
    alone = tmp_path / "alone"
    assert run_sagan(*train_argv(b, alone, iters=6, command="run")).returncode == 0
    assert (alone / "scores.csv").read_bytes() == (run_b / "scores.csv").read_bytes()
