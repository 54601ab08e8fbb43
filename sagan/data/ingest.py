"""Raw dataset -> prepared dataset (the one format of `sagan.data.prepared`): `sagan prepare`.

The raw layouts are in `sagan.data.layouts`, the archive kinds (folder, zip, tar) in
`sagan.data.archives`, the image preprocessing and the parallel decoding in `sagan.data.decoding`.
This module puts them together: choose the images of the split, decode them, read labels, boxes and
masks, check the labels against the split, write the prepared folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from sagan.data.archives import Archive, member_key, open_archive
from sagan.data.decoding import PREPROCESSING, Decoded, decode_all, decode_mask
from sagan.data.layouts import (
    LABEL_READERS,
    LAYOUTS,
    MASK_DIR,
    Layout,
    fraction_boxes,
    label_check,
    parse_data_json,
    raw_id,
    raw_key,
)
from sagan.data.outputs import claim_output
from sagan.data.prepared import PREPARED, load_prepared, split_entries, write_prepared
from sagan.data.splits import published_split
from sagan.errors import DatasetError

log = logging.getLogger(__name__)


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
    overwrite: bool = False,
) -> Path:
    """Prepare a raw dataset (rsna | vindr | lag | medad) into `out`; returns `out`.

    `split` (Med-AD structure) selects the images and their pools; default: the published split
    (rsna, vindr, lag) or the source's own data.json (medad). Raw labels are checked against it and
    the disagreements are recorded in meta.json["label_check"] (and logged). An existing prepared
    dataset at `out` is replaced only if `overwrite`; anything else there is never touched.
    """
    if dataset not in LAYOUTS:
        raise DatasetError(f"unknown dataset {dataset!r}; known: {', '.join(LAYOUTS)}")
    if image_size < 1:
        raise DatasetError(f"image size must be positive, got {image_size}")
    claim_output(out, PREPARED, overwrite)  # refuse before hours of decoding, not after
    layout = LAYOUTS[dataset]
    source_path = resolve_source(source)
    archive = open_archive(source_path)
    # what a one-pass (tar) stream holds on to for later: the metadata files and the masks
    archive.keep = lambda m: (
        PurePosixPath(m).name in layout.metadata
        or (layout.decoder == "pil" and member_key(m).startswith(f"{MASK_DIR}/"))
    )
    split_origin = "given"
    meta_files: dict[str, bytes] = {}
    if archive.random_access or (dataset == "medad" and split is None):
        # metadata first (a tar stream is read once more only when its data.json is the split)
        meta_files = archive.read_named(layout.metadata, stop_after=layout.required)
        _require(meta_files, layout, source_path)
    if split is None:
        if dataset == "medad":
            split, split_origin = parse_data_json(meta_files["data.json"], source_path), "source data.json"
        else:
            split, split_origin = published_split(dataset), f"published ({dataset})"
    entries = split_entries(split)
    wanted = {raw_key(n, layout): row for row, (n, _l, _p) in enumerate(entries)}
    if archive.random_access:  # fail before decoding anything (a tar stream says so after its pass)
        available = archive.keyed(layout.image_dir)
        missing = [k for k in wanted if k not in available]
        if missing:
            raise DatasetError(
                f"{source_path}: {len(missing)} of {len(wanted)} image(s) named in the split file are missing, "
                f"e.g. {', '.join(missing[:5])}; check that the source is complete and is the {dataset} dataset"
            )
    if meta_files:
        LABEL_READERS[dataset](meta_files, source_path)  # fail on bad CSVs before decoding anything

    decoded = decode_all(archive, wanted, layout.decoder, image_size, workers, desc=f"prepare {dataset}")
    meta_files = {**archive.read_named(layout.metadata), **meta_files}
    _require(meta_files, layout, source_path)
    raw = LABEL_READERS[dataset](meta_files, source_path)

    boxes = [
        fraction_boxes(raw.boxes.get(raw_id(n, layout), []), *decoded.sizes[row])
        for row, (n, _l, _p) in enumerate(entries)
    ]
    masks, mask_rows = (
        _read_masks(archive, decoded, entries, image_size) if layout.decoder == "pil" else (None, None)
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
        log.warning(
            "%s: %d of %d split labels disagree with %s, e.g. %s; the split file's labels are used "
            "(all listed in meta.json['label_check'])",
            dataset,
            check["n_disagreements"],
            check["n_checked"],
            ", ".join(check["checked_against"]),
            shown,
        )
    meta = {
        "dataset": name or _default_name(dataset, archive),
        "source": str(source_path.resolve()),
        "source_kind": archive.kind,
        "split_origin": split_origin,
        "preprocessing": PREPROCESSING,
        "label_check": check,
        "n_boxes": int(sum(len(raw.boxes.get(raw_id(n, layout), [])) for n, _l, _p in entries)),
        "n_masks": 0 if masks is None else len(masks),
    }
    return write_prepared(out, decoded.images, index, split, meta, masks=masks, overwrite=overwrite)


def _require(meta_files: dict[str, bytes], layout: Layout, source: Path) -> None:
    missing = [n for n in layout.required if n not in meta_files]
    if missing:
        raise DatasetError(
            f"{source}: {', '.join(missing)} not found in the source; give the original archive or folder "
            f"(expected {', '.join(layout.required)} and {layout.image_dir}/...)"
        )


def _default_name(dataset: str, archive: Archive) -> str:
    if dataset != "medad":
        return dataset
    member = archive.find("data.json")
    parent = PurePosixPath(member).parent.name if member else ""
    if parent:
        return parent
    base = archive.path.name
    for ext in (".tar.gz", ".tgz", ".tar", ".zip"):
        base = base.removesuffix(ext)
    return base


def _read_masks(
    archive: Archive, decoded: Decoded, entries: list[tuple[str, int, str]], image_size: int
) -> tuple[np.ndarray | None, list[int] | None]:
    """masks/<stem>.png of the split's images (resized like the images), and each image's mask row."""
    files = archive.keyed(MASK_DIR)
    if not files:
        return None, None
    stacks, rows = [], []
    for row, (name, _l, _p) in enumerate(entries):
        key = f"{MASK_DIR}/{PurePosixPath(name).stem}.png"
        if key not in files:
            rows.append(-1)
            continue
        data = archive.read(files[key])
        try:
            mask, size = decode_mask(data, image_size)
        except Exception as err:
            raise DatasetError(f"{archive.path}: {key} is not a readable image ({err}); replace it") from None
        if tuple(size) != tuple(decoded.sizes[row]):
            raise DatasetError(
                f"{archive.path}: {key} is {size[0]}x{size[1]} but its image {name} is "
                f"{decoded.sizes[row][0]}x{decoded.sizes[row][1]}; a mask must have its image's size"
            )
        rows.append(len(stacks))
        stacks.append(mask)
    if not stacks:
        return None, None
    return np.stack(stacks), rows


# --------------------------------------------------------------------------------------------
# CLI handler
# --------------------------------------------------------------------------------------------


def load_split_file(path: str | Path) -> dict:
    path = Path(path)
    try:
        split = json.loads(path.read_text())
        split_entries(split)
    except (OSError, ValueError) as err:  # ValueError: not JSON or not UTF-8; DatasetError: not Med-AD
        raise DatasetError(f"{path}: cannot read the split file ({err}); give a Med-AD split file") from None
    return split


def cli_prepare(args: Any) -> int:
    """`sagan prepare DATASET --source PATH --out DIR [--image-size] [--workers] [--split] [--overwrite]`."""
    split = load_split_file(args.split) if args.split else None
    out = prepare_dataset(
        args.dataset, args.source, args.out, args.image_size, args.workers, split, overwrite=args.overwrite
    )
    check = load_prepared(out, mmap=True).meta["label_check"]
    print(f"prepared {out} ({check['n_checked']} images, {check['n_disagreements']} label disagreement(s))")
    return 0
