"""Ingest of raw datasets into the prepared format, on generated raw data in the real layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sagan.data.ingest import PREPROCESSING, prepare_dataset, resize_chain
from sagan.data.prepared import DatasetError, load_prepared, split_entries
from tests.fakes import pack, split_labels, tiny_split, write_medad_folder


@pytest.mark.parametrize("form", ["dir", "zip", "tar.gz"])
def test_medad_folder_and_archives(tmp_path, form):
    split = tiny_split()
    folder = write_medad_folder(tmp_path / "mydata", split, size=(24, 20), extra_images=2)
    src = pack(folder, form)
    out = prepare_dataset("medad", src, tmp_path / "prepared", image_size=16, workers=2)
    ds = load_prepared(out)
    entries = split_entries(split)
    assert ds.images.shape == (len(entries), 16, 16) and ds.images.dtype == np.uint8
    assert list(ds.index["name"]) == [n for n, _, _ in entries]
    assert list(ds.index["label"]) == [label for _, label, _ in entries]
    assert list(ds.index["pool"]) == [p for _, _, p in entries]
    assert ds.split == split
    assert ds.meta["dataset"] == ("mydata" if form == "dir" else "dataset")
    assert ds.meta["preprocessing"] == PREPROCESSING
    assert ds.meta["label_check"]["n_disagreements"] == 0
    # each image equals the two-step chain applied to its file
    name = split["test"]["1"][0]
    expected = resize_chain(Image.open(folder / "images" / name), 16)
    np.testing.assert_array_equal(ds.images[ds.rows([name])[0]], expected)
    # boxes: fractions of the 24x20 image; masks: only abnormal images, 0/1, square where the box is
    labels = split_labels(split)
    for _row, r in ds.index.iterrows():
        boxes = json.loads(r["boxes"])
        if labels[r["name"]] == 0:
            assert boxes == [] and r["mask"] == -1
        else:
            assert boxes[0] == [6 / 24, 5 / 20, 12 / 24, 10 / 20]
            mask = ds.masks[r["mask"]]
            assert set(np.unique(mask)) <= {0, 1}
            assert mask[5:7, 6:7].all() and mask[:2, :2].sum() == 0 and mask[-3:, -3:].sum() == 0
    assert ds.masks.shape == (len(split["train"]["unlabeled"]["1"]) + len(split["test"]["1"]), 16, 16)


def test_medad_name_argument_and_no_optional_files(tmp_path):
    split = tiny_split(ext=".jpg")
    folder = write_medad_folder(tmp_path / "f", split, boxes=False, masks=False)
    ds = load_prepared(
        prepare_dataset("medad", folder, tmp_path / "p", image_size=8, workers=1, name="synth-x")
    )
    assert ds.meta["dataset"] == "synth-x"
    assert ds.masks is None and set(ds.index["mask"]) == {-1} and set(ds.index["boxes"]) == {"[]"}


def test_medad_missing_image_names_the_file(tmp_path):
    split = tiny_split()
    folder = write_medad_folder(tmp_path / "f", split)
    (folder / "images" / split["test"]["0"][1]).unlink()
    with pytest.raises(DatasetError, match=split["test"]["0"][1]):
        prepare_dataset("medad", folder, tmp_path / "p", workers=1)
    assert not (tmp_path / "p").exists()


def test_medad_corrupt_image_names_the_file(tmp_path):
    split = tiny_split()
    folder = write_medad_folder(tmp_path / "f", split)
    bad = folder / "images" / split["train"]["0"][2]
    bad.write_bytes(bad.read_bytes()[:40])  # truncated PNG
    with pytest.raises(DatasetError, match=f"{split['train']['0'][2]}.*\n.*re-download"):
        prepare_dataset("medad", pack(folder, "zip"), tmp_path / "p", workers=2)


def test_medad_mask_of_wrong_size(tmp_path):
    split = tiny_split()
    folder = write_medad_folder(tmp_path / "f", split)
    stem = split["test"]["1"][0].rsplit(".", 1)[0]
    Image.fromarray(np.ones((3, 3), np.uint8)).save(folder / "masks" / f"{stem}.png")
    with pytest.raises(DatasetError, match=f"masks/{stem}.png is 3x3"):
        prepare_dataset("medad", folder, tmp_path / "p", workers=1)


def test_medad_boxes_csv_wrong_columns(tmp_path):
    folder = write_medad_folder(tmp_path / "f", tiny_split())
    (folder / "boxes.csv").write_text("image,x,y\na.png,1,2\n")
    with pytest.raises(DatasetError, match=r"boxes.csv lacks column\(s\)"):
        prepare_dataset("medad", folder, tmp_path / "p", workers=1)
