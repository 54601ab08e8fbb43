"""What each synthetic set is: its Table 1 counts, finding kinds, split groups and subject seeds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sagan.errors import DatasetError

RENDER_SIZE = 256  # phantoms are drawn at this size; the ingest resizes to the experiment size
# split_entries order. A group's index seeds its subjects: new groups go at the end, so that no
# existing image changes (the validation groups came last for that reason).
GROUPS = ("train/0", "unlabeled/0", "unlabeled/1", "test/0", "test/1", "val/0", "val/1")
TABLE1_GROUPS = GROUPS[:5]  # the groups of the paper's Table 1
VAL_GROUPS = GROUPS[5:]  # the labelled validation split (ours; real datasets have none)
GROUP_LABEL = {
    "train/0": 0,
    "unlabeled/0": 0,
    "unlabeled/1": 1,
    "test/0": 0,
    "test/1": 1,
    "val/0": 0,
    "val/1": 1,
}
SIZES = {"small": 25, "medium": 8, "large": 2}  # divisor of the Table 1 counts
# Validation images per label, at every size: validation AUC is scored every K training iterations,
# so the set must be cheap (128 images: 0.38 s for SAGAN's demo networks on one thread, about two
# of its training iterations) yet precise enough to show a learning curve (standard error of AUC
# 0.04-0.05 around 0.7-0.8, Hanley & McNeil; the small test sets of 32-40 per label give 0.05-0.065).
VAL_COUNT = 64
MASK_THRESHOLD = 0.5 / 255  # a pixel belongs to the mask if the findings change it by > half a grey level


@dataclass(frozen=True)
class SynthDataset:
    name: str
    code: int  # enters every seed, so the three sets differ at the same --seed
    kind: str  # "chest" | "fundus"
    table1: tuple[int, int, int, int, int]  # full-scale counts of TABLE1_GROUPS (paper Table 1)
    findings: tuple[str, ...]  # finding kinds drawn for abnormal subjects
    # range of the global gain (contrast variation); wider ones hid the findings of small models
    exposure: tuple[float, float] = (0.9, 1.1)


DATASETS = {
    "synth-rsna": SynthDataset("synth-rsna", 1, "chest", (3851, 4000, 5012, 1000, 1000), ("opacity",)),
    "synth-vindr": SynthDataset(
        "synth-vindr",
        2,
        "chest",
        (4000, 5606, 3394, 1000, 1000),
        ("opacity", "nodule", "effusion", "cardiomegaly"),
        exposure=(0.85, 1.15),  # several hospitals and scanners
    ),
    "synth-lag": SynthDataset("synth-lag", 3, "fundus", (1500, 832, 900, 811, 811), ("large_cup",)),
}


def split_counts(name: str, size: str = "small") -> dict[str, int]:
    """Images per split group: Table 1 divided by the size's divisor (rounded half up), then
    VAL_COUNT normal and VAL_COUNT abnormal validation images.

    synth-rsna drives the anomaly-ratio sweep (Table 4), so both of its unlabelled pools are raised
    to at least U (= train/0) when the scaled proportions fall short: every ratio 0..1 stays feasible.
    """
    spec = dataset_spec(name)
    if size not in SIZES:
        raise DatasetError(f"unknown --size {size!r}; choose one of: {', '.join(SIZES)}")
    counts = {g: max(1, int(n / SIZES[size] + 0.5)) for g, n in zip(TABLE1_GROUPS, spec.table1)}
    if name == "synth-rsna":
        u = counts["train/0"]
        counts["unlabeled/0"] = max(counts["unlabeled/0"], u)
        counts["unlabeled/1"] = max(counts["unlabeled/1"], u)
    return {**counts, "val/0": VAL_COUNT, "val/1": VAL_COUNT}


def dataset_spec(name: str) -> SynthDataset:
    if name not in DATASETS:
        raise DatasetError(f"unknown synthetic dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def subject_rng(seed: int, name: str, group: str, index: int) -> np.random.Generator:
    """The generator of one subject, independent of every other subject and of the size."""
    if seed < 0:
        raise DatasetError(f"--seed must be >= 0, got {seed}")
    return np.random.default_rng([seed, dataset_spec(name).code, GROUPS.index(group), index])
