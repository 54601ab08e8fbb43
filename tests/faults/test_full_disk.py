"""A full disk (issue 11), on a real small tmpfs where this machine lets us mount one: every command
stops with one line naming what it could not write, leaves no temporary file or folder and no run that
looks evaluated, and the same command succeeds once space is freed."""

from __future__ import annotations

import shutil

from sagan.data.prepared import load_prepared
from tests.fakes import tiny_split, write_medad_folder
from tests.faults.runs import evaluated, fill, small_disk, temp_files, train_argv, train_ok
from tests.faults.test_data_faults import error_line, run_sagan


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


def test_a_full_disk_during_prepare_is_one_line_and_leaves_no_temporary_folder(tmp_path):
    raw = write_medad_folder(tmp_path / "raw", tiny_split())
    with small_disk(tmp_path / "disk", "4m") as disk:
        out = disk / "prepared"
        args = ["prepare", "medad", "--source", raw, "--out", out, "--workers", "1"]
        filler = fill(disk)
        done = run_sagan(*args)
        line = error_line(done.stderr, "prepare")
        assert done.returncode == 2
        assert f"cannot write {out}: No space left on device; free space on that disk" in line
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # no output, no temporary folder
        filler.unlink()
        assert run_sagan(*args).returncode == 0 and len(load_prepared(out).index) > 0
