"""The one prepared-dataset format shared by synthetic and real data.

A prepared dataset is a folder:
    images.npy   uint8 array (N, H, W), every image of the split file, decoded once
    index.csv    one row per image, row i <-> images[i]:
                 name, label (0 normal / 1 abnormal), pool (train | unlabeled | test | val),
                 boxes (JSON list of [x0, y0, x1, y1] as fractions of width/height; "[]" if none
                 or unknown), mask (row in masks.npy, -1 if none)
    masks.npy    optional uint8 array (M, H, W) of ground-truth anomaly masks (synthetic data)
    split.json   the split file in the Med-AD structure (authoritative for pools and order)
    meta.json    dataset name, source, image size, format version (the marker of a prepared
                 dataset), provenance
It is written by the one writer of output folders (`sagan.data.outputs`): to a temporary sibling
folder, renamed into place, replacing only an earlier prepared dataset and only when asked to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sagan.data.outputs import FolderKind, writing_folder
from sagan.errors import DatasetError

FORMAT_VERSION = 1
# masks are stored as 0/1; a mask resized as 0/255 (bilinear, like the images) is anomalous from here
# on: `sagan prepare` at the prepared size, the evaluator's ground truth at the experiment size
MASK_THRESHOLD = 128
POOLS = ("train", "unlabeled", "test", "val")  # val: the labelled validation split (synthetic sets only)
INDEX_COLUMNS = ["name", "label", "pool", "boxes", "mask"]
FILES = ("images.npy", "index.csv", "split.json", "meta.json")  # and masks.npy if there are masks
REMAKE = "prepare it again (`sagan prepare ... --overwrite` or `sagan synth ... --overwrite`)"


def _has_format_marker(root: Path) -> bool:
    try:
        meta = json.loads((root / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "format_version" in meta


PREPARED = FolderKind("a prepared dataset", frozenset({*FILES, "masks.npy"}), _has_format_marker)


def split_entries(split: dict) -> list[tuple[str, int, str]]:
    """(name, label, pool) for every image of a Med-AD split file, in the canonical order:
    train/0, unlabeled/0, unlabeled/1, test/0, test/1, then val/0, val/1 where the file has a
    labelled validation split {"val": {"0": [...], "1": [...]}} (the synthetic sets; real ones have
    none), file order within each list."""
    try:
        groups = [
            (split["train"]["0"], 0, "train"),
            (split["train"]["unlabeled"]["0"], 0, "unlabeled"),
            (split["train"]["unlabeled"]["1"], 1, "unlabeled"),
            (split["test"]["0"], 0, "test"),
            (split["test"]["1"], 1, "test"),
        ]
        if "val" in split:
            groups += [(split["val"]["0"], 0, "val"), (split["val"]["1"], 1, "val")]
    except (KeyError, TypeError) as err:
        raise DatasetError(
            f"split file {'lacks ' + str(err) if isinstance(err, KeyError) else 'is not a JSON object'}; "
            "expected the Med-AD structure "
            '{"train": {"0": [...], "unlabeled": {"0": [...], "1": [...]}}, "test": {"0": [...], "1": [...]}}'
            ' (and optionally "val": {"0": [...], "1": [...]})'
        ) from None
    for names, label, pool in groups:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DatasetError(f"split file: the {pool} images of label {label} are not a list of file names")
    out = [(name, label, pool) for names, label, pool in groups for name in names]
    seen: set[str] = set()
    dupes = [n for n, _, _ in out if n in seen or seen.add(n)]
    if dupes:
        raise DatasetError(f"split file lists {len(dupes)} name(s) twice, e.g. {dupes[:3]}")
    return out


@dataclass
class PreparedDataset:
    root: Path
    images: np.ndarray  # (N, H, W) uint8
    index: pd.DataFrame
    split: dict
    meta: dict
    masks: np.ndarray | None = None  # (M, H, W) uint8

    @property
    def name(self) -> str:
        return self.meta.get("dataset", self.root.name)

    def rows(self, names: list[str]) -> np.ndarray:
        """Row numbers of the given image names (KeyError names the first missing one)."""
        pos = pd.Series(np.arange(len(self.index)), index=self.index["name"].to_numpy())
        missing = [n for n in names if n not in pos.index]
        if missing:
            raise DatasetError(f"{self.root}: {len(missing)} name(s) not in index.csv, e.g. {missing[:3]}")
        return pos.loc[names].to_numpy()

    def pool(self, pool: str, label: int | None = None) -> pd.DataFrame:
        sel = self.index["pool"] == pool
        if label is not None:
            sel &= self.index["label"] == label
        return self.index[sel]

    def boxes(self, row: int) -> list[list[float]]:
        return json.loads(self.index.at[row, "boxes"])


def write_prepared(
    out: str | Path,
    images: np.ndarray,
    index: pd.DataFrame,
    split: dict,
    meta: dict,
    masks: np.ndarray | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a prepared dataset atomically; an existing one at `out` is replaced only if `overwrite`."""
    out = Path(out)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"images must be uint8 (N, H, W), got {images.dtype} {images.shape}")
    if len(index) != len(images):
        raise ValueError(f"index has {len(index)} rows but there are {len(images)} images")
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise ValueError(f"index lacks columns {missing}")
    meta = {
        **meta,
        "format_version": FORMAT_VERSION,
        "image_size": int(images.shape[1]),
        "n_images": len(images),
    }
    with writing_folder(out, PREPARED, overwrite) as tmp:
        np.save(tmp / "images.npy", images)
        if masks is not None:
            np.save(tmp / "masks.npy", masks.astype(np.uint8))
        index[INDEX_COLUMNS + [c for c in index.columns if c not in INDEX_COLUMNS]].to_csv(
            tmp / "index.csv", index=False
        )
        (tmp / "split.json").write_text(json.dumps(split))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return out


def load_prepared(root: str | Path, mmap: bool = False) -> PreparedDataset:
    """Load a prepared dataset (images into memory unless mmap)."""
    root = Path(root)
    need = ["images.npy", "index.csv", "split.json", "meta.json"]
    missing = [n for n in need if not (root / n).is_file()]
    if missing:
        raise DatasetError(
            f"{root} is not a prepared dataset (missing {', '.join(missing)}); "
            "create one with `sagan synth NAME --out DIR` or `sagan prepare DATASET --source PATH --out DIR`"
        )
    images = _load_array(root / "images.npy", mmap)
    try:
        index = pd.read_csv(root / "index.csv", keep_default_na=False, dtype={"name": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DatasetError(f"{root}/index.csv is not a readable CSV ({err}); {REMAKE}") from None
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise DatasetError(
            f"{root}/index.csv lacks the column(s) {', '.join(missing)} (found {', '.join(index.columns)}; "
            f"needed {', '.join(INDEX_COLUMNS)}); {REMAKE}"
        )
    if len(index) != len(images):
        raise DatasetError(f"{root}/index.csv has {len(index)} rows but images.npy has {len(images)} images")
    masks = _load_array(root / "masks.npy", False) if (root / "masks.npy").is_file() else None
    split, meta = _load_json(root / "split.json"), _load_json(root / "meta.json")
    return PreparedDataset(root=root, images=images, index=index, split=split, meta=meta, masks=masks)


def _load_array(path: Path, mmap: bool) -> np.ndarray:
    """A (N, H, W) uint8 array of a prepared dataset; DatasetError names a truncated or foreign file."""
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DatasetError(f"{path} is truncated or not a numpy array ({err}); {REMAKE}") from None
    if arr.dtype != np.uint8 or arr.ndim != 3:
        raise DatasetError(
            f"{path} holds a {arr.dtype} array of shape {arr.shape}, not (N, H, W) uint8; {REMAKE}"
        )
    return arr


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path} is not readable JSON ({err}); {REMAKE}") from None
