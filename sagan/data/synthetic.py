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
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from threadpoolctl import threadpool_limits

from sagan.atomic import write_atomic
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
    spec = _dataset(name)
    if size not in SIZES:
        raise DatasetError(f"unknown --size {size!r}; choose one of: {', '.join(SIZES)}")
    counts = {g: max(1, int(n / SIZES[size] + 0.5)) for g, n in zip(GROUPS, spec.table1)}
    if name == "synth-rsna":
        u = counts["train/0"]
        counts["unlabeled/0"] = max(counts["unlabeled/0"], u)
        counts["unlabeled/1"] = max(counts["unlabeled/1"], u)
    return counts


def _dataset(name: str) -> SynthDataset:
    if name not in DATASETS:
        raise DatasetError(f"unknown synthetic dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def subject_rng(seed: int, name: str, group: str, index: int) -> np.random.Generator:
    """The generator of one subject, independent of every other subject and of the size."""
    if seed < 0:
        raise DatasetError(f"--seed must be >= 0, got {seed}")
    return np.random.default_rng([seed, _dataset(name).code, GROUPS.index(group), index])


# --- drawing primitives ------------------------------------------------------------------------


@functools.cache
def _grid() -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1]: x to the right, y downwards."""
    c = ((np.arange(RENDER_SIZE, dtype=np.float32) + 0.5) / RENDER_SIZE) * 2 - 1
    return np.meshgrid(c, c)


def _soft_inside(d: np.ndarray, width: float) -> np.ndarray:
    """1 where d <= -width, 0 where d >= width, smoothstep between. The support is compact, so
    shapes built from it change no pixel beyond their edge band (which keeps masks tight)."""
    t = d * np.float32(-0.5 / width)
    t += np.float32(0.5)
    np.maximum(t, 0.0, out=t)
    np.minimum(t, 1.0, out=t)
    edge = t * np.float32(-2)
    edge += np.float32(3)
    t *= t
    t *= edge
    return t


@functools.cache
def _interp_matrix(cells: int) -> tuple[np.ndarray, float]:
    """Gaussian interpolation from `cells` control points to RENDER_SIZE pixels (rows sum to 1),
    and the variance factor that brings the interpolated field back to unit variance."""
    pos = (np.arange(RENDER_SIZE) + 0.5) / RENDER_SIZE * cells - 0.5
    w = np.exp(-0.5 * ((pos[:, None] - np.arange(cells)[None, :]) / 0.6) ** 2)
    w /= w.sum(axis=1, keepdims=True)
    return w.astype(np.float32), float(np.mean((w**2).sum(axis=1)))


def _smooth_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Unit-variance smooth random field: a cells x cells grid of normals, upsampled (A Z A^T)."""
    a, var = _interp_matrix(cells)
    z = rng.standard_normal((cells, cells), dtype=np.float32)
    return (a @ z @ a.T) / np.float32(var)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _ellipse_radius(dx: np.ndarray, dy: np.ndarray, rx: float, ry: float) -> np.ndarray:
    """Normalised elliptical radius (1 on the ellipse). Squares via np.square: float32 ** 4 is slow."""
    return np.sqrt(np.square(dx / rx) + np.square(dy / ry))


def _window(xs: np.ndarray, ys: np.ndarray) -> tuple[slice, slice]:
    """(rows, cols) slices of the pixels whose centres span the given image coordinates (+1 px)."""

    def span(c: np.ndarray) -> slice:
        lo = int(np.floor((c.min() + 1) / 2 * RENDER_SIZE - 0.5)) - 1
        hi = int(np.ceil((c.max() + 1) / 2 * RENDER_SIZE - 0.5)) + 2
        return slice(min(max(lo, 0), RENDER_SIZE), min(max(hi, 0), RENDER_SIZE))

    return span(ys), span(xs)


@dataclass
class _Rendering:
    clean: np.ndarray  # intensity in [0, 1] without findings, before noise
    sick: np.ndarray  # the same with the findings
    noise: np.ndarray  # added to both
    findings: list[str]


# --- chest radiograph phantom ------------------------------------------------------------------


@dataclass
class ChestSubject:
    pose: tuple[float, float, float, float]  # scale, rotation (rad), shift x, shift y
    body_width: float
    neck_width: float
    lungs: list[dict]  # per side (-1 = image left = patient right, +1): cx, cy, ax, ay, dome, ...
    heart: dict  # cx, cy, ax, ay, angle
    rib_start: float
    rib_spacing: float
    rib_curve: float
    clavicle_y: float
    tissue: float
    air: float
    bone: float
    gain: float
    offset: float
    gamma: float
    noise_sigma: float
    fields: dict = field(repr=False)  # smooth random fields drawn once per subject


@dataclass
class ChestLayers:
    density: np.ndarray  # (H, W) before the exposure curve
    lungs: np.ndarray  # (2, H, W) visible lung field of each side (heart and mediastinum removed)
    air: np.ndarray  # (H, W) density the lung air removes; findings fill it with fluid or tissue
    u: np.ndarray  # patient coordinates of every pixel (pose removed)
    v: np.ndarray


def _sample_chest(rng: np.random.Generator, spec: SynthDataset) -> ChestSubject:
    lungs = []
    for side in (-1, 1):
        # the right hemidiaphragm (image left) usually sits a little higher (the liver below it)
        lungs.append(
            dict(
                side=side,
                cx=side * _u(rng, 0.36, 0.42),
                cy=_u(rng, -0.1, -0.02) - (0.03 if side < 0 else 0),
                ax=_u(rng, 0.3, 0.36) + (0.01 if side < 0 else 0),
                ay=_u(rng, 0.58, 0.66),
                dome=_u(rng, 0.16, 0.28),
                medial=_u(rng, 0.55, 0.75),
            )
        )
    heart = dict(
        cx=_u(rng, 0.07, 0.13),
        cy=_u(rng, 0.24, 0.32),
        ax=_u(rng, 0.29, 0.34),
        ay=_u(rng, 0.2, 0.25),
        angle=_u(rng, 0.3, 0.55),
    )
    return ChestSubject(
        pose=(_u(rng, 0.93, 1.05), _u(rng, -0.06, 0.06), _u(rng, -0.05, 0.05), _u(rng, -0.03, 0.06)),
        body_width=_u(rng, 0.86, 0.96),
        neck_width=_u(rng, 0.24, 0.3),
        lungs=lungs,
        heart=heart,
        rib_start=_u(rng, -0.82, -0.74),
        rib_spacing=_u(rng, 0.13, 0.15),
        rib_curve=_u(rng, 0.7, 0.95),
        clavicle_y=_u(rng, -0.62, -0.54),
        tissue=_u(rng, 0.6, 0.7),
        air=_u(rng, 0.32, 0.42),
        bone=_u(rng, 0.08, 0.12),
        gain=_u(rng, *spec.exposure),
        offset=_u(rng, -0.03, 0.05),
        gamma=_u(rng, 0.87, 1.15),
        noise_sigma=_u(rng, 0.008, 0.022),
        fields=dict(
            bias=_smooth_noise(rng, 3),
            texture=_smooth_noise(rng, 24),
            markings=_smooth_noise(rng, 12),
            grain=_smooth_noise(rng, RENDER_SIZE // 2),
        ),
    )


def _chest_layers(sub: ChestSubject, heart_scale: tuple[float, float] = (1.0, 1.0)) -> ChestLayers:
    x, y = _grid()
    scale, rot, tx, ty = sub.pose
    c, s = np.float32(np.cos(rot)), np.float32(np.sin(rot))
    u = (c * (x - tx) + s * (y - ty)) / scale
    v = (-s * (x - tx) + c * (y - ty)) / scale
    au = np.abs(u)

    def window(u0: float, u1: float, v0: float, v1: float) -> tuple[slice, slice]:
        """Pixel window holding the patient-coordinate box (small parts are drawn there only)."""
        cu, cv = np.array([u0, u1, u0, u1]), np.array([v0, v0, v1, v1])
        return _window(tx + scale * (c * cu - s * cv), ty + scale * (s * cu + c * cv))

    # body: neck widening into sloping shoulders, trunk slightly narrower towards the abdomen
    shoulders = _soft_inside(-0.66 - v, 0.26)  # 0 above the shoulders, 1 below
    half_width = (
        sub.neck_width + (sub.body_width - sub.neck_width) * shoulders - 0.08 * np.clip(v - 0.4, 0, 1)
    )
    body = _soft_inside(au - half_width, 0.025)
    tissue = sub.tissue * (1 + 0.15 * _soft_inside(0.5 - v, 0.3) + 0.03 * sub.fields["bias"])

    # heart: tilted ellipse, apex to the patient's left (image right); cardiomegaly scales it
    h = sub.heart
    hax, hay = h["ax"] * heart_scale[0], h["ay"] * heart_scale[1]
    hcx = h["cx"] + 0.45 * (hax - h["ax"])  # an enlarged heart grows mostly towards the apex
    heart = np.zeros_like(u)
    w = window(hcx - hax - 0.05, hcx + hax + 0.05, h["cy"] - hax - 0.05, h["cy"] + hax + 0.05)
    ca, sa = np.float32(np.cos(h["angle"])), np.float32(np.sin(h["angle"]))
    du, dv = u[w] - hcx, v[w] - h["cy"]
    heart[w] = _soft_inside(_ellipse_radius(ca * du + sa * dv, -sa * du + ca * dv, hax, hay) - 1, 0.07)
    mediastinum = heart.copy()
    w = window(-0.05, 0.25, -0.5, -0.22)  # aortic knob bulging into the left lung
    mediastinum[w] = np.maximum(
        mediastinum[w], _soft_inside(_ellipse_radius(u[w] - 0.1, v[w] + 0.36, 0.09, 0.08) - 1, 0.15)
    )

    lungs = np.zeros((2,) + u.shape, np.float32)
    for i, lung in enumerate(sub.lungs):
        w = window(
            lung["cx"] - lung["ax"] - 0.05,
            lung["cx"] + lung["ax"] + 0.05,
            lung["cy"] - lung["ay"] - 0.05,
            lung["cy"] + lung["ay"] + 0.05,
        )
        lat = lung["side"] * (u[w] - lung["cx"]) / lung["ax"]  # +1 at the lateral wall
        q = (v[w] - lung["cy"]) / lung["ay"]  # -1 at the apex, +1 at the deepest base
        # rounded apex; the lateral wall bulges lowest, the medial border is straighter and shorter
        lateral_edge = np.sqrt(np.clip(1 - np.square((q - 0.35) / 1.35), 0, 1))
        medial_edge = lung["medial"] * np.sqrt(np.clip(1 - np.square((q - 0.1) / 1.1), 0, 1))
        outline = _soft_inside(np.maximum(lat - lateral_edge, -medial_edge - lat), 0.05)
        outline *= _soft_inside(-1 - q, 0.03)  # nothing above the apex
        dome = 1 - lung["dome"] * (1 - np.square(np.clip((lat + 0.1) / 0.9, -1, 1)))  # in units of q
        cut = _soft_inside((q - dome) * lung["ay"], 0.015)  # the hemidiaphragm
        lungs[i][w] = outline * cut * (1 - mediastinum[w]) * _soft_inside(0.08 - au[w], 0.03)

    lung_any = lungs[0] + lungs[1]
    # posterior ribs: arcs from the spine descending laterally, all at once through the phase;
    # seen mainly over the lungs, fading out at the shoulders and below the diaphragm
    rib_line = v - (-0.1 * au + sub.rib_curve * np.square(au))
    phase = (rib_line - sub.rib_start) / sub.rib_spacing
    rib_dist = np.abs(phase - np.round(phase)) * sub.rib_spacing
    ribs = (
        _soft_inside(rib_dist - 0.026, 0.012)
        * (0.3 + 0.7 * lung_any)
        * shoulders
        * _soft_inside(v - 0.62, 0.08)
    )
    ribs *= _soft_inside(0.05 - au, 0.02)
    # clavicles: bars rising laterally from the sternum, over the lung apices
    clavicles = np.zeros_like(u)
    w = window(-0.75, 0.75, sub.clavicle_y - 0.25, sub.clavicle_y + 0.1)
    cl = au[w] - 0.06
    clav_line = v[w] - (sub.clavicle_y - 0.2 * cl + 0.1 * np.square(cl))
    clavicles[w] = (
        _soft_inside(np.abs(clav_line) - 0.028, 0.01)
        * _soft_inside(-cl, 0.01)
        * _soft_inside(cl - 0.58, 0.06)
    )
    # spine: vertebral bodies with darker discs, seen through the mediastinum; dark trachea above
    spine = np.zeros_like(u)
    w = window(-0.1, 0.1, -1.5, 1.5)
    disc = np.abs(((v[w] - sub.rib_start) / (0.9 * sub.rib_spacing)) % 1 - 0.5)
    spine[w] = _soft_inside(au[w] - 0.065, 0.02) * (0.55 + 0.45 * _soft_inside(disc - 0.38, 0.06))
    spine[w] -= 1.2 * _soft_inside(au[w] - 0.035, 0.012) * _soft_inside(v[w] + 0.3, 0.05)  # trachea

    # lung darkness fades towards the hila; vascular markings modulate it
    hilar = np.clip(np.abs(au - 0.12) / 0.45, 0, 1)
    air = sub.air * lung_any * (0.78 + 0.22 * hilar) * (1 + 0.07 * sub.fields["markings"])
    density = (
        body * tissue
        - air
        + sub.bone * (ribs + 1.5 * clavicles + spine)
        + 0.03 * heart
        + 0.012 * sub.fields["texture"] * body
    )
    return ChestLayers(density=density, lungs=lungs, air=air, u=u, v=v)


@dataclass
class Finding:
    kind: str
    side: int  # 0 = image left lung, 1 = image right lung; -1 when not bound to a lung
    params: dict
    fields: dict = field(default_factory=dict, repr=False)


def _pick_in_lung(rng: np.random.Generator, lung: np.ndarray, margin: float) -> tuple[float, float]:
    """A random pixel centre well inside a lung field, in image coordinates."""
    inside = np.flatnonzero(lung > margin)
    if inside.size == 0:
        inside = np.flatnonzero(lung > 0.5 * lung.max())
    i = int(inside[rng.integers(inside.size)])
    x, y = _grid()
    return float(x.flat[i]), float(y.flat[i])


def _sample_chest_findings(
    rng: np.random.Generator, spec: SynthDataset, sub: ChestSubject, layers: ChestLayers
) -> list[Finding]:
    if spec.findings == ("opacity",):  # RSNA-like: one or two pneumonia opacities, often bilateral
        n = 1 if rng.random() < 0.45 else 2  # about half of RSNA's positives have two boxes
        sides = [int(rng.integers(2))]
        if n == 2:
            sides.append(1 - sides[0] if rng.random() < 0.7 else sides[0])
        kinds = ["opacity"] * n
    else:  # VinDr-like: one to three findings of mixed kinds
        n = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
        # cardiomegaly is among VinDr's most frequent findings; nodules stay small and subtle
        kinds = [str(k) for k in rng.choice(spec.findings, size=n, p=[0.3, 0.2, 0.2, 0.3])]
        if kinds.count("cardiomegaly") > 1:  # one heart
            kinds = [k for k in kinds if k != "cardiomegaly"] + ["cardiomegaly"]
        sides = [int(rng.integers(2)) for _ in kinds]
        eff = [i for i, k in enumerate(kinds) if k == "effusion"]
        if len(eff) == 2:  # two effusions -> one per side
            sides[eff[0]], sides[eff[1]] = 0, 1
    out = []
    for kind, side in zip(kinds, sides):
        if kind == "opacity":
            cx, cy = _pick_in_lung(rng, layers.lungs[side], 0.95)
            # covers 16-50% of its lung field (median 31%); amp: most of the air replaced at the core
            out.append(
                Finding(
                    "opacity",
                    side,
                    dict(cx=cx, cy=cy, rx=_u(rng, 0.18, 0.28), ry=_u(rng, 0.24, 0.4), amp=_u(rng, 0.8, 1.1)),
                    dict(warp=_smooth_noise(rng, 8), texture=_smooth_noise(rng, 20)),
                )
            )
        elif kind == "nodule":
            cx, cy = _pick_in_lung(rng, layers.lungs[side], 0.99)
            out.append(
                Finding(
                    "nodule",
                    side,
                    dict(
                        cx=cx,
                        cy=cy,
                        r=_u(rng, 0.045, 0.09),
                        aspect=_u(rng, 0.85, 1.15),
                        amp=_u(rng, 0.75, 1.0),
                    ),
                )
            )
        elif kind == "effusion":
            out.append(
                Finding(
                    "effusion",
                    side,
                    dict(height=_u(rng, 0.18, 0.42), meniscus=_u(rng, 0.1, 0.22), amp=_u(rng, 0.9, 1.0)),
                )
            )
        else:
            out.append(Finding("cardiomegaly", -1, dict(sx=_u(rng, 1.4, 1.65), sy=_u(rng, 1.1, 1.25))))
    return out


def _chest_finding_fill(f: Finding, sub: ChestSubject, layers: ChestLayers) -> np.ndarray:
    """Fraction (0..1) of the lung air a finding replaces with fluid or tissue, within its lung field.
    At 1 the region has soft-tissue density (like the chest wall): a finding never gets whiter."""
    x, y = _grid()
    p = f.params
    # its own lung only; the air map already fades at the lung edge, so no second fade here
    lung = (layers.lungs[f.side] > 0).astype(np.float32)
    out = np.zeros_like(lung)
    if f.kind == "opacity":
        # irregular outline (warped radius), patchy inside, fuzzy edge reaching zero at r = 1
        w = _window(
            np.array([p["cx"] - 1.6 * p["rx"], p["cx"] + 1.6 * p["rx"]]),
            np.array([p["cy"] - 1.6 * p["ry"], p["cy"] + 1.6 * p["ry"]]),
        )
        # (the warp is clipped so the outline stays inside the window and the radius positive)
        warp = np.clip(1 + 0.25 * f.fields["warp"][w], 0.6, 1.5)
        r = _ellipse_radius(x[w] - p["cx"], y[w] - p["cy"], p["rx"], p["ry"]) / warp
        blob = _soft_inside(r - 0.75, 0.25)
        patches = np.clip(0.85 + 0.2 * f.fields["texture"][w], 0.4, 1.3)
        out[w] = np.minimum(p["amp"] * blob * patches, 1) * lung[w]
    elif f.kind == "nodule":
        ry = p["r"] * p["aspect"]
        w = _window(
            np.array([p["cx"] - 1.5 * p["r"], p["cx"] + 1.5 * p["r"]]),
            np.array([p["cy"] - 1.5 * ry, p["cy"] + 1.5 * ry]),
        )
        r = _ellipse_radius(x[w] - p["cx"], y[w] - p["cy"], p["r"], ry)
        out[w] = p["amp"] * _soft_inside(r - 1, 0.35) * lung[w]
    elif f.kind == "effusion":
        # fluid fills the costophrenic angle; its surface (meniscus) climbs along the lateral wall
        L = sub.lungs[f.side]
        lateral = np.clip(L["side"] * (layers.u - L["cx"]) / L["ax"], -1, 1)
        surface = L["cy"] + L["ay"] - p["height"] - p["meniscus"] * np.square((lateral + 1) / 2)
        fluid = _soft_inside(surface - layers.v, 0.035) * (
            0.85 + 0.15 * _soft_inside(surface + 0.1 - layers.v, 0.1)
        )
        out = p["amp"] * fluid * lung
    else:
        raise ValueError(f"no layer for finding {f.kind!r}")
    return out


def _chest_intensity(density: np.ndarray, sub: ChestSubject) -> np.ndarray:
    """Exposure curve: gain, offset, gamma (pointwise, so a finding changes only its own pixels)."""
    return np.clip(sub.offset + sub.gain * density + 0.1, 0, 1) ** sub.gamma


def _render_chest(rng: np.random.Generator, spec: SynthDataset, abnormal: bool) -> _Rendering:
    sub = _sample_chest(rng, spec)
    layers = _chest_layers(sub)
    clean = _chest_intensity(layers.density, sub)
    noise = sub.fields["grain"] * sub.noise_sigma
    if not abnormal:
        return _Rendering(clean, clean, noise, [])
    findings = _sample_chest_findings(rng, spec, sub, layers)
    big = [f for f in findings if f.kind == "cardiomegaly"]
    sick = _chest_layers(sub, (big[0].params["sx"], big[0].params["sy"])) if big else layers
    # overlapping findings share the air they replace (1 - product of what each leaves), so an
    # effusion over an opacity is no denser than fluid alone
    left = np.ones_like(sick.air)
    for f in findings:
        if f.kind != "cardiomegaly":
            left *= 1 - _chest_finding_fill(f, sub, sick)
    density = sick.density + sick.air * (1 - left)
    return _Rendering(clean, _chest_intensity(density, sub), noise, [f.kind for f in findings])


# --- fundus phantom ----------------------------------------------------------------------------


@dataclass
class FundusSubject:
    field_r: float
    field_c: tuple[float, float]
    eye: int  # +1: disc on the image right, macula on the left; -1 mirrored
    disc: tuple[float, float, float, float]  # cx, cy, radius, vertical aspect
    cdr: float
    cup_shift: float
    macula: tuple[float, float]
    brightness: dict
    vessels: list[dict]
    gain: float
    gamma: float
    noise_sigma: float
    fields: dict = field(repr=False)


def _sample_fundus(rng: np.random.Generator) -> FundusSubject:
    eye = 1 if rng.random() < 0.5 else -1
    fc = (_u(rng, -0.03, 0.03), _u(rng, -0.03, 0.03))
    dcx, dcy = fc[0] + eye * _u(rng, 0.36, 0.46), fc[1] + _u(rng, -0.08, 0.06)
    vessels = []
    for sign in (-1, 1):  # superior and inferior temporal arcades: a vein and an artery each
        for width, dark in ((0.026, 1.0), (0.019, 0.65)):
            t0 = _u(rng, 1.05, 1.35)
            vessels.append(
                dict(
                    sign=sign,
                    theta0=t0,
                    slope=_u(rng, 0.6, 0.85) * t0 / 1.2,
                    r0=0.0,
                    r1=1.7,
                    width=width * _u(rng, 0.9, 1.1),
                    dark=dark,
                    wiggle=_u(rng, 0.02, 0.06),
                    freq=_u(rng, 8, 16),
                    phase=_u(rng, 0, 6.3),
                )
            )
        for _ in range(2):  # nasal vessels, thinner and straighter
            vessels.append(
                dict(
                    sign=sign,
                    theta0=np.pi - _u(rng, 0.3, 0.9),
                    slope=_u(rng, -0.3, 0.2),
                    r0=0.0,
                    r1=_u(rng, 0.9, 1.4),
                    width=_u(rng, 0.012, 0.018),
                    dark=_u(rng, 0.5, 0.8),
                    wiggle=_u(rng, 0.03, 0.08),
                    freq=_u(rng, 8, 16),
                    phase=_u(rng, 0, 6.3),
                )
            )
    for _ in range(int(rng.integers(3, 6))):  # branches leaving an arcade towards the periphery
        parent = vessels[int(rng.integers(4))]
        rb = _u(rng, 0.3, 0.7)
        theta_b = parent["theta0"] - parent["slope"] * rb
        vessels.append(
            dict(
                sign=parent["sign"],
                theta0=theta_b + _u(rng, 0.25, 0.6) * rb,
                slope=_u(rng, 0.25, 0.6),
                r0=rb,
                r1=_u(rng, 1.1, 1.6),
                width=_u(rng, 0.01, 0.015),
                dark=_u(rng, 0.5, 0.8),
                wiggle=_u(rng, 0.02, 0.05),
                freq=_u(rng, 8, 16),
                phase=_u(rng, 0, 6.3),
            )
        )
    return FundusSubject(
        field_r=_u(rng, 0.9, 0.98),
        field_c=fc,
        eye=eye,
        disc=(dcx, dcy, _u(rng, 0.16, 0.2), _u(rng, 1.0, 1.12)),
        cdr=_u(rng, 0.3, 0.45),
        cup_shift=_u(rng, 0.0, 0.15),
        macula=(dcx - eye * _u(rng, 0.68, 0.78), dcy + _u(rng, 0.02, 0.08)),
        brightness=dict(
            bg=_u(rng, 0.4, 0.52),
            vignette=_u(rng, 0.25, 0.45),
            disc=_u(rng, 0.14, 0.2),
            cup=_u(rng, 0.2, 0.28),
            vessel=_u(rng, 0.12, 0.18),
            macula=_u(rng, 0.06, 0.12),
        ),
        vessels=vessels,
        gain=_u(rng, 0.9, 1.1),
        gamma=_u(rng, 0.87, 1.15),
        noise_sigma=_u(rng, 0.008, 0.022),
        fields=dict(
            texture=_smooth_noise(rng, 32),
            bias=_smooth_noise(rng, 3),
            grain=_smooth_noise(rng, RENDER_SIZE // 2),
        ),
    )


def _cup_layer(sub: FundusSubject, cdr: float, stretch: float = 1.0) -> np.ndarray:
    """The pale cup inside the disc, `cdr` times the disc radius (vertically `stretch` more)."""
    x, y = _grid()
    dcx, dcy, rd, aspect = sub.disc
    ccx = dcx - sub.eye * sub.cup_shift * rd * (1 - cdr)  # cup sits a little temporal, less so when large
    r = _ellipse_radius(x - ccx, y - dcy, cdr * rd, cdr * rd * aspect * stretch)
    return sub.brightness["cup"] * _soft_inside(r - 1, 0.12)


def _fundus_base(sub: FundusSubject) -> tuple[np.ndarray, np.ndarray]:
    """Everything but the cup: (brightness, field-of-view mask)."""
    x, y = _grid()
    b = sub.brightness
    fr = _ellipse_radius(x - sub.field_c[0], y - sub.field_c[1], sub.field_r, sub.field_r)
    fov = _soft_inside(fr - 1, 0.015)
    dcx, dcy, rd, aspect = sub.disc
    img = (
        b["bg"] * (1 - b["vignette"] * np.square(fr))
        + 0.02 * sub.fields["texture"]
        + 0.03 * sub.fields["bias"]
    )
    rdisc = _ellipse_radius(x - dcx, y - dcy, rd, rd * aspect)
    img += b["disc"] * _soft_inside(rdisc - 1, 0.08) + 0.04 * _soft_inside(rdisc - 1.5, 0.4)  # disc + halo
    rmac = _ellipse_radius(x - sub.macula[0], y - sub.macula[1], 0.16, 0.16)
    img -= b["macula"] * _soft_inside(rmac - 1, 0.8)
    # vessels in polar coordinates around the disc, angle 0 pointing at the macula
    xt, yt = -sub.eye * (x - dcx), y - dcy
    r = np.sqrt(np.square(xt) + np.square(yt))
    theta = np.arctan2(yt, xt)
    dark = np.zeros_like(img)
    for ves in sub.vessels:
        path = ves["sign"] * (
            ves["theta0"] - ves["slope"] * r + ves["wiggle"] * np.sin(ves["freq"] * r + ves["phase"])
        )
        dtheta = theta - path
        dtheta -= np.float32(2 * np.pi) * np.round(dtheta * np.float32(1 / (2 * np.pi)))  # wrap to [-pi, pi]
        # arc length to the vessel's centre line (exact enough where the profile is non-zero)
        width = ves["width"] * (1 - 0.35 * np.clip(r * (1 / 1.5), 0, 1))
        profile = np.square(np.clip(1 - np.square(r * dtheta / width), 0, None))
        extent = _soft_inside(ves["r0"] - r, 0.04) * _soft_inside(r - ves["r1"], 0.15)
        np.maximum(dark, ves["dark"] * profile * extent, out=dark)
    img -= b["vessel"] * dark
    return img, fov


def _fundus_intensity(img: np.ndarray, fov: np.ndarray, sub: FundusSubject) -> np.ndarray:
    return np.clip(sub.gain * img * fov, 0, 1) ** sub.gamma


def _render_fundus(rng: np.random.Generator, abnormal: bool) -> _Rendering:
    sub = _sample_fundus(rng)
    base, fov = _fundus_base(sub)
    clean = _fundus_intensity(base + _cup_layer(sub, sub.cdr), fov, sub)
    noise = sub.fields["grain"] * sub.noise_sigma * fov
    if not abnormal:
        return _Rendering(clean, clean, noise, [])
    # glaucomatous cupping: the cup widens and elongates vertically, thinning the rim
    cdr, stretch = _u(rng, 0.68, 0.88), _u(rng, 1.0, 1.15)
    return _Rendering(
        clean, _fundus_intensity(base + _cup_layer(sub, cdr, stretch), fov, sub), noise, ["large_cup"]
    )


# --- subjects, masks, boxes --------------------------------------------------------------------


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


@dataclass
class Subject:
    """One rendered subject at RENDER_SIZE."""

    image: np.ndarray  # (S, S) uint8, as written to the dataset
    normal: np.ndarray  # (S, S) uint8, the same subject (same noise) without its findings
    mask: np.ndarray  # (S, S) bool, the pixels the findings change; empty for normal subjects
    findings: list[str]  # kinds of the findings, [] for normal subjects


def render_subject(name: str, seed: int, group: str, index: int) -> Subject:
    """The `index`-th subject of a split group (train/0, unlabeled/0, unlabeled/1, test/0, test/1)."""
    with _one_blas_thread():
        return _render_subject(name, seed, group, index)


def _one_blas_thread() -> threadpool_limits:
    # the smooth fields are tiny matrix products; BLAS threads only add synchronisation cost
    # (25x slower on a busy 2-core machine) and one thread keeps the sums in a fixed order
    return threadpool_limits(1, user_api="blas")


def _retain_freed_memory() -> None:
    """Let glibc keep freed memory (up to 64 MB) instead of returning it to the OS at once.

    A subject allocates and frees some fifty 256 KB arrays; by default glibc unmaps them when the
    subject is done and the next one page-faults them back in, which doubled the render time.
    A no-op where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _render_subject(name: str, seed: int, group: str, index: int) -> Subject:
    spec = _dataset(name)
    if group not in GROUP_LABEL:
        raise ValueError(f"unknown split group {group!r}; known: {', '.join(GROUPS)}")
    rng = subject_rng(seed, name, group, index)
    abnormal = GROUP_LABEL[group] == 1
    r = _render_chest(rng, spec, abnormal) if spec.kind == "chest" else _render_fundus(rng, abnormal)
    normal = _to_uint8(r.clean + r.noise)
    if not abnormal:
        return Subject(normal, normal, np.zeros(normal.shape, bool), [])
    # the noise is the same in both renderings, so only the findings' own pixels differ
    return Subject(_to_uint8(r.sick + r.noise), normal, np.abs(r.sick - r.clean) > MASK_THRESHOLD, r.findings)


def mask_boxes(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (x_min, y_min, x_max, y_max) of the 8-connected components, in pixel-edge
    coordinates: a component covering columns a..b has x_min = a, x_max = b + 1."""
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    return [(sl[1].start, sl[0].start, sl[1].stop, sl[0].stop) for sl in ndimage.find_objects(labels)]


# --- Med-AD folder and prepared dataset --------------------------------------------------------


def _names(spec: SynthDataset, seed: int, counts: dict[str, int]) -> dict[str, list[str]]:
    """File names per group: numbers drawn by a seeded permutation, so neither the name nor the
    file order gives away the label; each list keeps subject order (its first k are stable)."""
    total = sum(counts.values())
    numbers = np.random.default_rng([seed, spec.code, 99]).permutation(total) + 1
    stem = spec.name.replace("-", "_")
    out, at = {}, 0
    for g in GROUPS:
        out[g] = [f"{stem}_{int(n):05d}.png" for n in numbers[at : at + counts[g]]]
        at += counts[g]
    return out


def _write_subject(task: tuple[str, int, str, int, str, str, int]) -> list[str]:
    """Render one subject into a Med-AD folder; returns its boxes.csv rows."""
    name, seed, group, index, fname, out, level = task
    sub = _render_subject(name, seed, group, index)
    img, mask = sub.image, sub.mask
    Image.fromarray(img).save(Path(out, "images", fname), compress_level=level)
    if GROUP_LABEL[group] == 0:
        return []
    Image.fromarray(mask.astype(np.uint8) * 255).save(
        Path(out, "masks", f"{Path(fname).stem}.png"), compress_level=level
    )
    return [f"{fname},{x0},{y0},{x1},{y1}" for x0, y0, x1, y1 in mask_boxes(mask)]


def _usable_cores() -> int:
    """Cores this process may run on (respects taskset / cgroup affinity where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _init_render_worker() -> None:
    threadpool_limits(1, user_api="blas")
    _retain_freed_memory()


def write_medad_folder(
    name: str, out: str | Path, seed: int = 0, size: str = "small", workers: int = 1, png_level: int = 1
) -> Path:
    """Render a synthetic dataset as a Med-AD folder: images/<name>.png (RENDER_SIZE, grey),
    data.json (the split), boxes.csv (name,x_min,y_min,x_max,y_max in pixels, x_max exclusive),
    masks/<stem>.png (abnormal images only). `workers` processes render (0 = all cores); the
    result does not depend on it. `png_level`: zlib level (0 is fastest, for a throwaway folder)."""
    spec = _dataset(name)
    names = _names(spec, seed, split_counts(name, size))
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    tasks = [
        (name, seed, g, k, fname, str(out), png_level) for g in GROUPS for k, fname in enumerate(names[g])
    ]
    workers = min(len(tasks), workers if workers > 0 else _usable_cores())
    if workers <= 1:
        _retain_freed_memory()
        with _one_blas_thread():
            rows = [_write_subject(t) for t in tasks]
    else:
        with multiprocessing.get_context("fork").Pool(workers, _init_render_worker) as pool:
            rows = pool.map(_write_subject, tasks, chunksize=max(1, len(tasks) // (workers * 8)))
    split = {
        "train": {"0": names["train/0"], "unlabeled": {"0": names["unlabeled/0"], "1": names["unlabeled/1"]}},
        "test": {"0": names["test/0"], "1": names["test/1"]},
    }
    (out / "data.json").write_text(json.dumps(split, indent=1))
    (out / "boxes.csv").write_text(
        "\n".join(["name,x_min,y_min,x_max,y_max"] + [r for rs in rows for r in rs]) + "\n"
    )
    return out


def make_synthetic(
    name: str,
    out: str | Path,
    seed: int = 0,
    size: str = "small",
    image_size: int = 64,
    keep_raw: str | Path | None = None,
    workers: int = 0,
) -> Path:
    """Generate a synthetic dataset and prepare it with the real ingest; returns the prepared folder.

    The Med-AD folder is written to a temporary folder, or kept at `keep_raw` (replaced if it holds
    an earlier one). `workers`: processes for rendering and for the ingest (0 = all cores).
    """
    from sagan.data.ingest import prepare_dataset  # the same code path as real data

    _dataset(name)
    split_counts(name, size)  # validates --size before any work
    if seed < 0:
        raise DatasetError(f"--seed must be >= 0, got {seed}")
    provenance = {
        "generator": "sagan.data.synthetic",
        "name": name,
        "seed": seed,
        "size": size,
        "render_size": RENDER_SIZE,
        "counts": split_counts(name, size),
    }
    if keep_raw is None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)  # the throwaway folder goes beside the output
        with tempfile.TemporaryDirectory(prefix=f".{Path(out).name}.medad-", dir=Path(out).parent) as tmp:
            raw = write_medad_folder(
                name, Path(tmp) / name, seed=seed, size=size, workers=workers, png_level=0
            )
            prepared = prepare_dataset(
                "medad", source=raw, out=out, image_size=image_size, workers=workers, name=name
            )
        source = f"sagan synth {name} --seed {seed} --size {size} (rendered to a temporary Med-AD folder)"
        return _record_provenance(prepared, provenance, source)
    keep = Path(keep_raw)
    if keep.exists() and any(keep.iterdir()) and not (keep / "data.json").is_file():
        raise DatasetError(
            f"--keep-raw {keep}: folder exists and is not a Med-AD folder; give a new or empty path"
        )
    keep.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{keep.name}.tmp-", dir=keep.parent))
    try:  # render beside the target and swap it in, so an interrupted run leaves no half folder there
        write_medad_folder(name, tmp, seed=seed, size=size, workers=workers)
        if keep.exists():
            shutil.rmtree(keep)
        tmp.rename(keep)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    prepared = prepare_dataset(
        "medad", source=keep, out=out, image_size=image_size, workers=workers, name=name
    )
    return _record_provenance(prepared, provenance, None)


def _record_provenance(prepared: Path, provenance: dict, source: str | None) -> Path:
    """Add how the data was generated to meta.json (rewritten atomically); `source` replaces the
    ingest's source path when that folder was temporary."""

    meta_path = Path(prepared) / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["synthetic"] = provenance
    if source is not None:
        meta["source"] = source
    write_atomic(meta_path, json.dumps(meta, indent=2, sort_keys=True))
    return Path(prepared)


def cli_synth(args: argparse.Namespace) -> int:
    """`sagan synth NAME --out DIR [--seed S] [--size small|medium|large] [--image-size 64] [--keep-raw DIR]`."""
    t0 = time.perf_counter()
    out = make_synthetic(
        args.name,
        args.out,
        seed=args.seed,
        size=args.size,
        image_size=args.image_size,
        keep_raw=getattr(args, "keep_raw", None),
    )
    counts = split_counts(args.name, args.size)
    print(
        f"wrote {out}: {args.name} ({args.size}, seed {args.seed}), {sum(counts.values())} images at "
        f"{args.image_size} px, {time.perf_counter() - t0:.1f} s"
    )
    return 0
