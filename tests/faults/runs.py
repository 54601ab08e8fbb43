"""What the training and evaluation fault tests share: tiny runs through the real CLI, processes that
SIGKILL themselves at an exact point, a real small disk, and what a run folder holds."""

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
from pathlib import Path

import pytest
import torch

from sagan.cli import main
from tests.faults.test_data_faults import ROOT, error_line

# a small AE run: quick, and its options exist in every version of the package
FAST = {"train.threads": 1, "data.image_size": 32, "train.batch_size": 4, "train.log_every": 2}


def train_argv(
    data: Path, out: Path, seed: int = 0, iters: int = 4, command: str = "train", **sets
) -> list[str]:
    argv = [command, "--data", str(data), "--method", "ae", "--seed", str(seed), "--preset", "demo"]
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


def checkpoint_of(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)


def torch_file(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


# runs the sagan CLI, but the process SIGKILLs itself at an exact point however loaded the machine:
# "checkpoint N" as it is about to save the checkpoint of iteration N or later ("checkpoint TEXT:N":
# of a run whose folder path contains TEXT), "write NAME" as it is about to write a file called NAME
KILL_AT = (
    "import os, signal, sys, torch\n"
    "import sagan.atomic, sagan.evaluate, sagan.trainer\n"
    "kind, at = sys.argv[1], sys.argv[2]\n"
    "save, write = torch.save, sagan.atomic.write_atomic\n"
    "where, _, n = at.rpartition(':')\n"
    "due = []  # a checkpoint of TEXT:N serialised, to be killed as it is written in a folder with TEXT\n"
    "def save_or_die(obj, *args, **kwargs):\n"
    "    if kind == 'checkpoint' and isinstance(obj, dict) and obj.get('iteration', 0) >= int(n):\n"
    "        if not where:\n"
    "            os.kill(os.getpid(), signal.SIGKILL)\n"
    "        due.append(True)\n"
    "    return save(obj, *args, **kwargs)\n"
    "def write_or_die(path, data):\n"
    "    if (due and due.pop() and where in str(path)) or (kind == 'write' and os.path.basename(path) == at):\n"
    "        os.kill(os.getpid(), signal.SIGKILL)\n"
    "    return write(path, data)\n"
    "torch.save = save_or_die\n"
    "sagan.evaluate.write_atomic = sagan.trainer.write_atomic = write_or_die\n"
    "from sagan.cli import main\n"
    "sys.exit(main(sys.argv[3:]))\n"
)


def killed_at(kind: str, at: int | str, argv: list[str]) -> str:
    """Run `sagan ARGV` in a child process that SIGKILLs itself at `kind` `at`; returns its stderr."""
    cmd = [sys.executable, "-c", KILL_AT, kind, str(at), *argv]
    done = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    return done.stderr


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
