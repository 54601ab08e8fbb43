"""The one writer of output folders (`sagan prepare`, `sagan synth`): it never deletes or renames what
sagan did not write.

A folder is filled under a locked temporary name beside the target (`sagan.atomic.temp_dir`) and
renamed into place once complete, so a half-written folder is never found where a finished one is
expected. An existing target is replaced only when it is empty, or when it is a folder of the same
kind that sagan wrote (recognised by its marker and by holding nothing else) and the user passed
`--overwrite`. Anything else (a file, a symbolic link, a folder with other contents) is refused with
one line naming it, before any work starts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sagan.atomic import DISK_FULL, clean_stale, is_temp_of, storage_error, temp_dir
from sagan.errors import DatasetError, SaganError

OVERWRITE_FLAG = "--overwrite"
WORKFLOW_FILES = frozenset({".snakemake_timestamp"})  # Snakemake's stamp inside a directory() output


@dataclass(frozen=True)
class FolderKind:
    """A kind of folder sagan writes: what to call it, the names it holds, and its marker."""

    what: str  # "a prepared dataset"
    entries: frozenset[str]  # every name such a folder may hold
    is_marked: Callable[[Path], bool]  # True if the folder carries the kind's marker

    def foreign_entries(self, folder: Path) -> list[str]:
        """Names in `folder` that a folder of this kind does not hold (empty: it is one of ours)."""
        names = sorted(p.name for p in folder.iterdir())
        known = self.entries | WORKFLOW_FILES
        return [n for n in names if n not in known and not any(is_temp_of(n, e) for e in known)]


def claim_output(out: str | Path, kind: FolderKind, overwrite: bool, option: str = "--out") -> None:
    """Before any work: remove what killed runs of `out` left beside it (`sagan.atomic.clean_stale`),
    and refuse (DatasetError) an `out` that the writer may not replace."""
    out = Path(out)
    clean_stale(out)
    refuse = f"{option} {out}:"
    never = "sagan never deletes or renames what it did not write"
    if out.is_symlink():
        raise DatasetError(f"{refuse} is a symbolic link; give a new or empty folder ({never})")
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{refuse} is a file, not a folder; give a new or empty folder ({never})")
    if not out.exists() or not any(out.iterdir()):
        return
    foreign = kind.foreign_entries(out)
    if foreign or not kind.is_marked(out):
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        holds = f"it holds {shown}" if foreign else "its marker is missing"
        raise DatasetError(
            f"{refuse} exists and is not {kind.what} written by sagan ({holds}); give a new or empty "
            f"folder ({never}; {OVERWRITE_FLAG} replaces only {kind.what} written by sagan)"
        )
    if not overwrite:
        raise DatasetError(
            f"{refuse} already holds {kind.what}; pass {OVERWRITE_FLAG} to replace it, or give another folder"
        )


@contextlib.contextmanager
def writing_folder(
    out: str | Path, kind: FolderKind, overwrite: bool, option: str = "--out", tag: str = "tmp"
) -> Iterator[Path]:
    """A temporary folder to fill; when the block ends without error it replaces `out`."""
    out = Path(out)
    claim_output(out, kind, overwrite, option)
    with temp_dir(out, tag) as tmp:
        try:
            yield tmp
        except OSError as err:  # a full disk: one line naming the output; the temporary folder goes
            if err.errno in DISK_FULL and not isinstance(err, SaganError):
                raise storage_error(out, err) from err
            raise
        claim_output(out, kind, overwrite, option)  # the target may have changed meanwhile
        if out.is_dir() and any(out.iterdir()):  # one of ours, and --overwrite given
            old = out.parent / f".{out.name}.old-{secrets.token_hex(4)}"
            os.rename(out, old)  # a kill from here on leaves `old`, which the next run removes
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)  # replaces an empty folder
