"""Raw sources read member by member: a folder, a zip or a tar(.gz) archive, one small class each.

Every kind answers the same questions: which files it holds (`members`, random-access kinds only),
the bytes of one (`read`), and every file in archive order, once (`stream`). A folder or a zip is read
at random by the worker processes themselves (each opens its own handle); a tar stream can only be
read once, in order, so its members travel as bytes and the small ones met on the way are kept
(`kept`) for later lookups. Archives are never extracted nor held in memory.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import ClassVar

from sagan.errors import DatasetError


@contextlib.contextmanager
def archive_errors(path: Path) -> Iterator[None]:
    """Turn errors of reading the archive itself (truncated, corrupt) into one DatasetError."""
    try:
        yield
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as err:
        raise DatasetError(
            f"{path}: cannot read the archive ({type(err).__name__}: {err}); it is truncated or corrupt "
            "(incomplete download?): download it again"
        ) from None


def member_key(member: str) -> str:
    """'<parent folder>/<file name>', how images are matched whatever the archive's top folders."""
    return "/".join(PurePosixPath(member).parts[-2:])


def shallowest(members: list[str]) -> str:
    return min(members, key=lambda m: (m.count("/"), m))


class Archive:
    """A raw dataset on disk. Member names are POSIX paths relative to the source's root."""

    kind: ClassVar[str]
    random_access: ClassVar[bool] = True  # False: members come only in one pass, in archive order (tar)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._members: list[str] | None = None
        self.keep: Callable[[str], bool] = lambda member: False  # tar: members to hold on to when met
        self.kept: dict[str, bytes] = {}  # tar: the members held on to (member -> bytes)

    # --- random access (folder, zip) -------------------------------------------------------
    def members(self) -> list[str]:
        """Every file, by member name (listed once, on first use)."""
        if self._members is None:
            self._members = self._list()
        return self._members

    def _list(self) -> list[str]:
        raise NotImplementedError

    def read(self, member: str) -> bytes:
        """The bytes of one member (in the main process or a worker)."""
        raise NotImplementedError

    # --- every kind ------------------------------------------------------------------------
    def stream(self) -> Iterator[tuple[str, Callable[[], bytes]]]:
        """(member, read it now) for every file, in archive order."""
        for member in self.members():
            yield member, lambda m=member: self.read(m)

    def find(self, basename: str) -> str | None:
        """The shallowest member with this file name (tar: among those kept so far)."""
        names = self.members() if self.random_access else self.kept
        hits = [m for m in names if PurePosixPath(m).name == basename]
        return shallowest(hits) if hits else None

    def keyed(self, folder: str) -> dict[str, str]:
        """'<folder>/<file>' -> member, for the files directly inside any folder so named (the
        shallowest copy wins; tar: among the members kept so far)."""
        by_key: dict[str, list[str]] = {}
        for m in self.members() if self.random_access else self.kept:
            parts = PurePosixPath(m).parts
            if len(parts) >= 2 and parts[-2] == folder:
                by_key.setdefault(member_key(m), []).append(m)
        return {k: shallowest(v) for k, v in by_key.items()}

    def read_named(self, names: tuple[str, ...], stop_after: tuple[str, ...] = ()) -> dict[str, bytes]:
        """Small files by base name -> bytes (tar: a pass that stops once all of `stop_after` are
        kept, if they are not yet; without `stop_after`, only what earlier passes kept)."""
        with archive_errors(self.path):
            return {n: self.read(m) for n in names if (m := self.find(n)) is not None}


class FolderArchive(Archive):
    kind = "dir"

    def _list(self) -> list[str]:
        out = []
        for root, _dirs, files in os.walk(self.path, followlinks=True):
            rel = Path(root).relative_to(self.path).as_posix()
            out += [f if rel == "." else f"{rel}/{f}" for f in files]
        return out

    def read(self, member: str) -> bytes:
        return (self.path / member).read_bytes()


class ZipArchive(Archive):
    kind = "zip"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._handle: tuple[int, zipfile.ZipFile] | None = None  # (pid, open file): one per process

    def _zip(self) -> zipfile.ZipFile:
        if self._handle is None or self._handle[0] != os.getpid():  # a forked worker opens its own
            self._handle = (os.getpid(), zipfile.ZipFile(self.path))
        return self._handle[1]

    def _list(self) -> list[str]:
        with archive_errors(self.path):
            return [i.filename for i in self._zip().infolist() if not i.is_dir()]

    def read(self, member: str) -> bytes:
        return self._zip().read(member)


class TarArchive(Archive):
    kind = "tar"
    random_access = False

    def members(self) -> list[str]:
        raise DatasetError(f"{self.path}: a tar stream cannot be listed without reading it whole")

    def stream(self) -> Iterator[tuple[str, Callable[[], bytes]]]:
        with archive_errors(self.path), tarfile.open(self.path, "r|*") as tf:
            for m in tf:
                if m.isfile():
                    read = lambda m=m: tf.extractfile(m).read()  # noqa: E731
                    if self.keep(m.name) and m.name not in self.kept:
                        self.kept[m.name] = read()
                        read = lambda m=m: self.kept[m.name]  # noqa: E731
                    yield m.name, read

    def read(self, member: str) -> bytes:
        if member not in self.kept:
            raise DatasetError(f"{self.path}: {member} was not kept while streaming the archive")
        return self.kept[member]

    def read_named(self, names: tuple[str, ...], stop_after: tuple[str, ...] = ()) -> dict[str, bytes]:
        if not all(self.find(n) for n in stop_after):
            keep = self.keep
            self.keep = lambda m: PurePosixPath(m).name in names or keep(m)
            try:
                with contextlib.closing(self.stream()) as members:
                    for _member, _read in members:
                        if all(self.find(n) for n in stop_after):
                            break
            finally:
                self.keep = keep
        return super().read_named(names)


def open_archive(path: str | Path) -> Archive:
    """The reader for a folder, zip or tar archive (DatasetError otherwise)."""
    path = Path(path)
    if path.is_dir():
        return FolderArchive(path)
    if not path.exists():
        raise DatasetError(
            f"{path}: no such file or folder; give the raw archive (zip, tar, tar.gz) or folder"
        )
    if zipfile.is_zipfile(path):
        return ZipArchive(path)
    if tarfile.is_tarfile(path):
        return TarArchive(path)
    raise DatasetError(f"{path}: not a folder, zip or tar archive (corrupt or incomplete download?)")
