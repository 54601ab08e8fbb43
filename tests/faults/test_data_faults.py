"""Fault injection on the data side (issue 11): what a hostile but realistic user meets with
`sagan prepare`, `sagan synth`, `sagan splits` and `sagan download`. Real files, real processes and
real signals: symlink loops and zip bombs are built here, kills are SIGKILLs of running commands."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

import sagan
from sagan.cli import main
from sagan.data.prepared import load_prepared, split_entries
from tests.conftest import make_tiny_dataset
from tests.fakes import pack, tiny_split, write_medad_folder, write_rsna_raw

ROOT = Path(sagan.__file__).resolve().parents[1]  # the code under test, also for child processes
GiB = 1 << 30


def run_sagan(*args, timeout: float = 600, memory_limit: int | None = None) -> subprocess.CompletedProcess:
    """`sagan ARGS` in a child process; `memory_limit` caps its address space (a runaway fails fast)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    return subprocess.run(
        [sys.executable, "-m", "sagan.cli", *map(str, args)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit if memory_limit else None,
    )


def error_line(err: str, command: str) -> str:
    """The one line of a user error (no traceback): `sagan COMMAND: error: ...`."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("sagan ")]
    assert len(lines) == 1 and lines[0].startswith(f"sagan {command}: error: "), err
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for folders)."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


def leftovers(out: Path) -> list[str]:
    """Names beside `out` that start like its temporary siblings (`.<name>.`)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


# --------------------------------------------------------------------------------------------
# Row 1: data loss. prepare and synth never delete or rename what they did not write
# --------------------------------------------------------------------------------------------


def test_prepare_never_touches_a_folder_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "project"
    raw = write_medad_folder(out / "raw", tiny_split())  # the raw source sits inside --out
    (out / "notes.txt").write_text("my notes")
    before = snapshot(out)
    for extra in ([], ["--overwrite"]):
        rc = main(["prepare", "medad", "--source", str(raw), "--out", str(out), "--workers", "1", *extra])
        line = error_line(capsys.readouterr().err, "prepare")
        assert rc == 2
        assert str(out) in line and "not a prepared dataset" in line and "--overwrite" in line
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["project"]  # nothing renamed away or left beside it


def test_synth_never_touches_a_folder_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("months of work")
    rc = main(["synth", "synth-lag", "--out", str(out), "--overwrite"])
    line = error_line(capsys.readouterr().err, "synth")
    assert rc == 2 and str(out) in line and "not a prepared dataset" in line
    assert snapshot(out) == {"chapter1.tex": b"months of work"}
    assert [p.name for p in tmp_path.iterdir()] == ["thesis"]


def test_out_on_an_existing_file_is_refused_not_renamed(tmp_path, capsys):
    raw = write_medad_folder(tmp_path / "raw", tiny_split())
    target = tmp_path / "results.csv"
    target.write_text("precious")
    commands = [
        ["prepare", "medad", "--source", str(raw), "--out", str(target), "--workers", "1", "--overwrite"],
        ["synth", "synth-lag", "--out", str(target), "--overwrite"],
    ]
    for argv in commands:
        assert main(argv) == 2
        line = error_line(capsys.readouterr().err, argv[0])
        assert str(target) in line and "is a file" in line
    assert target.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "results.csv"]


def test_a_prepared_dataset_is_replaced_only_with_overwrite(tmp_path, capsys):
    raw = write_medad_folder(tmp_path / "raw", tiny_split())
    out = tmp_path / "prepared"
    argv = ["prepare", "medad", "--source", str(raw), "--out", str(out), "--workers", "1"]
    assert main([*argv, "--image-size", "8"]) == 0
    assert main([*argv, "--image-size", "16"]) == 2
    line = error_line(capsys.readouterr().err, "prepare")
    assert str(out) in line and "already holds a prepared dataset" in line and "--overwrite" in line
    assert load_prepared(out).images.shape[1:] == (8, 8)
    assert main([*argv, "--image-size", "16", "--overwrite"]) == 0
    assert load_prepared(out).images.shape[1:] == (16, 16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared", "raw"]  # no old or temporary copy


def test_keep_raw_never_replaces_a_users_medad_folder(tmp_path, capsys):
    mine = write_medad_folder(tmp_path / "LAG", tiny_split())  # real data: data.json, images/, masks/
    before = snapshot(mine)
    argv = ["synth", "synth-lag", "--out", str(tmp_path / "p"), "--keep-raw", str(mine), "--overwrite"]
    assert main(argv) == 2
    line = error_line(capsys.readouterr().err, "synth")
    assert "--keep-raw" in line and str(mine) in line and "not a Med-AD folder written by sagan" in line
    assert snapshot(mine) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LAG"]


# --------------------------------------------------------------------------------------------
# Row 7 (data): broken files are one-line errors naming the file and the fix
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def prepared(tmp_path):
    return make_tiny_dataset(tmp_path / "tiny", size=20, n_train=4, n_unl=4, n_test=2)


def test_truncated_images_npy_is_named(prepared, tmp_path, capsys):
    images = prepared / "images.npy"
    images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    assert main(["splits", str(prepared), "--out", str(tmp_path / "s.json")]) == 2
    line = error_line(capsys.readouterr().err, "splits")
    assert f"{images} is truncated" in line and "--overwrite" in line


def test_index_without_the_required_columns_is_named(prepared, tmp_path, capsys):
    index = prepared / "index.csv"
    rows = [line.split(",")[:2] for line in index.read_text().splitlines()]  # name, label: no pool, ...
    index.write_text("".join(",".join(r) + "\n" for r in rows))
    assert main(["splits", str(prepared), "--out", str(tmp_path / "s.json")]) == 2
    line = error_line(capsys.readouterr().err, "splits")
    assert f"{index} lacks the column(s) pool, boxes, mask" in line


@pytest.mark.parametrize(
    "content",
    [
        b'{"train": {"0": null, "unlabeled": {"0": [], "1": []}}, "test": {"0": [], "1": []}}',
        b'{"train": {"0": "img000.png", "unlabeled": {"0": [], "1": []}}, "test": {"0": [], "1": []}}',
        b'{"train": "\xe9t\xe9"}',  # not UTF-8
    ],
    ids=["null-list", "string-for-a-list", "latin-1"],
)
def test_malformed_lag_data_json_is_named(tmp_path, capsys, content):
    split = tiny_split()
    folder = write_medad_folder(tmp_path / "LAG", split)
    (folder / "data.json").write_bytes(content)
    (tmp_path / "split.json").write_text(json.dumps(split))
    argv = ["prepare", "lag", "--source", str(folder), "--out", str(tmp_path / "p")]
    assert main([*argv, "--split", str(tmp_path / "split.json"), "--workers", "1"]) == 2
    line = error_line(capsys.readouterr().err, "prepare")
    assert f"{folder}: data.json is not a Med-AD split file" in line and "original data.json" in line
    assert not (tmp_path / "p").exists()


def test_nan_ratio_is_named(prepared, tmp_path, capsys):
    assert main(["splits", str(prepared), "--out", str(tmp_path / "s.json"), "--ratios", "0.2,nan"]) == 2
    line = error_line(capsys.readouterr().err, "splits")
    assert "--ratios: nan is outside [0, 1]" in line
    assert not (tmp_path / "s.json").exists()


# --------------------------------------------------------------------------------------------
# Row 8: hostile sources, a symlink loop and zip bombs
# --------------------------------------------------------------------------------------------


def test_symlink_loop_in_a_folder_source_is_read_once(tmp_path):
    split = tiny_split()
    folder = write_medad_folder(tmp_path / "src", split)
    (folder / "images" / "up").symlink_to("..")  # two links back to the root: an endless tree
    (folder / "images" / "again").symlink_to("..")
    (folder / "masks" / "imgs").symlink_to("../images")  # a second path to a folder, not a loop
    # 3 GiB of address space: the old unbounded walk fails fast instead of filling the machine
    r = run_sagan("prepare", "medad", "--source", folder, "--out", tmp_path / "p", "--workers", "1",
                  memory_limit=3 * GiB)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "skipping images/up: it leads to" in r.stderr and "symlink loop" in r.stderr
    ds = load_prepared(tmp_path / "p")
    assert list(ds.index["name"]) == [n for n, _l, _p in split_entries(split)]
    assert len(ds.masks) == len(split["train"]["unlabeled"]["1"]) + len(split["test"]["1"])


PEAK_RSS = (  # runs a command, then reports the largest resident set of it and its children (KiB)
    "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
    "print('peak_kib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(rc)"
)


def prepare_with_peak(source: Path, out: Path) -> tuple[int, str, int]:
    """`sagan prepare medad` of `source` with two workers: (exit status, stderr, peak RSS in bytes)."""
    cmd = [sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "sagan.cli", "prepare", "medad"]
    cmd += ["--source", str(source), "--out", str(out), "--workers", "2"]
    r = subprocess.run(
        cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600
    )
    peak = int(r.stderr.rsplit("peak_kib ", 1)[1].split()[0]) * 1024
    return r.returncode, r.stderr.rsplit("peak_kib ", 1)[0], peak


class Zeros:
    """A file object of `size` zero bytes, read in chunks (builds a bomb without holding it)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


BOMB = "images/img000.png"  # the first image of tiny_split()


def build_bomb(tmp_path: Path, form: str) -> Path:
    """A Med-AD source whose first image is 1 GiB of zeros: deflated zip, tar.gz or a sparse file."""
    folder = write_medad_folder(tmp_path / "src", tiny_split())
    (folder / BOMB).unlink()
    if form == "dir":
        with open(folder / BOMB, "wb") as fh:
            fh.truncate(GiB)  # sparse: takes no disk space
        return folder
    out = tmp_path / f"bomb.{form}"
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    if form == "zip":
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in files:
                zf.write(p, p.relative_to(folder).as_posix())
            with zf.open(BOMB, "w") as fh:
                zeros = bytes(1 << 20)
                for _ in range(GiB >> 20):
                    fh.write(zeros)
    else:
        with tarfile.open(out, "w:gz", compresslevel=1) as tf:
            info = tarfile.TarInfo(BOMB)
            info.size = GiB
            tf.addfile(info, Zeros(GiB))
            for p in files:
                tf.add(p, p.relative_to(folder).as_posix())
    return out


@pytest.mark.parametrize("form", ["zip", "tar.gz", "dir"])
def test_a_huge_member_is_refused_before_it_is_read(tmp_path, form):
    source = build_bomb(tmp_path, form)
    rc, err, peak = prepare_with_peak(source, tmp_path / "p")
    assert rc == 2, err[-2000:]
    line = error_line(err, "prepare")  # the tar stream: one line; zip and folder: a list that starts so
    assert BOMB in err and "1024 MiB, above the 256 MiB limit" in err, err[-2000:]
    assert str(source) in line
    assert peak < 512 << 20, f"peak resident memory {peak >> 20} MiB"
    assert not (tmp_path / "p").exists()


def test_a_zip_header_that_lies_about_the_size_costs_no_memory(tmp_path):
    bomb = build_bomb(tmp_path, "zip")
    data = bytearray(bomb.read_bytes())
    with zipfile.ZipFile(bomb) as zf:
        info = zf.getinfo(BOMB)
        cd = zf.start_dir
    # the uncompressed size says 1000 bytes, in the local header (offset 22) and the central
    # directory entry (offset 24); the deflate stream still holds 1 GiB of zeros
    data[info.header_offset + 22 : info.header_offset + 26] = (1000).to_bytes(4, "little")
    entry = cd  # the first entry of the central directory
    while data[entry + 46 : entry + 46 + len(BOMB)] != BOMB.encode():
        entry = data.index(b"PK\x01\x02", entry + 4)
    data[entry + 24 : entry + 28] = (1000).to_bytes(4, "little")
    bomb.write_bytes(bytes(data))
    rc, err, peak = prepare_with_peak(bomb, tmp_path / "p")
    assert rc == 2 and BOMB in err, err[-2000:]
    assert peak < 512 << 20, f"peak resident memory {peak >> 20} MiB"


# --------------------------------------------------------------------------------------------
# Row 9: leftovers of killed runs are removed by the next run of the same output
# --------------------------------------------------------------------------------------------

# runs the sagan CLI, but the process sends itself SIGNAL when it first calls os.FUNCTION: a kill at
# an exact point (the rename that puts a finished folder or file into place)
KILL_AT = (
    "import os, signal, sys\n"
    "def hit(*a, **k):\n"
    "    os.kill(os.getpid(), getattr(signal, sys.argv[1]))\n"
    "setattr(os, sys.argv[2], hit)\n"
    "from sagan.cli import main\n"
    "sys.exit(main(sys.argv[3:]))\n"
)


def sagan_signalled_at(sig: str, function: str, *args) -> subprocess.Popen:
    cmd = [sys.executable, "-c", KILL_AT, sig, function, *map(str, args)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_killed_synth_leaves_nothing_after_the_next_run(tmp_path):
    out = tmp_path / "data" / "synth-lag"
    out.parent.mkdir()
    (out.parent / ".synth-lag.notes").write_text("a user's file of a similar name")
    (out.parent / ".synth-lag.tmp-mine").mkdir()  # not one of sagan's patterns either
    cmd = [sys.executable, "-m", "sagan.cli", "synth", "synth-lag", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL, start_new_session=True)
    while not any(out.parent.glob(".synth-lag.medad-*/synth-lag/images/*.png")):  # rendering
        assert p.poll() is None, "synth finished before it could be killed"
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)  # the whole job, workers included, as a cluster's scancel does
    p.wait()
    while _group_alive(p.pid):
        time.sleep(0.05)
    assert any(n.startswith(".synth-lag.medad-") for n in leftovers(out))  # the kill left its folder
    r = run_sagan("synth", "synth-lag", "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    assert leftovers(out) == [".synth-lag.notes", ".synth-lag.tmp-mine"]
    assert len(load_prepared(out).index) > 0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_killed_prepare_leaves_nothing_after_the_next_run(tmp_path):
    raw = write_medad_folder(tmp_path / "raw", tiny_split())
    out = tmp_path / "prepared"
    args = ["prepare", "medad", "--source", raw, "--out", out, "--workers", "1"]
    p = sagan_signalled_at("SIGKILL", "rename", *args)  # killed as the finished folder is renamed
    assert p.wait() == -signal.SIGKILL
    (left,) = leftovers(out)
    assert left.startswith(".prepared.tmp-") and (tmp_path / left / "images.npy").is_file()
    r = run_sagan(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert leftovers(out) == [] and len(load_prepared(out).index) == len(split_entries(tiny_split()))


def test_killed_atomic_write_leaves_nothing_after_the_next_run(prepared, tmp_path):
    out = tmp_path / "splits.json"
    p = sagan_signalled_at("SIGKILL", "replace", "splits", prepared, "--out", out)
    assert p.wait() == -signal.SIGKILL
    (left,) = leftovers(out)
    assert left.startswith(".splits.json.") and left.endswith(".tmp")
    r = run_sagan("splits", prepared, "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    assert leftovers(out) == [] and "table1" in json.loads(out.read_text())


def test_a_temporary_folder_in_use_is_never_removed(tmp_path):
    raw = write_medad_folder(tmp_path / "raw", tiny_split())
    out = tmp_path / "prepared"
    args = ["prepare", "medad", "--source", raw, "--out", out, "--workers", "1"]
    p = sagan_signalled_at("SIGSTOP", "rename", *args)  # stops, alive, as it renames its folder
    try:
        _, status = os.waitpid(p.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status)
        (busy,) = leftovers(out)
        before = snapshot(tmp_path / busy)
        r = run_sagan(*args)  # a second run of the same output meanwhile
        assert r.returncode == 0, r.stderr[-2000:]
        assert leftovers(out) == [busy] and snapshot(tmp_path / busy) == before
    finally:
        p.kill()
        p.wait()
    r = run_sagan(*args, "--overwrite")  # its writer is dead now: the folder is stale
    assert r.returncode == 0, r.stderr[-2000:]
    assert leftovers(out) == []


# --------------------------------------------------------------------------------------------
# Row 10 (data): hashes, label columns and ratios are checked where they are given
# --------------------------------------------------------------------------------------------


def test_a_sha256_that_is_not_a_hash_is_refused(tmp_path, capsys):
    archive = pack(write_medad_folder(tmp_path / "LAG", tiny_split()), "tar.gz")
    out = str(tmp_path / "raw")
    commands = [  # port 9 (discard): nothing is fetched, the hash is refused first
        ["download", "lag", "--out", out, "--source", "http://127.0.0.1:9/LAG.tar.gz#sha256=zz"],
        ["download", "lag", "--out", out, "--source", str(archive), "--sha256", "zz"],
        ["check-sources", "--dataset", "lag=http://127.0.0.1:9/LAG.tar.gz#sha256=zz"],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "'zz' is not a SHA-256 hash (64 hex digits)" in err, err
    assert not (tmp_path / "raw" / "lag.source.json").exists()


def test_rsna_target_that_is_not_0_or_1_is_named(tmp_path, capsys):
    split = tiny_split()
    raw = write_rsna_raw(tmp_path / "rsna", split)
    labels = raw / "stage_2_train_labels.csv"
    lines = labels.read_text().splitlines()
    yes_no = [lines[0]] + [line[:-1] + {"1": "yes", "0": "no"}[line[-1]] for line in lines[1:]]
    labels.write_text("\n".join(yes_no) + "\n")
    (tmp_path / "split.json").write_text(json.dumps(split))
    argv = ["prepare", "rsna", "--source", str(raw), "--out", str(tmp_path / "p"), "--workers", "1"]
    assert main([*argv, "--split", str(tmp_path / "split.json")]) == 2
    line = error_line(capsys.readouterr().err, "prepare")
    assert "stage_2_train_labels.csv column Target holds '" in line and "0 or 1 is expected" in line


def test_negative_ratio_is_refused_at_the_option(prepared, tmp_path, capsys):
    out = tmp_path / "s.json"
    argv = ["splits", str(prepared), "--out", str(out), "--ratios=-0.5", "--on-small-pool", "shrink"]
    assert main(argv) == 2
    line = error_line(capsys.readouterr().err, "splits")
    assert "--ratios: -0.5 is outside [0, 1]" in line
    assert not out.exists()
