"""Raw dataset -> prepared dataset (the one format of `sagan.data.prepared`), and the splits summary.

Raw layouts (data.md, "Sources"), read from a folder, a zip or a tar(.gz) archive, at any depth:
    rsna   stage_2_train_labels.csv, stage_2_detailed_class_info.csv, stage_2_train_images/<id>.dcm
    vindr  train.csv, train/<id>.dicom
    medad  images/<name>, data.json (Med-AD split: the labels), optional boxes.csv, masks/<stem>.png
    lag    the Med-AD copy of LAG (same layout as medad), checked against the published split

Preprocessing follows the benchmark authors' chain: DICOM pixel data, MONOCHROME1 inverted (max - x),
non-uint8 min-max scaled to uint8 (truncated, as `astype` does); grayscale; PIL bilinear resize to
512x512 (aspect not kept); PIL bilinear resize to the requested size.

Archives are read member by member: zip and folder members are opened by the worker processes
themselves (random access), a tar stream is read once, in order, by the main process, with at most
a bounded number of members in flight. The archive is never extracted nor held in memory.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import multiprocessing
import os
import sys
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from sagan.atomic import write_atomic
from sagan.data.prepared import load_prepared, split_entries, write_prepared
from sagan.errors import DatasetError

log = logging.getLogger(__name__)

INTERMEDIATE_SIZE = 512  # the authors store 512x512 images and resize again at load time
MASK_THRESHOLD = 128  # a resized mask pixel (0..255) counts as anomalous from here on
PREPROCESSING = (
    "DICOM: pixel_array, MONOCHROME1 inverted (max - x), non-uint8 min-max scaled to uint8 (truncated); "
    "images: grayscale (PIL 'L'); PIL bilinear resize to 512x512 (aspect not kept), then PIL bilinear "
    "resize to image_size. Masks: binarised (nonzero -> 255), same two bilinear resizes, >= 128 -> 1. "
    "Boxes: [x0, y0, x1, y1] as fractions of the raw image width/height."
)
MAX_RECORDED_DISAGREEMENTS = 1000


@dataclass(frozen=True)
class Layout:
    """Where a raw dataset keeps its images and metadata files."""

    image_dir: str  # name of the folder that holds the images (at any depth)
    raw_ext: str | None  # extension of the raw files replacing the split name's (None: name as is)
    decoder: str  # "dicom" | "pil"
    metadata: tuple[str, ...]  # small files read whole, matched by base name
    required: tuple[str, ...]  # of those, the ones that must exist


LAYOUTS = {
    "rsna": Layout(
        "stage_2_train_images",
        ".dcm",
        "dicom",
        ("stage_2_train_labels.csv", "stage_2_detailed_class_info.csv"),
        ("stage_2_train_labels.csv", "stage_2_detailed_class_info.csv"),
    ),
    "vindr": Layout("train", ".dicom", "dicom", ("train.csv",), ("train.csv",)),
    "medad": Layout("images", None, "pil", ("data.json", "boxes.csv"), ("data.json",)),
}
LAYOUTS["lag"] = LAYOUTS["medad"]
CSV_COLUMNS = {
    "stage_2_train_labels.csv": ["patientId", "x", "y", "width", "height", "Target"],
    "stage_2_detailed_class_info.csv": ["patientId", "class"],
    "train.csv": ["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"],
    "boxes.csv": ["name", "x_min", "y_min", "x_max", "y_max"],
}
VINDR_NO_FINDING = 14
MASK_DIR = "masks"


# --------------------------------------------------------------------------------------------
# Image decoding (runs in the worker processes)
# --------------------------------------------------------------------------------------------


def dicom_to_uint8(ds: Any) -> np.ndarray:
    """Pixel data of a pydicom dataset as a 2-D uint8 array (MONOCHROME1 inverted, min-max scaled)."""
    x = ds.pixel_array
    if x.ndim != 2:
        raise ValueError(f"expected one grayscale frame, got pixel array of shape {x.shape}")
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        x = x.max() - x
    if x.dtype != np.uint8:
        x = x.astype(np.float64)
        lo, hi = x.min(), x.max()
        x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
        x = (x * 255).astype(np.uint8)
    return x


def resize_chain(img: Image.Image, image_size: int) -> np.ndarray:
    """Grayscale, bilinear to 512x512, bilinear to image_size (the authors' two-step chain)."""
    img = img.convert("L").resize((INTERMEDIATE_SIZE, INTERMEDIATE_SIZE), Image.BILINEAR)
    if image_size != INTERMEDIATE_SIZE:
        img = img.resize((image_size, image_size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def decode_image(data: bytes, decoder: str, image_size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Raw file bytes -> (preprocessed (S, S) uint8 image, (raw width, raw height))."""
    if decoder == "dicom":
        import pydicom

        ds = pydicom.dcmread(io.BytesIO(data))
        arr = dicom_to_uint8(ds)
        img = Image.fromarray(arr)
    else:
        img = Image.open(io.BytesIO(data))
        img.load()  # decode now, so a truncated file fails here and not later
    return resize_chain(img, image_size), (img.width, img.height)


def decode_mask(data: bytes, image_size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """A mask file -> ((S, S) uint8 of 0/1, (raw width, raw height)); nonzero = anomaly."""
    img = Image.open(io.BytesIO(data))
    raw = np.asarray(img.convert("L"))
    binary = Image.fromarray(np.where(raw > 0, 255, 0).astype(np.uint8))
    return (resize_chain(binary, image_size) >= MASK_THRESHOLD).astype(np.uint8), (img.width, img.height)


_WORKER: dict[str, Any] = {}  # per-process state set by _init_worker (archive handle opened lazily)


def _init_worker(kind: str, path: str, decoder: str, image_size: int) -> None:
    _WORKER.clear()
    _WORKER.update(kind=kind, path=path, decoder=decoder, image_size=image_size)


def _read_payload(payload: Any) -> bytes:
    """Bytes of one member: given inline (tar stream), or read here (folder path, zip member)."""
    if isinstance(payload, bytes):
        return payload
    if _WORKER["kind"] == "zip":
        if "zip" not in _WORKER:
            _WORKER["zip"] = zipfile.ZipFile(_WORKER["path"])
        return _WORKER["zip"].read(payload)
    return Path(payload).read_bytes()


def _decode_task(
    task: tuple[int, str, Any],
) -> tuple[int, np.ndarray | None, tuple[int, int] | None, str | None]:
    row, key, payload = task
    try:
        img, size = decode_image(_read_payload(payload), _WORKER["decoder"], _WORKER["image_size"])
        return row, img, size, None
    except Exception as err:  # reported together, with the file names, by the main process
        return row, None, None, f"{key}: {type(err).__name__}: {err}"


# --------------------------------------------------------------------------------------------
# Raw sources: folder, zip, tar(.gz)
# --------------------------------------------------------------------------------------------


def source_kind(path: Path) -> str:
    """'dir', 'zip' or 'tar' (DatasetError otherwise)."""
    if path.is_dir():
        return "dir"
    if not path.exists():
        raise DatasetError(
            f"{path}: no such file or folder; give the raw archive (zip, tar, tar.gz) or folder"
        )
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise DatasetError(f"{path}: not a folder, zip or tar archive (corrupt or incomplete download?)")


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


def _key(member: str) -> str:
    """'<parent folder>/<file name>', how images are matched whatever the archive's top folders."""
    parts = PurePosixPath(member).parts
    return "/".join(parts[-2:])


def _list_members(path: Path, kind: str) -> dict[str, str]:
    """All files of a folder or zip: member path -> what a worker opens (absolute path / member name)."""
    if kind == "dir":
        out = {}
        for root, _dirs, files in os.walk(path, followlinks=True):
            rel = Path(root).relative_to(path).as_posix()
            for f in files:
                out[f if rel == "." else f"{rel}/{f}"] = os.path.join(root, f)
        return out
    with zipfile.ZipFile(path) as zf:
        return {i.filename: i.filename for i in zf.infolist() if not i.is_dir()}


def _shallowest(members: list[str]) -> str:
    return min(members, key=lambda m: (m.count("/"), m))


class RawSource:
    """A raw dataset on disk, read member by member."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.kind = source_kind(self.path)
        self._members = _list_members(self.path, self.kind) if self.kind != "tar" else None
        self.tar_seen: dict[str, str] = {}  # tar: base name -> member path of metadata files read

    def find(self, basename: str) -> str | None:
        """Member path of the shallowest file with this base name (tar: only of files already read)."""
        if self._members is None:
            return self.tar_seen.get(basename)
        hits = [m for m in self._members if PurePosixPath(m).name == basename]
        return _shallowest(hits) if hits else None

    def read(self, member: str) -> bytes:
        if self.kind == "zip":
            with zipfile.ZipFile(self.path) as zf:
                return zf.read(member)
        return Path(self._members[member]).read_bytes()

    def keyed(self, folder: str) -> dict[str, str]:
        """'<folder>/<file>' -> worker payload, for the files directly inside any folder so named."""
        by_key: dict[str, list[str]] = {}
        for m in self._members:
            parts = PurePosixPath(m).parts
            if len(parts) >= 2 and parts[-2] == folder:
                by_key.setdefault(_key(m), []).append(m)
        return {k: self._members[_shallowest(v)] for k, v in by_key.items()}

    def read_metadata(self, names: tuple[str, ...], stop_after: tuple[str, ...] = ()) -> dict[str, bytes]:
        """Small files by base name (tar: one streaming pass, stopping once `stop_after` are found)."""
        if self.kind != "tar":
            return {n: self.read(m) for n in names if (m := self.find(n)) is not None}
        found: dict[str, bytes] = {}
        with archive_errors(self.path), tarfile.open(self.path, "r|*") as tf:
            for m in tf:
                name = PurePosixPath(m.name).name
                if m.isfile() and name in names and name not in found:
                    found[name] = tf.extractfile(m).read()
                    self.tar_seen[name] = m.name
                    if stop_after and all(n in found for n in stop_after):
                        break
        return found


# --------------------------------------------------------------------------------------------
# The decoding pass
# --------------------------------------------------------------------------------------------


@dataclass
class DecodeResult:
    images: np.ndarray  # (N, S, S) uint8
    sizes: np.ndarray  # (N, 2) raw width, height
    metadata: dict[str, bytes]  # small files met on a tar stream
    masks: dict[str, bytes]  # mask files met on a tar stream: key -> bytes


def _tasks(
    source: RawSource,
    wanted: dict[str, int],
    sem: threading.Semaphore,
    metadata_names: tuple[str, ...],
    collect: DecodeResult,
    collect_masks: bool,
) -> Iterator[tuple[int, str, Any]]:
    """(row, key, payload) for every wanted image; blocks on `sem` so few members are in flight."""
    if source.kind != "tar":
        keyed = source.keyed(wanted_folder(wanted))
        for key, row in wanted.items():
            sem.acquire()
            yield row, key, keyed[key]
        return
    yielded: set[str] = set()
    with tarfile.open(source.path, "r|*") as tf:
        for m in tf:
            if not m.isfile():
                continue
            key, name = _key(m.name), PurePosixPath(m.name).name
            if key in wanted and key not in yielded:  # the first copy wins, as with folders and zips
                yielded.add(key)
                sem.acquire()
                yield wanted[key], key, tf.extractfile(m).read()
            elif name in metadata_names and name not in collect.metadata:
                collect.metadata[name] = tf.extractfile(m).read()
                source.tar_seen[name] = m.name
            elif collect_masks and key.startswith(MASK_DIR + "/"):
                collect.masks[key] = tf.extractfile(m).read()


def wanted_folder(wanted: dict[str, int]) -> str:
    return next(iter(wanted)).split("/")[0]


def _resolve_workers(workers: int) -> int:
    return max(1, workers if workers > 0 else (os.cpu_count() or 1))


def decode_all(
    source: RawSource,
    wanted: dict[str, int],
    decoder: str,
    image_size: int,
    workers: int,
    metadata_names: tuple[str, ...] = (),
    desc: str = "prepare",
) -> DecodeResult:
    """Decode the wanted images (key -> row) in parallel; DatasetError lists every bad or missing file."""
    from tqdm import tqdm

    n = len(wanted)
    result = DecodeResult(
        images=np.zeros((n, image_size, image_size), np.uint8),
        sizes=np.zeros((n, 2), np.int64),
        metadata={},
        masks={},
    )
    if n == 0:
        return result
    workers = _resolve_workers(workers)
    if source.kind == "tar":
        # tasks carry the member's bytes (VinDr DICOMs are up to ~30 MB): keep few in flight
        chunksize, in_flight = 1, workers * 4
    else:  # tasks carry a path or member name; workers read the bytes themselves
        chunksize = max(1, min(32, n // (workers * 8)))
        in_flight = chunksize * workers * 4
    sem = threading.Semaphore(in_flight)  # tasks handed out but whose result is not yet consumed
    done = np.zeros(n, bool)
    errors: list[str] = []
    tasks = _tasks(source, wanted, sem, metadata_names, result, collect_masks=decoder == "pil")
    init_args = (source.kind, str(source.path), decoder, image_size)

    def consume(results: Iterator) -> None:
        with tqdm(total=n, desc=desc, unit="img", mininterval=2.0, file=sys.stderr) as bar:
            for row, img, size, err in results:
                sem.release()
                bar.update()
                done[row] = True
                if err is not None:
                    errors.append(err)
                else:
                    result.images[row] = img
                    result.sizes[row] = size

    with archive_errors(source.path):
        if workers == 1:
            _init_worker(*init_args)
            consume(map(_decode_task, tasks))
        else:
            with multiprocessing.get_context("fork").Pool(workers, _init_worker, init_args) as pool:
                consume(pool.imap_unordered(_decode_task, tasks, chunksize=chunksize))
    missing = [k for k, row in wanted.items() if not done[row]]
    if missing:
        raise DatasetError(
            f"{source.path}: {len(missing)} image(s) named in the split file are missing, e.g. "
            f"{', '.join(missing[:5])}; check that the archive is complete (re-download) and is the right dataset"
        )
    if errors:
        shown = "\n  ".join(errors[:20])
        raise DatasetError(
            f"{source.path}: {len(errors)} image(s) could not be decoded (corrupt or truncated):\n  {shown}"
            + ("\n  ..." if len(errors) > 20 else "")
            + (
                "\nsome DICOMs use a compressed transfer syntax: pip install pylibjpeg pylibjpeg-libjpeg "
                "pylibjpeg-openjpeg (pydicom's decoders), then run again"
                if any("missing dependencies" in e for e in errors)
                else "\nre-download the archive (or replace these files) and run again"
            )
        )
    return result


# --------------------------------------------------------------------------------------------
# Labels and boxes from the raw metadata
# --------------------------------------------------------------------------------------------


def read_csv(data: bytes, filename: str, source: Path) -> pd.DataFrame:
    """A metadata CSV with its expected columns checked (DatasetError names the file)."""
    try:
        df = pd.read_csv(io.BytesIO(data), dtype={c: str for c in ("patientId", "image_id", "name", "class")})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DatasetError(f"{source}: {filename} is not a readable CSV ({err}); re-download it") from None
    need = CSV_COLUMNS[filename]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DatasetError(
            f"{source}: {filename} lacks column(s) {missing}; found {list(df.columns)}, expected {need} "
            "(is this the original file of the dataset?)"
        )
    return df


@dataclass
class RawLabels:
    labels: dict[str, Any]  # raw id -> 0 | 1 | a string saying why it is neither ("other class: ...")
    boxes: dict[str, list[list[float]]]  # raw id -> [[x0, y0, x1, y1]] in raw pixels
    checked_against: list[str]


def rsna_labels(meta: dict[str, bytes], source: Path) -> RawLabels:
    info = read_csv(meta["stage_2_detailed_class_info.csv"], "stage_2_detailed_class_info.csv", source)
    boxes_df = read_csv(meta["stage_2_train_labels.csv"], "stage_2_train_labels.csv", source)
    classes = info.drop_duplicates("patientId").set_index("patientId")["class"]
    labels = {
        pid: {"Normal": 0, "Lung Opacity": 1}.get(cls, f"other class: {cls}") for pid, cls in classes.items()
    }
    boxes: dict[str, list[list[float]]] = {}
    for r in boxes_df[boxes_df["Target"] == 1].itertuples(index=False):
        boxes.setdefault(r.patientId, []).append([r.x, r.y, r.x + r.width, r.y + r.height])
    return RawLabels(labels, boxes, ["stage_2_detailed_class_info.csv", "stage_2_train_labels.csv"])


def vindr_labels(meta: dict[str, bytes], source: Path) -> RawLabels:
    df = read_csv(meta["train.csv"], "train.csv", source)
    finding = df["class_id"] != VINDR_NO_FINDING
    labels = {iid: int(any_finding) for iid, any_finding in finding.groupby(df["image_id"]).any().items()}
    boxes: dict[str, list[list[float]]] = {}
    for r in df[finding & df["x_min"].notna()].itertuples(index=False):
        boxes.setdefault(r.image_id, []).append([r.x_min, r.y_min, r.x_max, r.y_max])
    return RawLabels(labels, boxes, ["train.csv"])


def medad_labels(meta: dict[str, bytes], source: Path) -> RawLabels:
    try:
        own_split = json.loads(meta["data.json"])
        entries = split_entries(own_split)
    except (json.JSONDecodeError, DatasetError) as err:
        raise DatasetError(f"{source}: data.json is not a Med-AD split file ({err})") from None
    labels: dict[str, Any] = {name: label for name, label, _pool in entries}
    boxes: dict[str, list[list[float]]] = {}
    if "boxes.csv" in meta:
        df = read_csv(meta["boxes.csv"], "boxes.csv", source)
        for r in df.itertuples(index=False):
            boxes.setdefault(r.name, []).append([r.x_min, r.y_min, r.x_max, r.y_max])
    return RawLabels(labels, boxes, ["data.json"])


LABEL_READERS: dict[str, Callable[[dict[str, bytes], Path], RawLabels]] = {
    "rsna": rsna_labels,
    "vindr": vindr_labels,
    "medad": medad_labels,
    "lag": medad_labels,
}


def raw_id(name: str, layout: Layout) -> str:
    """Split name -> id used by the raw files and CSVs (`<id>.png` -> `<id>` for the DICOM sets)."""
    return name if layout.raw_ext is None else PurePosixPath(name).stem


def raw_key(name: str, layout: Layout) -> str:
    """Split name -> '<image folder>/<raw file name>'."""
    return f"{layout.image_dir}/{raw_id(name, layout)}{layout.raw_ext or ''}"


def label_check(entries: list[tuple[str, int, str]], raw: RawLabels, layout: Layout) -> dict:
    """Compare the split file's labels with the raw metadata's; every disagreement is listed."""
    disagreements = []
    for name, label, pool in entries:
        got = raw.labels.get(raw_id(name, layout), "missing from the metadata")
        if got != label:
            disagreements.append({"name": name, "pool": pool, "split_label": label, "raw_label": got})
    return {
        "checked_against": raw.checked_against,
        "n_checked": len(entries),
        "n_disagreements": len(disagreements),
        "disagreements": disagreements[:MAX_RECORDED_DISAGREEMENTS],
        "disagreements_truncated": len(disagreements) > MAX_RECORDED_DISAGREEMENTS,
    }


def _fraction_boxes(pixel_boxes: list[list[float]], width: int, height: int) -> str:
    scale = [width, height, width, height]
    return json.dumps([[round(float(v) / s, 6) for v, s in zip(box, scale)] for box in pixel_boxes])


# --------------------------------------------------------------------------------------------
# prepare_dataset
# --------------------------------------------------------------------------------------------


def resolve_source(source: str | Path) -> Path:
    """A raw archive or folder, or the record written by `sagan download` (`<dataset>.source.json`)."""
    source = Path(source)
    if source.is_file() and source.name.endswith(".source.json"):
        try:
            record = json.loads(source.read_text())
            return Path(record["path"])
        except (json.JSONDecodeError, KeyError):
            raise DatasetError(f"{source}: not a download record; run `sagan download` again") from None
    return source


def prepare_dataset(
    dataset: str,
    source: str | Path,
    out: str | Path,
    image_size: int = 64,
    workers: int = 0,
    split: dict | None = None,
    name: str | None = None,
) -> Path:
    """Prepare a raw dataset (rsna | vindr | lag | medad) into `out`; returns `out`.

    `split` (Med-AD structure) selects the images and their pools; default: the published split
    (rsna, vindr, lag) or the source's own data.json (medad). Raw labels are checked against it and
    the disagreements are recorded in meta.json["label_check"] (and logged).
    """
    if dataset not in LAYOUTS:
        raise DatasetError(f"unknown dataset {dataset!r}; known: {', '.join(LAYOUTS)}")
    if image_size < 1:
        raise DatasetError(f"image size must be positive, got {image_size}")
    layout = LAYOUTS[dataset]
    source_path = resolve_source(source)
    raw_source = RawSource(source_path)
    split_origin = "given"
    meta_files: dict[str, bytes] = {}

    if raw_source.kind != "tar" or (dataset == "medad" and split is None):
        # metadata first (a tar stream needs the split before it can choose its images)
        meta_files = raw_source.read_metadata(layout.metadata, stop_after=layout.required)
        _require(meta_files, layout, source_path, raw_source.kind == "tar" and dataset != "medad")
    if split is None:
        if dataset == "medad":
            split, split_origin = json.loads(meta_files["data.json"]), "source data.json"
        else:
            from sagan.data.splits import published_split

            split, split_origin = published_split(dataset), f"published ({dataset})"
    entries = split_entries(split)
    wanted = {raw_key(n, layout): row for row, (n, _l, _p) in enumerate(entries)}
    if raw_source.kind != "tar":
        available = raw_source.keyed(layout.image_dir)
        missing = [k for k in wanted if k not in available]
        if missing:
            raise DatasetError(
                f"{source_path}: {len(missing)} of {len(wanted)} image(s) named in the split file are missing, "
                f"e.g. {', '.join(missing[:5])}; check that the source is complete and is the {dataset} dataset"
            )
        if meta_files:
            LABEL_READERS[dataset](meta_files, source_path)  # fail on bad CSVs before decoding anything

    decoded = decode_all(
        raw_source, wanted, layout.decoder, image_size, workers, layout.metadata, desc=f"prepare {dataset}"
    )
    meta_files = {**decoded.metadata, **meta_files}
    _require(meta_files, layout, source_path, False)
    raw = LABEL_READERS[dataset](meta_files, source_path)

    boxes = [
        _fraction_boxes(raw.boxes.get(raw_id(n, layout), []), *decoded.sizes[row])
        for row, (n, _l, _p) in enumerate(entries)
    ]
    masks, mask_rows = (
        _read_masks(raw_source, decoded, entries, image_size) if layout.decoder == "pil" else (None, None)
    )
    index = pd.DataFrame(
        {
            "name": [n for n, _l, _p in entries],
            "label": [label for _n, label, _p in entries],
            "pool": [p for _n, _l, p in entries],
            "boxes": boxes,
            "mask": mask_rows if mask_rows is not None else [-1] * len(entries),
        }
    )
    check = label_check(entries, raw, layout)
    if check["n_disagreements"]:
        shown = ", ".join(
            f"{d['name']} (split {d['split_label']}, raw {d['raw_label']})"
            for d in check["disagreements"][:5]
        )
        msg = (
            f"{dataset}: {check['n_disagreements']} of {check['n_checked']} split labels disagree with "
            f"{', '.join(check['checked_against'])}, e.g. {shown}; the split file's labels are used "
            "(all listed in meta.json['label_check'])"
        )
        log.warning(msg)
    meta = {
        "dataset": name or _default_name(dataset, raw_source),
        "source": str(source_path.resolve()),
        "source_kind": raw_source.kind,
        "split_origin": split_origin,
        "preprocessing": PREPROCESSING,
        "label_check": check,
        "n_boxes": int(sum(len(raw.boxes.get(raw_id(n, layout), [])) for n, _l, _p in entries)),
        "n_masks": 0 if masks is None else len(masks),
    }
    return write_prepared(out, decoded.images, index, split, meta, masks=masks)


def _require(meta_files: dict[str, bytes], layout: Layout, source: Path, lenient: bool) -> None:
    missing = [n for n in layout.required if n not in meta_files]
    if missing and not lenient:
        raise DatasetError(
            f"{source}: {', '.join(missing)} not found in the source; give the original archive or folder "
            f"(expected {', '.join(layout.required)} and {layout.image_dir}/...)"
        )


def _default_name(dataset: str, source: RawSource) -> str:
    if dataset != "medad":
        return dataset
    member = source.find("data.json")
    parent = PurePosixPath(member).parent.name if member else ""
    if parent:
        return parent
    base = source.path.name
    for ext in (".tar.gz", ".tgz", ".tar", ".zip"):
        base = base.removesuffix(ext)
    return base


def _read_masks(
    source: RawSource, decoded: DecodeResult, entries: list[tuple[str, int, str]], image_size: int
) -> tuple[np.ndarray | None, list[int] | None]:
    """masks/<stem>.png of the split's images (resized like the images), and each image's mask row."""
    if source.kind == "tar":
        files = decoded.masks
    else:
        files = {k: p for k, p in source.keyed(MASK_DIR).items()}
    if not files:
        return None, None
    stacks, rows = [], []
    for row, (name, _l, _p) in enumerate(entries):
        key = f"{MASK_DIR}/{PurePosixPath(name).stem}.png"
        if key not in files:
            rows.append(-1)
            continue
        data = files[key] if isinstance(files[key], bytes) else _read_member(source, files[key])
        try:
            mask, size = decode_mask(data, image_size)
        except Exception as err:
            raise DatasetError(f"{source.path}: {key} is not a readable image ({err}); replace it") from None
        if tuple(size) != tuple(decoded.sizes[row]):
            raise DatasetError(
                f"{source.path}: {key} is {size[0]}x{size[1]} but its image {name} is "
                f"{decoded.sizes[row][0]}x{decoded.sizes[row][1]}; a mask must have its image's size"
            )
        rows.append(len(stacks))
        stacks.append(mask)
    if not stacks:
        return None, None
    return np.stack(stacks), rows


def _read_member(source: RawSource, payload: str) -> bytes:
    if source.kind == "zip":
        with zipfile.ZipFile(source.path) as zf:
            return zf.read(payload)
    return Path(payload).read_bytes()


# --------------------------------------------------------------------------------------------
# CLI handlers
# --------------------------------------------------------------------------------------------


def load_split_file(path: str | Path) -> dict:
    path = Path(path)
    try:
        split = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(f"{path}: cannot read the split file ({err})") from None
    split_entries(split)
    return split


def cli_prepare(args: Any) -> int:
    """`sagan prepare DATASET --source PATH --out DIR [--image-size] [--workers] [--split]`."""
    split = load_split_file(args.split) if args.split else None
    out = prepare_dataset(args.dataset, args.source, args.out, args.image_size, args.workers, split)
    check = load_prepared(out, mmap=True).meta["label_check"]
    print(f"prepared {out} ({check['n_checked']} images, {check['n_disagreements']} label disagreement(s))")
    return 0


def splits_summary(data: str | Path, ratios: list[str], on_small_pool: str = "error") -> dict:
    """Table 1 row, the ingest's label check and the unlabelled set composition for each ratio."""
    from sagan.data.splits import build_unlabeled_set, table1_counts

    ds = load_prepared(data, mmap=True)
    variants: dict[str, dict] = {}
    for ratio in [*ratios, "0_u"]:
        ar = None if ratio == "0_u" else float(ratio)
        try:
            u = build_unlabeled_set(ds.split, ar, on_small_pool)
            variants[ratio] = {k: u[k] for k in ("n_abnormal", "n_normal", "U", "requested_U")}
        except DatasetError as err:  # expected for LAG above 0.6: recorded, not fatal
            variants[ratio] = {"error": str(err)}
    return {
        "dataset": ds.name,
        "table1": table1_counts(ds.split),
        "label_check": ds.meta.get("label_check"),
        "on_small_pool": on_small_pool,
        "unlabeled": variants,
    }


def cli_splits(args: Any) -> int:
    """`sagan splits DATA --out FILE.json [--ratios ...] [--on-small-pool error|shrink]`."""

    ratios = [r.strip() for r in args.ratios.split(",") if r.strip()]
    for r in ratios:
        try:
            float(r)
        except ValueError:
            raise DatasetError(f"--ratios: {r!r} is not a number (give e.g. 0,0.2,0.6)") from None
    summary = splits_summary(args.data, ratios, args.on_small_pool)
    write_atomic(args.out, json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0
