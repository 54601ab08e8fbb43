"""Fault injection on the evaluation side (issue 11, row 4): a run looks evaluated (it has metrics.json,
written last and atomically) only when its whole evaluation is on disk, for `sagan evaluate` and for
`sagan run` (the workflow's job); a real full disk (a small tmpfs), real SIGKILLs, damaged data."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sagan.cli import main
from tests.faults.runs import (
    checkpoint_of,
    evaluated,
    killed_at,
    metrics,
    refused,
    torch_file,
    train_argv,
    train_ok,
)
from tests.faults.test_data_faults import run_sagan


def test_an_evaluation_that_fails_leaves_no_run_that_looks_evaluated(data, tmp_path, capsys):
    run = tmp_path / "run"
    train_ok(data, run, iters=2)
    assert main(["evaluate", str(run)]) == 0
    index = pd.read_csv(data / "index.csv", keep_default_na=False)
    index.drop(columns="boxes").to_csv(data / "index.csv", index=False)  # damaged after the evaluation
    line = refused(["evaluate", str(run)], capsys)
    assert f"{data}/index.csv lacks the column(s) boxes" in line
    assert evaluated(run) == []


def test_maps_option_is_a_count(data, tmp_path, capsys):
    run = tmp_path / "run"
    train_ok(data, run, iters=2)
    assert main(["evaluate", str(run), "--maps", "0"]) == 0
    assert evaluated(run) == ["maps.npz", "metrics.json", "scores.csv"]
    with pytest.raises(SystemExit) as exit_:  # argparse: usage and one error line, status 2
        main(["evaluate", str(run), "--maps", "-1"])
    assert exit_.value.code == 2 and "argument --maps: must be >= 0, got -1" in capsys.readouterr().err


@pytest.mark.parametrize("missing,kind", [("1", "abnormal"), ("0", "normal")])
def test_a_test_set_of_one_class_is_refused_not_nan(data, tmp_path, capsys, missing, kind):
    run = tmp_path / "run"
    train_ok(data, run, iters=2)
    assert main(["evaluate", str(run)]) == 0
    split = json.loads((data / "split.json").read_text())
    split["test"][missing] = []
    (data / "split.json").write_text(json.dumps(split))
    message = f"{data}/split.json: the test set has no {kind} images, and AUC and AP need both classes"
    assert message in refused(["evaluate", str(run)], capsys)
    assert evaluated(run) == []
    assert message in refused(train_argv(data, tmp_path / "new"), capsys)  # known before training
    assert not (tmp_path / "new").exists()


def test_sagan_run_killed_while_it_evaluates_leaves_no_run_that_looks_evaluated(data, tmp_path):
    run = tmp_path / "run"
    argv = train_argv(data, run, iters=4, command="run")
    assert run_sagan(*argv).returncode == 0  # trained and evaluated
    before = (run / "checkpoints" / "last.pt").read_bytes()
    # the job is rerun (a changed --maps, say) and killed after maps.npz, as it writes scores.csv
    killed_at("write", "scores.csv", [*argv, "--maps", "2"])
    assert evaluated(run) == ["maps.npz"]  # the earlier metrics.json went first: no stale "done" marker
    done = run_sagan(*argv, "--maps", "2")  # the same command again: evaluates only
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming {run} from iteration 4" in done.stderr
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    assert evaluated(run) == ["maps.npz", "metrics.json", "scores.csv"] and metrics(run)["iteration"] == 4


def test_a_diverged_model_is_named_not_nan(data, tmp_path, capsys):
    run = tmp_path / "run"
    train_ok(data, run, iters=2)
    assert main(["evaluate", str(run)]) == 0
    state = checkpoint_of(run)  # the run's own checkpoint, its weights blown up (identity unchanged)
    state["model"] = {
        k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in state["model"].items()
    }
    (run / "checkpoints" / "last.pt").write_bytes(torch_file(state))
    line = refused(["evaluate", str(run)], capsys)
    assert f"{run}/checkpoints/last.pt: the model gives non-finite scores for 8 of 8 test images" in line
    assert "smaller learning rate" in line and evaluated(run) == []
