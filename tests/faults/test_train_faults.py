"""Fault injection on the training and evaluation side (issue 11): what a hostile but realistic user
meets with `sagan train` and `sagan evaluate`. Real commands, real processes killed by real signals,
real damaged files and a real full disk (a small tmpfs, where this machine lets us mount one)."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from sagan.cli import main
from sagan.config import SECTIONS
from sagan.methods import get_method, method_names
from tests.conftest import make_tiny_dataset
from tests.faults.test_data_faults import ROOT, error_line, run_sagan

# a small AE run: quick, and its options exist in every version of the package
FAST = {"train.threads": 1, "data.image_size": 32, "train.batch_size": 4, "train.log_every": 2}


def train_argv(data: Path, out: Path, seed: int = 0, iters: int = 4, **sets) -> list[str]:
    argv = ["train", "--data", str(data), "--method", "ae", "--seed", str(seed), "--preset", "demo"]
    for key, value in {**FAST, "train.iterations": iters, "train.checkpoint_every": 2, **sets}.items():
        argv += ["--set", f"{key}={value}"]
    return [*argv, "--out", str(out)]


def train_ok(*args, **kwargs) -> None:
    assert main(train_argv(*args, **kwargs)) == 0


def refused(argv: list[str], capsys) -> str:
    """The one-line error of a command that must fail with status 2."""
    assert main(argv) == 2
    return error_line(capsys.readouterr().err, argv[0])


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def evaluated(run: Path) -> list[str]:
    """The files of an evaluation present in a run folder."""
    return sorted(n for n in ("metrics.json", "scores.csv", "maps.npz") if (run / n).exists())


@pytest.fixture()
def data(tmp_path):
    return make_tiny_dataset(tmp_path / "tiny", size=32, n_train=8, n_unl=4, n_test=4)


# runs the sagan CLI, but the process SIGKILLs itself as it is about to save the checkpoint of
# iteration sys.argv[1] or later: a kill at an exact point of training, however loaded the machine
KILL_BEFORE_CHECKPOINT = (
    "import os, signal, sys, torch\n"
    "save, at = torch.save, int(sys.argv[1])\n"
    "def save_or_die(obj, *args, **kwargs):\n"
    "    if isinstance(obj, dict) and obj.get('iteration', 0) >= at:\n"
    "        os.kill(os.getpid(), signal.SIGKILL)\n"
    "    return save(obj, *args, **kwargs)\n"
    "torch.save = save_or_die\n"
    "from sagan.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


def killed_before_checkpoint(iteration: int, argv: list[str]) -> None:
    cmd = [sys.executable, "-c", KILL_BEFORE_CHECKPOINT, str(iteration), *argv]
    done = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


def checkpoint_of(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)


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


def test_a_restart_killed_before_its_first_checkpoint_never_reports_the_old_model(data, tmp_path, capsys):
    run = tmp_path / "run"
    train_ok(data, run, seed=0, iters=4, **{"train.checkpoint_every": 4})
    assert main(["evaluate", str(run)]) == 0 and metrics(run)["seed"] == 0
    # the workflow reruns the job with another seed: Snakemake removes its outputs (config.yaml,
    # train_log.csv) first; sagan train starts from scratch, and is killed before its first checkpoint
    (run / "config.yaml").unlink()
    (run / "train_log.csv").unlink()
    killed_before_checkpoint(1, train_argv(data, run, seed=1, iters=4, **{"train.checkpoint_every": 4}))
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 1
    assert checkpoint_of(run)["config"]["seed"] == 1  # seed 0's model did not outlive the restart
    assert evaluated(run) == []  # nor did its evaluation
    line = refused(["evaluate", str(run)], capsys)
    assert "iteration 0 of 4" in line and "training did not finish" in line
    assert evaluated(run) == []
    train_ok(data, run, seed=1, iters=4, **{"train.checkpoint_every": 4})  # resumes, finishes
    assert main(["evaluate", str(run)]) == 0
    assert metrics(run)["seed"] == 1 and metrics(run)["iteration"] == 4


# --------------------------------------------------------------------------------------------
# Row 4: a run looks evaluated (metrics.json) only when its whole evaluation is on disk
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    """A real tmpfs of `size` mounted at `path` (skips where this machine does not allow mounting)."""
    path.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here: the full-disk test needs to mount a small tmpfs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill a file system to its last byte but about `leave`; returns the filler (delete it to free)."""
    spacer = disk / "spacer"
    spacer.write_bytes(b"\0" * leave)
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    for size in (1 << 20, 1 << 12, 1):
        try:
            while True:
                os.write(fd, b"\0" * size)
        except OSError as err:
            assert err.errno == errno.ENOSPC
    os.close(fd)
    spacer.unlink()
    return filler


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def test_a_full_disk_is_one_line_and_leaves_no_run_that_looks_evaluated(data, tmp_path):
    train_ok(data, tmp_path / "trained", iters=2)
    with small_disk(tmp_path / "disk", "32m") as disk:
        run = disk / "run"
        shutil.copytree(tmp_path / "trained", run)
        assert run_sagan("evaluate", run, "--maps", "0").returncode == 0  # an earlier, small evaluation
        filler = fill(disk)
        done = run_sagan("evaluate", run)  # 8 maps a class no longer fit
        line = error_line(done.stderr, "evaluate")
        assert done.returncode == 2 and f"cannot write {run}/" in line and "No space left on device" in line
        assert evaluated(run) == [] and temp_files(run) == []
        filler.unlink()
        assert run_sagan("evaluate", run).returncode == 0  # space freed: the same command succeeds
        assert evaluated(run) == ["maps.npz", "metrics.json", "scores.csv"]

        filler = fill(disk, leave=64 << 10)  # room for config.yaml, none for a checkpoint
        done = run_sagan(*train_argv(data, disk / "new", iters=2))
        line = error_line(done.stderr, "train")
        assert done.returncode == 2 and f"cannot write {disk}/new/checkpoints/last.pt: No space left" in line
        assert temp_files(disk / "new") == []
        filler.unlink()
        assert run_sagan(*train_argv(data, disk / "new", iters=2)).returncode == 0


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
    killed_before_checkpoint(4, train_argv(data, run, iters=8))  # checkpoint of iteration 2 on disk
    assert checkpoint_of(run)["iteration"] == 2
    done = run_sagan(*train_argv(data, run, iters=8, **{"train.threads": 2}))
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming {run} from iteration 2" in done.stderr and "from scratch" not in done.stderr
    assert checkpoint_of(run)["iteration"] == 8
    assert pd.read_csv(run / "train_log.csv")["iteration"].tolist() == [2, 4, 6, 8]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["threads"] == 2


# --------------------------------------------------------------------------------------------
# Row 7: damaged files and bad values are one line naming the file or key, status 2
# --------------------------------------------------------------------------------------------


def test_malformed_yaml_in_a_config_file_is_named(data, tmp_path, capsys):
    bad = tmp_path / "sweep.yaml"
    bad.write_text("model:\n  lr: [0.001\ntrain: {}\n")
    argv = [
        "train",
        "--data",
        str(data),
        "--method",
        "ae",
        "--config",
        str(bad),
        "--out",
        str(tmp_path / "r"),
    ]
    line = refused(argv, capsys)
    assert f"config file {bad} is not valid YAML (line" in line and "fix its syntax" in line


@pytest.mark.parametrize(
    "text,named",
    [
        ("method: ae\nseed: [0\n", "is not valid YAML (line"),
        ("- a list\n", "is not a run configuration written by `sagan train`"),
    ],
)
def test_a_damaged_run_config_is_named_by_evaluate_and_by_resume(data, tmp_path, capsys, text, named):
    run = tmp_path / "run"
    train_ok(data, run, iters=2)
    (run / "config.yaml").write_text(text)
    assert f"{run}/config.yaml {named}" in refused(["evaluate", str(run)], capsys)
    if "YAML" in named:  # a readable but foreign config.yaml is simply another configuration
        assert f"{run}/config.yaml {named}" in refused(train_argv(data, run, iters=2), capsys)
    assert (run / "config.yaml").read_text() == text


def test_a_run_config_of_another_version_names_the_file_and_the_key(data, tmp_path, capsys):
    run = tmp_path / "run"
    train_ok(data, run, iters=2)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["model"]["depth"] = 4  # a setting this version does not know
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    line = refused(["evaluate", str(run)], capsys)
    assert f"{run}/config.yaml: unknown config key 'model.depth'" in line


def torch_file(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


DAMAGED = {  # files named last.pt that `sagan train` did not write (its writes are atomic, never partial)
    "text": lambda real: b"this is not a checkpoint\n",
    "truncated": lambda real: real[: len(real) // 2],
    "truncated pickle": lambda real: real[:100],
    "another program's checkpoint": lambda real: torch_file({"state_dict": {"w": torch.ones(2)}, "epoch": 3}),
    "a tensor": lambda real: torch_file(torch.ones(3)),
}


@pytest.mark.parametrize("kind", DAMAGED)
def test_a_damaged_or_foreign_checkpoint_is_named_and_kept(data, tmp_path, capsys, kind):
    run = tmp_path / "run"
    train_ok(data, run, iters=2)
    last = run / "checkpoints" / "last.pt"
    last.write_bytes(DAMAGED[kind](last.read_bytes()))
    before = last.read_bytes()
    lines = [refused(["evaluate", str(run)], capsys), refused(train_argv(data, run, iters=2), capsys)]
    (run / "config.yaml").unlink()  # as Snakemake does before it reruns a job with other settings
    lines.append(refused(train_argv(data, run, iters=4), capsys))  # would train from scratch over it
    for line in lines:
        assert str(last) in line and "move it away" in line, line
        assert (
            "is truncated or not a checkpoint;" in line or "not a checkpoint written by `sagan train`" in line
        )
    assert last.read_bytes() == before  # never replaced: sagan did not write it


def lr_fields() -> list[tuple[str, str]]:
    return [
        (m, f.name)
        for m in method_names()
        for f in fields(get_method(m).Config)
        if f.name == "lr" or f.name.startswith("lr_")
    ]


@pytest.mark.parametrize("method,name", lr_fields())
@pytest.mark.parametrize("value", ["-1e-4", "nan", "inf"])
def test_every_learning_rate_is_checked(data, tmp_path, capsys, method, name, value):
    argv = [
        "train",
        "--data",
        str(data),
        "--method",
        method,
        "--preset",
        "demo",
        "--out",
        str(tmp_path / "r"),
    ]
    line = refused([*argv, "--set", f"model.{name}={value}"], capsys)
    assert f"model.{name} must be a finite number >= 0" in line
    assert not (tmp_path / "r").exists()


def count_fields() -> list[tuple[str, str, int]]:
    """(method, key, smallest allowed) of every integer setting: of every method, and of the sections."""
    objects = [("ae", section, cls()) for section, cls in SECTIONS.items()]
    objects += [(m, "model", get_method(m).Config()) for m in method_names()]
    return [
        (m, f"{section}.{f.name}", f.metadata.get("min", 1))
        for m, section, obj in objects
        for f in fields(obj)
        if isinstance(getattr(obj, f.name), int) and not isinstance(getattr(obj, f.name), bool)
    ]


@pytest.mark.parametrize("method,key,smallest", count_fields())
def test_every_count_below_its_minimum_is_one_line(data, tmp_path, capsys, method, key, smallest):
    argv = [
        "train",
        "--data",
        str(data),
        "--method",
        method,
        "--preset",
        "demo",
        "--out",
        str(tmp_path / "r"),
    ]
    line = refused([*argv, "--set", f"{key}={smallest - 1}"], capsys)
    assert f"{key} must be >= {smallest}" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("method", method_names())
@pytest.mark.parametrize("size", [0, -32, 34])
def test_every_method_names_an_image_size_it_cannot_take(data, tmp_path, capsys, method, size):
    argv = [
        "train",
        "--data",
        str(data),
        "--method",
        method,
        "--preset",
        "demo",
        "--out",
        str(tmp_path / "r"),
    ]
    line = refused([*argv, "--set", f"data.image_size={size}", "--set", "train.threads=1"], capsys)
    assert ("data.image_size must be >= 1" if size < 1 else f"image size {size} must be divisible by") in line
    assert not (tmp_path / "r").exists()


def test_an_interrupt_is_one_line(data, tmp_path):
    run = tmp_path / "run"
    argv = train_argv(data, run, iters=10**6, **{"train.checkpoint_every": 10**6})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagan.cli", *argv], env=env, stderr=subprocess.PIPE, text=True
    )
    while not (run / "config.yaml").exists():  # saved as training starts
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    err = proc.communicate()[1]
    assert proc.returncode == 130 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("sagan ")] == [
        "sagan train: interrupted; run the same command again to go on"
    ]
