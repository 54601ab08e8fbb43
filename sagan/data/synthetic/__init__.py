"""Synthetic stand-ins for RSNA, VinDr-CXR and LAG: the embedded default (data.md, last section).

Each image is a phantom of one subject: a chest radiograph (body outline, two lung fields, heart,
spine, ribs, clavicles) or a fundus photograph (circular field, optic disc and cup, vessels, macula),
with per-subject variation in shape, pose, contrast and noise. Abnormal subjects carry findings with
exact ground truth:
    synth-rsna   one or two (often bilateral) pneumonia opacities, each a quarter to a half of a lung
                 field, dense and patchy with fuzzy margins
    synth-vindr  one to three of: opacity, nodule or mass, pleural effusion at a lung base, enlarged
                 heart (cardiothoracic ratio above 0.5)
    synth-lag    enlarged optic cup (cup-to-disc ratio 0.68-0.88 against 0.30-0.45 for normals)
Lung findings replace a fraction of the lung's air with fluid or tissue (at most all of it: soft-tissue
density), as consolidation and effusion do; they are sized so that a small reconstruction model at
32 px finds them (tests/test_synthetic.py), as it finds the real ones at 64 px.
A subject is rendered once without and once with its findings, before noise; the mask is every
pixel the findings change by more than half a grey level, so it covers the anomaly by construction
(for the enlarged heart or cup it is the changed region). Boxes are the bounding boxes of the
mask's connected components.

The generator writes a folder in the Med-AD layout (images/*.png, data.json, boxes.csv, masks/*.png)
and hands it to the real ingest (`prepare_dataset("medad", ...)`), so the synthetic path runs the same
code as the real data. Each subject draws from its own generator, seeded by (seed, dataset, split
group, index in the group): the k-th image of a group is the same at every size.
Besides the groups of the paper's Table 1, each set has a labelled validation split (VAL_COUNT
normal and VAL_COUNT abnormal subjects from their own seeds, data.json["val"]), for learning curves
that never look at the test labels.

Modules: `specs` (the sets, their counts and seeds), `draw` (drawing primitives), `chest` and
`fundus` (the phantoms), `subject` (one subject, its mask and boxes), `build` (the Med-AD folder,
the prepared dataset, `sagan synth`).
"""

from sagan.data.synthetic.build import cli_synth, make_synthetic, write_medad_folder
from sagan.data.synthetic.specs import (
    DATASETS,
    GROUP_LABEL,
    GROUPS,
    RENDER_SIZE,
    SIZES,
    TABLE1_GROUPS,
    VAL_COUNT,
    VAL_GROUPS,
    SynthDataset,
    split_counts,
    subject_rng,
)
from sagan.data.synthetic.subject import Subject, mask_boxes, render_subject

__all__ = [
    "DATASETS",
    "GROUPS",
    "GROUP_LABEL",
    "RENDER_SIZE",
    "SIZES",
    "TABLE1_GROUPS",
    "VAL_COUNT",
    "VAL_GROUPS",
    "Subject",
    "SynthDataset",
    "cli_synth",
    "make_synthetic",
    "mask_boxes",
    "render_subject",
    "split_counts",
    "subject_rng",
    "write_medad_folder",
]
