"""Raw image files -> preprocessed uint8 arrays, decoded in parallel worker processes.

Preprocessing follows the benchmark authors' chain: DICOM pixel data, MONOCHROME1 inverted (max - x),
non-uint8 min-max scaled to uint8 (truncated, as `astype` does); grayscale; PIL bilinear resize to
512x512 (aspect not kept); PIL bilinear resize to the requested size.

Workers read zip and folder members themselves (random access); a tar stream is read once, in order,
by the main process, which hands each member's bytes over with at most a bounded number in flight.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from sagan.data.archives import Archive, archive_errors, member_key
from sagan.data.prepared import MASK_THRESHOLD
from sagan.errors import DatasetError

INTERMEDIATE_SIZE = 512  # the authors store 512x512 images and resize again at load time
PREPROCESSING = (
    "DICOM: pixel_array, MONOCHROME1 inverted (max - x), non-uint8 min-max scaled to uint8 (truncated); "
    "images: grayscale (PIL 'L'); PIL bilinear resize to 512x512 (aspect not kept), then PIL bilinear "
    "resize to image_size. Masks: binarised (nonzero -> 255), same two bilinear resizes, >= 128 -> 1. "
    "Boxes: [x0, y0, x1, y1] as fractions of the raw image width/height."
)


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


# --------------------------------------------------------------------------------------------
# The parallel pass
# --------------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}  # per-process state set by _init_worker


def _init_worker(archive: Archive, decoder: str, image_size: int) -> None:
    _WORKER.clear()
    _WORKER.update(archive=archive, decoder=decoder, image_size=image_size)


def _decode_task(
    task: tuple[int, str, bytes | str],
) -> tuple[int, np.ndarray | None, tuple[int, int] | None, str | None]:
    row, key, payload = task  # payload: the member's bytes (tar stream) or its name (read here)
    try:
        data = payload if isinstance(payload, bytes) else _WORKER["archive"].read(payload)
        img, size = decode_image(data, _WORKER["decoder"], _WORKER["image_size"])
        return row, img, size, None
    except DatasetError as err:  # a refused member (too large): its message names it already
        return row, None, None, str(err).removeprefix(f"{_WORKER['archive'].path}: ")
    except Exception as err:  # reported together, with the file names, by the main process
        return row, None, None, f"{key}: {type(err).__name__}: {err}"


def _tasks(archive: Archive, wanted: dict[str, int], sem: threading.Semaphore) -> Iterator[tuple]:
    """(row, key, payload) for every wanted image; blocks on `sem` so few members are in flight."""
    if archive.random_access:
        keyed = archive.keyed(next(iter(wanted)).split("/")[0])
        for key, row in wanted.items():
            sem.acquire()
            yield row, key, keyed[key]
        return
    yielded: set[str] = set()
    for member, read in archive.stream():
        key = member_key(member)
        if key in wanted and key not in yielded:  # the first copy wins (folders, zips: the shallowest)
            yielded.add(key)
            sem.acquire()
            yield wanted[key], key, read()


def resolve_workers(workers: int) -> int:
    return max(1, workers if workers > 0 else (os.cpu_count() or 1))


@dataclass
class Decoded:
    images: np.ndarray  # (N, S, S) uint8
    sizes: np.ndarray  # (N, 2) raw width, height


def decode_all(
    archive: Archive, wanted: dict[str, int], decoder: str, image_size: int, workers: int, desc: str
) -> Decoded:
    """Decode the wanted images (key -> row) in parallel; DatasetError lists every bad or missing file."""
    from tqdm import tqdm

    n = len(wanted)
    result = Decoded(np.zeros((n, image_size, image_size), np.uint8), np.zeros((n, 2), np.int64))
    if n == 0:
        return result
    workers = resolve_workers(workers)
    if archive.random_access:  # tasks carry a member name; workers read the bytes themselves
        chunksize = max(1, min(32, n // (workers * 8)))
        in_flight = chunksize * workers * 4
    else:  # tasks carry the member's bytes (VinDr DICOMs are up to ~30 MB): keep few in flight
        chunksize, in_flight = 1, workers * 4
    sem = threading.Semaphore(in_flight)  # tasks handed out but whose result is not yet consumed
    done = np.zeros(n, bool)
    errors: list[str] = []
    tasks = _tasks(archive, wanted, sem)
    init_args = (archive, decoder, image_size)

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

    with archive_errors(archive.path):
        if workers == 1:
            _init_worker(*init_args)
            consume(map(_decode_task, tasks))
        else:
            with multiprocessing.get_context("fork").Pool(workers, _init_worker, init_args) as pool:
                consume(pool.imap_unordered(_decode_task, tasks, chunksize=chunksize))
    missing = [k for k, row in wanted.items() if not done[row]]
    if missing:
        raise DatasetError(
            f"{archive.path}: {len(missing)} image(s) named in the split file are missing, e.g. "
            f"{', '.join(missing[:5])}; check that the archive is complete (re-download) and is the right dataset"
        )
    if errors:
        shown = "\n  ".join(errors[:20])
        raise DatasetError(
            f"{archive.path}: {len(errors)} image(s) could not be decoded (corrupt or truncated):\n  {shown}"
            + ("\n  ..." if len(errors) > 20 else "")
            + (
                "\nsome DICOMs use a compressed transfer syntax: pip install pylibjpeg pylibjpeg-libjpeg "
                "pylibjpeg-openjpeg (pydicom's decoders), then run again"
                if any("missing dependencies" in e for e in errors)
                else "\nre-download the archive (or replace these files) and run again"
            )
        )
    return result
