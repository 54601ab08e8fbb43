"""Load a prepared dataset once into (device) memory for training and scoring.

Images stay uint8 on the device; a batch is sliced by index and scaled to [-1, 1] there, so the
training loop never decodes, copies host->device or loops over images in Python.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from sagan.config import DataConfig, parse_anomaly_ratio
from sagan.data.prepared import PreparedDataset, load_prepared
from sagan.data.splits import build_unlabeled_set, validation_split
from sagan.errors import DatasetError

log = logging.getLogger(__name__)


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W) -> float (B, 1, H, W) in [-1, 1]: (x/255 - 0.5) / 0.5."""
    return (x.float() / 127.5 - 1.0).unsqueeze(1)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize (PIL, as the benchmark authors) of a (N, H, W) uint8 stack, done once at load."""
    if images.shape[1:] == (size, size):
        return np.asarray(images)
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])


@dataclass
class TrainingData:
    dataset: PreparedDataset
    normal: torch.Tensor  # (Nn, H, W) uint8 on device: labelled normals T_n
    unlabeled: torch.Tensor | None  # (U, H, W) uint8 or None ("0_u")
    unlabeled_info: dict
    # the test set: empty (and its labels None) unless asked for (need_test), so that training reads
    # no test label unless a test-oracle selection asks for it
    test: torch.Tensor  # (Nt, H, W) uint8
    test_labels: np.ndarray | None
    test_names: list[str]
    test_rows: np.ndarray  # rows of the test images in the prepared index
    # labelled validation split, for learning curves without test labels: None unless asked for
    # (need_val) and present (synthetic sets; real datasets have none)
    val: torch.Tensor | None = None  # (Nv, H, W) uint8, normals first
    val_labels: np.ndarray | None = None  # (Nv,) 0 normal / 1 abnormal


def load_training_data(
    root: str,
    cfg: DataConfig,
    device: torch.device,
    need_train: bool = True,
    need_unlabeled: bool = True,
    need_val: bool = False,
    need_test: bool = True,
) -> TrainingData:
    """The test set (if `need_test`), and for training the labelled normals and (if `need_unlabeled`) the
    unlabelled set of the configured anomaly ratio, as uint8 tensors on the device."""
    ds = load_prepared(root)
    images = resize_images(ds.images, cfg.image_size)

    def rows_to_device(rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(images[rows])).to(device)

    split = ds.split
    unl = build_unlabeled_set(split, parse_anomaly_ratio(cfg.anomaly_ratio), cfg.on_small_pool)
    for label, kind in (("0", "normal"), ("1", "abnormal")):
        if not split["test"][label]:  # AUC and AP would be NaN, which is not a result (nor JSON)
            raise DatasetError(
                f"{ds.root}/split.json: the test set has no {kind} images, and AUC and AP need both "
                "classes; prepare the dataset with a split file whose test set has both"
            )
    test_names, test_labels = [], None
    if need_test:
        test_names = list(split["test"]["0"]) + list(split["test"]["1"])
        test_labels = np.array([0] * len(split["test"]["0"]) + [1] * len(split["test"]["1"]))
    test_rows = ds.rows(test_names)
    normal = rows_to_device(ds.rows(split["train"]["0"])) if need_train else torch.empty(0)
    load_unl = need_train and need_unlabeled and unl["names"]
    unlabeled = rows_to_device(ds.rows(unl["names"])) if load_unl else None
    val = validation_split(split) if need_val else None
    return TrainingData(
        dataset=ds,
        normal=normal,
        unlabeled=unlabeled,
        unlabeled_info={k: v for k, v in unl.items() if k != "names"},
        test=rows_to_device(test_rows),
        test_labels=test_labels,
        test_names=test_names,
        test_rows=test_rows,
        val=rows_to_device(ds.rows(val[0])) if val else None,
        val_labels=np.array(val[1]) if val else None,
    )


class EpochSampler:
    """Batches of indices drawn without replacement within an epoch (drop_last), as a shuffling loader.

    The batch of iteration t is a pure function of (seed, salt, t), so a resumed run draws exactly the
    batches an uninterrupted run would, with no sampler state to save.
    """

    def __init__(self, n: int, batch_size: int, seed: int, salt: int, device: torch.device):
        self.n, self.batch_size, self.seed, self.salt, self.device = n, batch_size, seed, salt, device
        self.per_epoch = max(1, n // batch_size)

    @lru_cache(maxsize=2)  # noqa: B019 - one sampler per run, two epochs cached
    def _perm(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.salt * 7919 + epoch)
        perm = torch.randperm(self.n, generator=g)
        if self.n < self.batch_size:  # tiny pools: repeat the permutation to fill one batch
            perm = perm.repeat(self.batch_size // self.n + 1)
        return perm.to(self.device)

    def indices(self, t: int) -> torch.Tensor:
        epoch, k = divmod(t, self.per_epoch)
        return self._perm(epoch)[k * self.batch_size : (k + 1) * self.batch_size]
