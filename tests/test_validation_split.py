"""The labelled validation split of the synthetic sets (issue 12: learning curves without test labels):
its own pool, disjoint from every other, labelled right, read through the real data path; datasets
without one (the real ones) prepare and load as before."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from sagan.config import DataConfig
from sagan.data.decoding import resize_chain
from sagan.data.ingest import prepare_dataset
from sagan.data.loading import load_training_data, resize_images
from sagan.data.prepared import load_prepared, split_entries
from sagan.data.splits import PUBLISHED, published_split, table1_counts
from sagan.data.synthetic import VAL_COUNT, render_subject, split_counts
from sagan.errors import DatasetError
from tests.fakes import tiny_split, write_rsna_raw

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def lag(synthetic_set):
    return load_prepared(synthetic_set("synth-lag"))


def test_val_is_its_own_pool_of_normals_then_abnormals(lag):
    assert split_counts("synth-lag")["val/0"] == split_counts("synth-lag")["val/1"] == VAL_COUNT
    val = lag.pool("val")
    assert list(val["name"]) == lag.split["val"]["0"] + lag.split["val"]["1"]
    assert list(val["label"]) == [0] * VAL_COUNT + [1] * VAL_COUNT
    counts = table1_counts(lag.split)
    assert (counts["val_normal"], counts["val_abnormal"]) == (VAL_COUNT, VAL_COUNT)


def test_val_is_disjoint_from_every_other_pool(lag):
    in_val = (lag.index["pool"] == "val").to_numpy()
    names = lag.index["name"]
    assert names.is_unique and not set(names[in_val]) & set(names[~in_val])
    # new subjects too, not copies: no validation image has the pixels of a training or test image
    digests = np.array([hashlib.sha256(im.tobytes()).hexdigest() for im in lag.images])
    assert len(set(digests[in_val])) == in_val.sum()
    assert not set(digests[in_val]) & set(digests[~in_val])
    # the names do not give the label away: normals and abnormals are interleaved in number order
    numbers = lag.pool("val").sort_values("name")["label"].to_numpy()
    assert 0 < numbers[:VAL_COUNT].sum() < VAL_COUNT


def test_val_labels_masks_and_boxes_are_right(lag):
    val = lag.pool("val")
    normal, abnormal = val[val["label"] == 0], val[val["label"] == 1]
    assert (normal["mask"] == -1).all() and (normal["boxes"] == "[]").all()
    assert (abnormal["mask"] >= 0).all() and all(lag.masks[m].any() for m in abnormal["mask"])
    assert all(len(lag.boxes(row)) >= 1 for row in abnormal.index)
    # each row is the subject of its group and index, through the ingest's resize chain
    for group, rows in (("val/0", normal), ("val/1", abnormal)):
        for k in (0, VAL_COUNT - 1):
            sub = render_subject("synth-lag", 0, group, k)
            assert sub.findings == ([] if group == "val/0" else ["large_cup"])
            expected = resize_chain(Image.fromarray(sub.image), 64)
            np.testing.assert_array_equal(lag.images[rows.index[k]], expected)


def test_loading_gives_the_val_images_and_labels_only_when_asked(synthetic_set, lag):
    cfg = DataConfig(image_size=32)
    data = load_training_data(str(synthetic_set("synth-lag")), cfg, CPU, need_train=False, need_val=True)
    rows = lag.pool("val").index.to_numpy()
    assert data.val.dtype == torch.uint8 and data.val.shape == (2 * VAL_COUNT, 32, 32)
    np.testing.assert_array_equal(data.val.numpy(), resize_images(lag.images, 32)[rows])
    np.testing.assert_array_equal(data.val_labels, [0] * VAL_COUNT + [1] * VAL_COUNT)
    assert not set(lag.index["name"][rows]) & set(data.test_names)
    data = load_training_data(str(synthetic_set("synth-lag")), cfg, CPU, need_train=False)
    assert data.val is None and data.val_labels is None


def test_real_datasets_have_no_val_and_prepare_as_before(tmp_path):
    assert not any("val" in published_split(d) for d in PUBLISHED)
    split = tiny_split()
    raw = write_rsna_raw(tmp_path / "rsna", split, size=8)
    out = prepare_dataset("rsna", raw, tmp_path / "p", image_size=8, workers=1, split=split)
    ds = load_prepared(out)
    assert "val" not in ds.split and set(ds.index["pool"]) == {"train", "unlabeled", "test"}
    assert list(table1_counts(ds.split)) == [
        "train_normal",
        "unlabeled_total",
        "unlabeled_normal",
        "unlabeled_abnormal",
        "test_normal",
        "test_abnormal",
    ]
    data = load_training_data(str(out), DataConfig(image_size=8), CPU, need_val=True)
    assert data.val is None and data.val_labels is None


def test_a_val_without_both_labels_or_overlapping_another_pool_is_a_clear_error():
    split = tiny_split()
    split["val"] = {"0": ["new.png"]}
    with pytest.raises(DatasetError, match="lacks '1'.*optionally \"val\""):
        split_entries(split)
    split["val"] = {"0": ["new.png"], "1": [split["test"]["1"][0]]}
    with pytest.raises(DatasetError, match="twice"):
        split_entries(split)
