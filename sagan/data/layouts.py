"""Raw dataset layouts (data.md, "Sources"): where each dataset keeps its images and metadata, and
how its labels and boxes are read from that metadata.

    rsna   stage_2_train_labels.csv, stage_2_detailed_class_info.csv, stage_2_train_images/<id>.dcm
    vindr  train.csv, train/<id>.dicom
    medad  images/<name>, data.json (Med-AD split: the labels), optional boxes.csv, masks/<stem>.png
    lag    the Med-AD copy of LAG (same layout as medad), checked against the published split
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from sagan.data.prepared import split_entries
from sagan.errors import DatasetError

MAX_RECORDED_DISAGREEMENTS = 1000
VINDR_NO_FINDING = 14
MASK_DIR = "masks"


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


def _numeric(
    df: pd.DataFrame, column: str, filename: str, source: Path, allowed: tuple[int, ...] | None = None
) -> pd.Series:
    """A CSV column as numbers; DatasetError names the file, the column and the first bad value."""
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() if allowed is None else ~values.isin(allowed)
    if bad.any():
        row = bad.to_numpy().nonzero()[0][0]
        want = "a number" if allowed is None else " or ".join(map(str, allowed))
        raise DatasetError(
            f"{source}: {filename} column {column} holds {df[column].iloc[row]!r} (line {df.index[row] + 2}), "
            f"where {want} is expected; give the dataset's original {filename}"
        )
    return values


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
    target = _numeric(boxes_df, "Target", "stage_2_train_labels.csv", source, allowed=(0, 1))
    positive = boxes_df[target == 1]
    for column in ("x", "y", "width", "height"):
        _numeric(positive, column, "stage_2_train_labels.csv", source)
    boxes: dict[str, list[list[float]]] = {}
    for r in positive.itertuples(index=False):
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


def parse_data_json(data: bytes, source: Path) -> dict:
    """A Med-AD data.json (the split file of medad and LAG folders), its structure checked."""
    try:
        split = json.loads(data)
        split_entries(split)
    except (ValueError, DatasetError) as err:  # ValueError: not JSON, not UTF-8
        raise DatasetError(
            f"{source}: data.json is not a Med-AD split file ({err}); restore the dataset's original data.json"
        ) from None
    return split


def medad_labels(meta: dict[str, bytes], source: Path) -> RawLabels:
    entries = split_entries(parse_data_json(meta["data.json"], source))
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


def fraction_boxes(pixel_boxes: list[list[float]], width: int, height: int) -> str:
    """Boxes in raw pixels -> JSON of [x0, y0, x1, y1] as fractions of the raw width and height."""
    scale = [width, height, width, height]
    return json.dumps([[round(float(v) / s, 6) for v, s in zip(box, scale)] for box in pixel_boxes])
