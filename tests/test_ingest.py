"""Ingest of raw datasets into the prepared format, on generated raw data in the real layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sagan.data.decoding import PREPROCESSING, resize_chain
from sagan.data.ingest import prepare_dataset
from sagan.data.prepared import load_prepared, split_entries
from sagan.errors import DatasetError
from tests.fakes import (
    dicom_bytes,
    pack,
    split_labels,
    tiny_split,
    write_medad_folder,
    write_rsna_raw,
    write_vindr_raw,
)


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


# --------------------------------------------------------------------------------------------
# DICOM decoding
# --------------------------------------------------------------------------------------------


def _decode_dicom(data: bytes) -> np.ndarray:
    import io

    import pydicom

    from sagan.data.decoding import dicom_to_uint8

    return dicom_to_uint8(pydicom.dcmread(io.BytesIO(data)))


def test_dicom_8bit_monochrome2_is_kept_as_is():
    px = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    np.testing.assert_array_equal(_decode_dicom(dicom_bytes(px)), px)


def test_dicom_16bit_is_min_max_scaled_and_monochrome1_inverted():
    px = np.array([[100, 1100], [2100, 4095]], np.uint16)
    scaled = ((px - 100) / (4095 - 100) * 255).astype(np.uint8)
    np.testing.assert_array_equal(_decode_dicom(dicom_bytes(px, bits_stored=12)), scaled)
    inv = (4095 - px).astype(np.float64)
    expected = ((inv - inv.min()) / (inv.max() - inv.min()) * 255).astype(np.uint8)
    np.testing.assert_array_equal(_decode_dicom(dicom_bytes(px, "MONOCHROME1", 12)), expected)
    assert _decode_dicom(dicom_bytes(np.full((3, 3), 7, np.uint16))).max() == 0  # constant image


# --------------------------------------------------------------------------------------------
# RSNA and VinDr raw layouts (small splits; the full Table 1 scale is in test_splits.py)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["dir", "zip", "tar"])
def test_rsna_layout(tmp_path, form):
    split = tiny_split()
    raw = write_rsna_raw(tmp_path / "rsna", split, form="dir", size=8, n_other=4)
    src = pack(raw, form, top="rsna-pneumonia-detection-challenge")
    ds = load_prepared(prepare_dataset("rsna", src, tmp_path / "p", image_size=8, workers=2, split=split))
    entries = split_entries(split)
    assert list(ds.index["name"]) == [n for n, _, _ in entries]
    assert list(ds.index["label"]) == [lab for _, lab, _ in entries]
    assert ds.meta["label_check"]["n_disagreements"] == 0
    assert ds.meta["label_check"]["checked_against"] == [
        "stage_2_detailed_class_info.csv",
        "stage_2_train_labels.csv",
    ]
    # image = the chain applied to the DICOM's pixels
    name = split["train"]["0"][1]
    px = _decode_dicom((raw / "stage_2_train_images" / name.replace(".png", ".dcm")).read_bytes())
    np.testing.assert_array_equal(ds.images[ds.rows([name])[0]], resize_chain(Image.fromarray(px), 8))
    # boxes: one per Target=1 row, x,y,width,height (pixels of the 8x8 DICOM) -> fractions
    labels_csv = (raw / "stage_2_train_labels.csv").read_text().splitlines()
    for _row, r in ds.index.iterrows():
        pid = r["name"][:-4]
        rows = [line.split(",") for line in labels_csv if line.startswith(pid + ",") and line.endswith(",1")]
        expected = [
            [float(x) / 8, float(y) / 8, (float(x) + float(w)) / 8, (float(y) + float(h)) / 8]
            for _, x, y, w, h, _ in rows
        ]
        assert json.loads(r["boxes"]) == expected
        assert (len(expected) > 0) == (r["label"] == 1)


def test_rsna_published_split_by_default_and_missing_images_listed(tmp_path):
    split = tiny_split()
    raw = write_rsna_raw(tmp_path / "rsna", split)
    with pytest.raises(DatasetError, match=r"14863 of 14863 image\(s\) named in the split file are missing"):
        prepare_dataset("rsna", raw, tmp_path / "p", workers=1)


def test_label_disagreements_are_recorded_and_warned(tmp_path, caplog):
    split = tiny_split()
    flip = (split["train"]["0"][0], split["test"]["1"][1])
    raw = write_vindr_raw(tmp_path / "v", split, flip=flip)
    ds = load_prepared(prepare_dataset("vindr", raw, tmp_path / "p", image_size=8, workers=1, split=split))
    check = ds.meta["label_check"]
    assert check["n_disagreements"] == 2
    assert {(d["name"], d["split_label"], d["raw_label"]) for d in check["disagreements"]} == {
        (flip[0], 0, 1),
        (flip[1], 1, 0),
    }
    assert list(ds.index["label"]) == [lab for _, lab, _ in split_entries(split)]  # the split file wins
    assert "2 of 14 split labels disagree with train.csv" in caplog.text


def test_vindr_layout_monochrome1_and_boxes(tmp_path):
    split = tiny_split()
    raw = write_vindr_raw(tmp_path / "v", split, form="dir", size=(10, 8))
    src = pack(raw, "tar.gz", top="vinbigdata")
    ds = load_prepared(prepare_dataset("vindr", src, tmp_path / "p", image_size=8, workers=2, split=split))
    assert ds.meta["label_check"]["n_disagreements"] == 0
    labels = split_labels(split)
    for _row, r in ds.index.iterrows():
        boxes = json.loads(r["boxes"])
        if labels[r["name"]] == 0:
            assert boxes == []
        else:  # every finding of every radiologist, as fractions of columns (10) and rows (8)
            assert [1 / 10, 2 / 8, 8.5 / 10, 7 / 8] in boxes and [0.0, 0.0, 0.2, 3 / 8] in boxes
    # MONOCHROME1 images (every third one) decode like the others: dark top-left, bright bottom-right
    yy, xx = np.mgrid[0:8, 0:8]
    for img in ds.images:
        assert np.corrcoef(img.ravel(), (xx + yy).ravel())[0, 1] > 0.5


def test_corrupt_and_truncated_dicoms_are_named(tmp_path):
    split = tiny_split()
    raw = write_rsna_raw(tmp_path / "rsna", split)
    images = raw / "stage_2_train_images"
    truncated, garbage = split["train"]["0"][0][:-4], split["test"]["1"][0][:-4]
    data = (images / f"{truncated}.dcm").read_bytes()
    (images / f"{truncated}.dcm").write_bytes(data[: len(data) - 20])
    (images / f"{garbage}.dcm").write_bytes(b"this is not a DICOM file")
    with pytest.raises(DatasetError) as err:
        prepare_dataset("rsna", pack(raw, "zip"), tmp_path / "p", image_size=8, workers=2, split=split)
    msg = str(err.value)
    assert "2 image(s) could not be decoded" in msg
    assert f"stage_2_train_images/{truncated}.dcm" in msg and f"stage_2_train_images/{garbage}.dcm" in msg
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("form", ["dir", "tar.gz"])
def test_csv_with_wrong_columns_is_named(tmp_path, form):
    split = tiny_split()
    raw = write_rsna_raw(tmp_path / "rsna", split)
    (raw / "stage_2_train_labels.csv").write_text("patient,x,y,w,h,label\nimg000,,,,,0\n")
    with pytest.raises(
        DatasetError, match=r"stage_2_train_labels.csv lacks column\(s\) \['patientId', 'width'"
    ):
        prepare_dataset("rsna", pack(raw, form), tmp_path / "p", image_size=8, workers=1, split=split)


@pytest.mark.parametrize("form", ["zip", "tar"])
def test_missing_csv_is_named(tmp_path, form):
    split = tiny_split()
    raw = write_vindr_raw(tmp_path / "v", split)
    (raw / "train.csv").unlink()
    with pytest.raises(DatasetError, match="train.csv not found in the source"):
        prepare_dataset("vindr", pack(raw, form), tmp_path / "p", image_size=8, workers=1, split=split)


def test_not_an_archive(tmp_path):
    bad = tmp_path / "rsna.zip"
    bad.write_bytes(b"PK\x03\x04 partial download")
    with pytest.raises(DatasetError, match="not a folder, zip or tar archive"):
        prepare_dataset("rsna", bad, tmp_path / "p")
    with pytest.raises(DatasetError, match="no such file or folder"):
        prepare_dataset("rsna", tmp_path / "nothing", tmp_path / "p")


def test_compressed_dicom_without_decoder_says_what_to_install(tmp_path):
    import importlib.util
    import io

    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    if any(importlib.util.find_spec(m) for m in ("libjpeg", "gdcm", "jpeg_ls")):
        pytest.skip("a JPEG-LS decoder is installed")
    split = tiny_split()
    raw = write_rsna_raw(tmp_path / "rsna", split)
    path = raw / "stage_2_train_images" / split["test"]["0"][0].replace(".png", ".dcm")
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless  # no JPEG-LS decoder is installed here
    ds.PixelData = encapsulate([b"\xff\xd8 not decodable \xff\xd9"])
    ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    ds.save_as(buf)
    path.write_bytes(buf.getvalue())
    with pytest.raises(DatasetError, match="(?s)JPEG-LS.*pip install pylibjpeg"):
        prepare_dataset("rsna", raw, tmp_path / "p", image_size=8, workers=1, split=split)


@pytest.mark.parametrize("workers", [1, 2])
def test_truncated_tar_stream_is_a_clear_error(tmp_path, workers):
    split = tiny_split()
    archive = pack(write_rsna_raw(tmp_path / "rsna", split, size=64), "tar.gz")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="cannot read the archive .*truncated or corrupt"):
        prepare_dataset("rsna", archive, tmp_path / "p", image_size=8, workers=workers, split=split)
