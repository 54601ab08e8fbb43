"""Fault injection for row 7 of issue 11 on the training and evaluation side: damaged files and bad
values are one line that names the file or key and the fix, exit status 2, never a traceback (the
data side's cases are in test_data_faults.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest
import torch
import yaml

from sagan.config import SECTIONS
from sagan.methods import get_method, method_names
from tests.faults.runs import refused, torch_file, train_argv, train_ok
from tests.faults.test_data_faults import ROOT


def demo_argv(data: Path, method: str, out: Path) -> list[str]:
    """`sagan train` of `method` at the demo preset, without the fast settings of `train_argv`: the
    checks below must see each setting's own value."""
    return ["train", "--data", str(data), "--method", method, "--preset", "demo", "--out", str(out)]


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
    argv = demo_argv(data, method, tmp_path / "r")
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
    argv = demo_argv(data, method, tmp_path / "r")
    line = refused([*argv, "--set", f"{key}={smallest - 1}"], capsys)
    assert f"{key} must be >= {smallest}" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("method", method_names())
@pytest.mark.parametrize("size", [0, -32, 34])
def test_every_method_names_an_image_size_it_cannot_take(data, tmp_path, capsys, method, size):
    argv = demo_argv(data, method, tmp_path / "r")
    line = refused([*argv, "--set", f"data.image_size={size}", "--set", "train.threads=1"], capsys)
    assert ("data.image_size must be >= 1" if size < 1 else f"image size {size} must be divisible by") in line
    assert not (tmp_path / "r").exists()


def test_an_interrupt_is_one_line(data, tmp_path):
    run = tmp_path / "run"
    argv = train_argv(data, run, iters=10**6, **{"train.checkpoint_every": 10**6})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Ctrl-C at a terminal: SIGINT at its default disposition. A shell that starts the test suite in the
    # background (`nohup pytest &`) hands its children SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler: the child would train its 10**6 iterations and the test would hang.
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagan.cli", *argv], env=env, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    while not (run / "config.yaml").exists():  # saved as training starts
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    try:
        err = proc.communicate(timeout=300)[1]
    finally:
        proc.kill()  # no-op once it has exited; never leaves a training process behind
    assert proc.returncode == 130 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("sagan ")] == [
        "sagan train: interrupted; run the same command again to go on"
    ]
