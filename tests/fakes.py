"""Fake raw datasets in the exact real layouts (data.md), for tests and benchmarks.

Builders write real files: DICOMs through pydicom (RSNA-like 8-bit MONOCHROME2, VinDr-like 12/16-bit
with some MONOCHROME1), the real CSV columns with several rows per image, JPEG/PNG Med-AD folders.
Every builder is deterministic for a given seed. `pack(folder, form)` turns a folder into the zip or
tar(.gz) form (one top-level folder, as users' archives often have).
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image


def tiny_split(
    n_train: int = 4, n_unl0: int = 3, n_unl1: int = 3, n_test: int = 2, ext: str = ".png"
) -> dict:
    """A small Med-AD split with names img000<ext>, img001<ext>, ..."""
    counter = iter(range(10**6))

    def names(k: int) -> list[str]:
        return [f"img{next(counter):03d}{ext}" for _ in range(k)]

    return {
        "train": {"0": names(n_train), "unlabeled": {"0": names(n_unl0), "1": names(n_unl1)}},
        "test": {"0": names(n_test), "1": names(n_test)},
    }


def split_labels(split: dict) -> dict[str, int]:
    """name -> label of every image of a Med-AD split."""
    out = {}
    for names, label in (
        (split["train"]["0"], 0),
        (split["train"]["unlabeled"]["0"], 0),
        (split["train"]["unlabeled"]["1"], 1),
        (split["test"]["0"], 0),
        (split["test"]["1"], 1),
    ):
        out.update(dict.fromkeys(names, label))
    return out


def _pixels(
    rng: np.random.Generator, h: int, w: int, label: int, dtype=np.uint8, high: int = 255
) -> np.ndarray:
    """A smooth gradient plus noise; abnormal images get a bright square (so labels are visible)."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = (xx + yy) / max(1, h + w - 2) * 0.6 + rng.uniform(0, 0.2, (h, w))
    if label == 1:
        base[h // 4 : h // 2, w // 4 : w // 2] += 0.3
    return (np.clip(base, 0, 1) * high).astype(dtype)


# --------------------------------------------------------------------------------------------
# Med-AD folders (medad / LAG)
# --------------------------------------------------------------------------------------------


def write_medad_folder(
    root: str | Path,
    split: dict,
    size: tuple[int, int] = (24, 20),
    seed: int = 0,
    boxes: bool = True,
    masks: bool = True,
    extra_images: int = 0,
) -> Path:
    """A Med-AD folder: images/<name> (JPEG or PNG by the name), data.json, boxes.csv, masks/<stem>.png.

    Abnormal images get a box (two for every other one) and a mask covering the bright square.
    `extra_images` adds images that the split does not name (the ingest must skip them).
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    rows = []
    labels = split_labels(split)
    extras = {f"extra{i:03d}.png": 0 for i in range(extra_images)}
    for i, (name, label) in enumerate({**labels, **extras}.items()):
        Image.fromarray(_pixels(rng, h, w, label)).save(root / "images" / name)
        if label == 1:
            x0, y0, x1, y1 = w // 4, h // 4, w // 2, h // 2
            if boxes:
                rows.append(f"{name},{x0},{y0},{x1},{y1}")
                if i % 2:
                    rows.append(f"{name},0,0,{w // 8},{h // 8}")
            if masks:
                (root / "masks").mkdir(exist_ok=True)
                m = np.zeros((h, w), np.uint8)
                m[y0:y1, x0:x1] = 1
                Image.fromarray(m).save(root / "masks" / f"{PurePosixPath(name).stem}.png")
    (root / "data.json").write_text(json.dumps(split))
    if boxes:
        (root / "boxes.csv").write_text("name,x_min,y_min,x_max,y_max\n" + "".join(r + "\n" for r in rows))
    return root


# --------------------------------------------------------------------------------------------
# Archive forms
# --------------------------------------------------------------------------------------------


def pack(folder: str | Path, form: str, out: str | Path | None = None, top: str | None = "dataset") -> Path:
    """Folder -> 'dir' (unchanged), 'zip', 'tar' or 'tar.gz' archive; files under `top/` if given."""
    folder = Path(folder)
    if form == "dir":
        return folder
    out = Path(out) if out else folder.parent / f"{folder.name}.{form}"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    arc = [
        (p, f"{top}/{p.relative_to(folder).as_posix()}" if top else p.relative_to(folder).as_posix())
        for p in files
    ]
    if form == "zip":
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for p, name in arc:
                zf.write(p, name)
    elif form in ("tar", "tar.gz"):
        with tarfile.open(out, "w:gz" if form == "tar.gz" else "w") as tf:
            for p, name in arc:
                tf.add(p, name)
    else:
        raise ValueError(form)
    return out


def dicom_bytes(
    pixels: np.ndarray, photometric: str = "MONOCHROME2", bits_stored: int | None = None, uid_seed: str = "1"
) -> bytes:
    """A real DICOM file (explicit VR little endian, uncompressed) holding `pixels`."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[uid_seed])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape
    bits = 8 if pixels.dtype == np.uint8 else 16
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
