"""Pixel ground truth of the test images at the experiment's resolution, for the localization metrics.

Where a prepared dataset has masks (the synthetic sets), they are the ground truth: resized from the
prepared size like the images (bilinear, 0/255) and thresholded as `sagan prepare` does. Otherwise its
boxes are (RSNA, VinDr-CXR): the union of an image's boxes, scaled from the fractions of the original
image (`sagan.localization.boxes_to_mask`); on VinDr-CXR that is every reader's boxes together, as the
index keeps them all. A dataset with neither (LAG) has no pixel ground truth.
"""

from __future__ import annotations

import json

import numpy as np

from sagan.data.loading import resize_images
from sagan.data.prepared import MASK_THRESHOLD, PreparedDataset
from sagan.localization import boxes_to_mask


def mask_at(mask: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool of a 0/1 mask, resized as `sagan prepare` resizes masks."""
    return resize_images((mask.astype(np.uint8) * 255)[None], size)[0] >= MASK_THRESHOLD


def pixel_ground_truth(
    ds: PreparedDataset, rows: np.ndarray, size: int
) -> tuple[np.ndarray | None, str | None]:
    """((N, size, size) bool, "masks" | "boxes") for the prepared rows, or (None, None) without pixel
    labels. Normal images and unannotated abnormal ones get an empty mask."""
    index = ds.index
    mask_rows = index["mask"].to_numpy()[rows].astype(int)
    truth = np.zeros((len(rows), size, size), bool)
    if ds.masks is not None and (mask_rows >= 0).any():
        for j in np.flatnonzero(mask_rows >= 0):
            truth[j] = mask_at(ds.masks[mask_rows[j]], size)
        return truth, "masks"
    boxes = [json.loads(b) for b in index["boxes"].to_numpy()[rows]]
    if not any(boxes):
        return None, None
    for j, image_boxes in enumerate(boxes):
        truth[j] = boxes_to_mask(image_boxes, size, size)
    return truth, "boxes"
