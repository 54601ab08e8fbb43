"""Raw sources read member by member: a folder, a zip or a tar(.gz) archive, one small class each.

Every kind answers the same questions: which files it holds (`members`, random-access kinds only),
the bytes of one (`read`), and every file in archive order, once (`stream`). A folder or a zip is read
at random by the worker processes themselves (each opens its own handle); a tar stream can only be
read once, in order, so its members travel as bytes and the small ones met on the way are kept
(`kept`) for later lookups. Archives are never extracted nor held in memory.

Hostile or damaged sources: a member larger than MAX_MEMBER_BYTES is refused before it is read (zip
and tar headers, a file's size), and no read returns more than its header announced (a lying header
costs nothing). A folder's symbolic links to folders are followed, but each real folder is listed
once: a link back to a folder already listed (a loop, or a second path to it) is skipped, with a
warning that names it. Only regular files are members (no devices, pipes or sockets).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tarfile
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO, ClassVar

from sagan.errors import DatasetError

log = logging.getLogger(__name__)

# One member read into memory: far above any real image (a VinDr DICOM is at most ~60 MB), far
# below what a zip bomb would make a worker allocate.
MAX_MEMBER_BYTES = 256 << 20


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


def read_capped(fh: BinaryIO, size: int, path: Path, member: str) -> bytes:
    """Read a member whose header says `size` bytes: refused above MAX_MEMBER_BYTES before reading,
    and never more than `size` + 1 bytes read (a header that lies about the size is caught)."""
    if size > MAX_MEMBER_BYTES:
        raise DatasetError(
            f"{path}: {member} is {size / 2**20:.0f} MiB, above the {MAX_MEMBER_BYTES >> 20} MiB limit for "
            "one file read into memory (sagan.data.archives.MAX_MEMBER_BYTES; real images are far smaller): "
            "the source is damaged or hostile (a zip bomb?); get a good copy of it"
        )
    data = fh.read(size + 1)
    if len(data) > size:
        raise DatasetError(
            f"{path}: {member} holds more bytes than the {size} its header says: the source is damaged or "
            "hostile; get a good copy of it"
        )
    return data


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
    def known(self) -> list[str]:
        """The members that lookups (`find`, `keyed`) see: every one (tar: those kept so far)."""
        return self.members()

    def stream(self) -> Iterator[tuple[str, Callable[[], bytes]]]:
        """(member, read it now) for every file, in archive order."""
        for member in self.members():
            yield member, lambda m=member: self.read(m)

    def find(self, basename: str) -> str | None:
        """The shallowest member with this file name (tar: among those kept so far)."""
        hits = [m for m in self.known() if PurePosixPath(m).name == basename]
        return shallowest(hits) if hits else None

    def keyed(self, folder: str) -> dict[str, str]:
        """'<folder>/<file>' -> member, for the files directly inside any folder so named (the
        shallowest copy wins; tar: among the members kept so far)."""
        by_key: dict[str, list[str]] = {}
        for m in self.known():
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
        """Breadth first, real folders before links at each level; each real folder listed once."""
        out, seen = [], set()
        todo: deque[tuple[str, str]] = deque([(str(self.path), "")])
        while todo:
            folder, rel = todo.popleft()
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                log.warning(
                    "%s: skipping %s: it leads to %s, a folder already listed (a symlink loop or a second "
                    "path to it); each real folder is read once",
                    self.path,
                    rel.rstrip("/"),
                    os.path.realpath(folder),
                )
                continue
            seen.add((st.st_dev, st.st_ino))
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: (e.is_symlink(), e.name))
            except OSError as err:
                log.warning("%s: cannot list %s (%s); its files are left out", self.path, rel or ".", err)
                continue
            for e in entries:
                if e.is_dir():
                    todo.append((e.path, f"{rel}{e.name}/"))
                elif e.is_file():
                    out.append(f"{rel}{e.name}")
        return out

    def read(self, member: str) -> bytes:
        with open(self.path / member, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise DatasetError(f"{self.path}: {member} is not a regular file; replace it with the image")
            return read_capped(fh, st.st_size, self.path, member)


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
        info = self._zip().getinfo(member)
        with self._zip().open(info) as fh:
            return read_capped(fh, info.file_size, self.path, member)


class TarArchive(Archive):
    kind = "tar"
    random_access = False

    def members(self) -> list[str]:
        raise DatasetError(f"{self.path}: a tar stream cannot be listed without reading it whole")

    def known(self) -> list[str]:
        return list(self.kept)

    def stream(self) -> Iterator[tuple[str, Callable[[], bytes]]]:
        with archive_errors(self.path), tarfile.open(self.path, "r|*") as tf:
            for m in tf:
                if m.isfile():
                    read = lambda m=m: read_capped(tf.extractfile(m), m.size, self.path, m.name)  # noqa: E731
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
