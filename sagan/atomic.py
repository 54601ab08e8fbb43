"""Atomic writing: readers see either the old file (or folder) or the complete new one, never a part.

The bytes go to a temporary sibling (`.<name>.<random>.tmp`; folders: `.<name>.<tag>-<random>`),
which is renamed over the target once complete. Files and folders get the mode the user's umask
gives a new one (as `open` and `mkdir` would), not mkstemp's private 0600.

A process killed mid-write (SIGKILL, out of memory, a cluster's time limit) leaves its temporary
sibling behind; the next write of the same target removes it. A temporary sibling is stale when no
process holds its lock: the writer takes an exclusive `flock` on it for as long as it exists, and the
kernel drops that lock when the writer dies, however it dies. So a concurrent writer's temporary
files are never touched, whatever their age, and only names of the patterns above are ever removed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sagan.errors import SaganError, StorageError

TEMP_DIR_TAGS = ("tmp", "old", "medad")  # folder kinds: being written, being replaced, synth's render


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _lock_new(fd: int) -> bool:
    """Lock a temporary file or folder just created; False if a cleaner removed it before the lock."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    return os.fstat(fd).st_nlink > 0  # a cleaner unlinks while holding the lock: we see it gone


def _stale_pattern(target: Path) -> re.Pattern:
    name = re.escape(target.name)
    tags = "|".join(TEMP_DIR_TAGS)
    return re.compile(rf"\.{name}\.(?:[a-z0-9_]{{8}}\.tmp|(?:{tags})-[a-z0-9_]{{8}})")


def is_temp_of(name: str, target: str | Path) -> bool:
    """True if `name` is the name of a temporary sibling of `target` (a file or folder of ours)."""
    return _stale_pattern(Path(target)).fullmatch(name) is not None


def clean_stale(target: str | Path) -> list[Path]:
    """Remove the temporary siblings of `target` that a killed process left (no lock held); returns them."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    pattern, removed = _stale_pattern(target), []
    for entry in os.scandir(target.parent):
        if not pattern.fullmatch(entry.name) or entry.is_symlink():
            continue
        is_dir = entry.is_dir(follow_symlinks=False)
        try:
            fd = os.open(entry.path, os.O_RDONLY | (os.O_DIRECTORY if is_dir else 0))
        except OSError:
            continue  # gone meanwhile, or not ours to open
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a live process is writing it
            continue
        try:  # removed while holding the lock, so a writer that locks it after us sees it unlinked
            if is_dir:
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
    return removed


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # errors that freeing space cures


def storage_error(path: str | Path, err: OSError) -> StorageError:
    """The one-line error of a write the file system refused, naming `path` and the fix."""
    fix = (
        "free space on that disk and run the command again"
        if err.errno in DISK_FULL
        else "make the folder writable or choose another one, and run the command again"
    )
    return StorageError(f"cannot write {path}: {err.strerror or err}; {fix}")


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write `data` to `path` atomically (parent folders are created, stale temporary files removed).
    A write the file system refuses (disk full, read-only) is a `StorageError` naming `path`; the old
    file, if any, is left as it was."""
    path = Path(path)
    try:
        _write_atomic(path, data)
    except OSError as err:
        if isinstance(err, SaganError):
            raise
        raise storage_error(path, err) from err


def _write_atomic(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    while True:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        if _lock_new(fd):
            break
        os.close(fd)
    try:
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)  # still locked: the lock goes when the file is closed
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def temp_dir(target: str | Path, tag: str = "tmp") -> Iterator[Path]:
    """A locked temporary folder `.<name>.<tag>-<random>` beside `target`; removed on exit unless the
    caller renamed it (into place). Stale ones of `target` are removed first."""
    if tag not in TEMP_DIR_TAGS:
        raise ValueError(f"tag must be one of {TEMP_DIR_TAGS}, got {tag!r}")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    while True:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{tag}-", dir=target.parent))
        fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
        if _lock_new(fd):
            break
        os.close(fd)
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
    finally:
        try:
            if os.path.samestat(os.fstat(fd), os.stat(tmp)):  # still ours under that name
                shutil.rmtree(tmp, ignore_errors=True)
        except FileNotFoundError:
            pass  # renamed into place
        os.close(fd)
