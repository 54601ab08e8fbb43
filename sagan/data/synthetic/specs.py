"""What each synthetic set is: its Table 1 counts, finding kinds, split groups and subject seeds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sagan.errors import DatasetError

RENDER_SIZE = 256  # phantoms are drawn at this size; the ingest resizes to the experiment size
GROUPS = ("train/0", "unlabeled/0", "unlabeled/1", "test/0", "test/1")  # split_entries order
GROUP_LABEL = {"train/0": 0, "unlabeled/0": 0, "unlabeled/1": 1, "test/0": 0, "test/1": 1}
SIZES = {"small": 25, "medium": 8, "large": 2}  # divisor of the Table 1 counts
MASK_THRESHOLD = 0.5 / 255  # a pixel belongs to the mask if the findings change it by > half a grey level


@dataclass(frozen=True)
class SynthDataset:
    name: str
    code: int  # enters every seed, so the three sets differ at the same --seed
    kind: str  # "chest" | "fundus"
    table1: tuple[int, int, int, int, int]  # full-scale counts of GROUPS (paper Table 1)
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
    """Images per split group: Table 1 divided by the size's divisor (rounded half up).

    synth-rsna drives the anomaly-ratio sweep (Table 4), so both of its unlabelled pools are raised
    to at least U (= train/0) when the scaled proportions fall short: every ratio 0..1 stays feasible.
    """
    spec = dataset_spec(name)
    if size not in SIZES:
        raise DatasetError(f"unknown --size {size!r}; choose one of: {', '.join(SIZES)}")
    counts = {g: max(1, int(n / SIZES[size] + 0.5)) for g, n in zip(GROUPS, spec.table1)}
    if name == "synth-rsna":
        u = counts["train/0"]
        counts["unlabeled/0"] = max(counts["unlabeled/0"], u)
        counts["unlabeled/1"] = max(counts["unlabeled/1"], u)
    return counts


def dataset_spec(name: str) -> SynthDataset:
    if name not in DATASETS:
        raise DatasetError(f"unknown synthetic dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def subject_rng(seed: int, name: str, group: str, index: int) -> np.random.Generator:
    """The generator of one subject, independent of every other subject and of the size."""
    if seed < 0:
        raise DatasetError(f"--seed must be >= 0, got {seed}")
    return np.random.default_rng([seed, dataset_spec(name).code, GROUPS.index(group), index])
