"""Chest radiograph phantom: body, lungs, heart, ribs, clavicles, spine, and the lung findings
(opacity, nodule, effusion) and cardiomegaly of synth-rsna and synth-vindr."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sagan.data.synthetic.draw import (
    Rendering,
    ellipse_radius,
    grid,
    pixel_window,
    smooth_noise,
    soft_inside,
    uniform,
)
from sagan.data.synthetic.specs import RENDER_SIZE, SynthDataset


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
                cx=side * uniform(rng, 0.36, 0.42),
                cy=uniform(rng, -0.1, -0.02) - (0.03 if side < 0 else 0),
                ax=uniform(rng, 0.3, 0.36) + (0.01 if side < 0 else 0),
                ay=uniform(rng, 0.58, 0.66),
                dome=uniform(rng, 0.16, 0.28),
                medial=uniform(rng, 0.55, 0.75),
            )
        )
    heart = dict(
        cx=uniform(rng, 0.07, 0.13),
        cy=uniform(rng, 0.24, 0.32),
        ax=uniform(rng, 0.29, 0.34),
        ay=uniform(rng, 0.2, 0.25),
        angle=uniform(rng, 0.3, 0.55),
    )
    return ChestSubject(
        pose=(
            uniform(rng, 0.93, 1.05),
            uniform(rng, -0.06, 0.06),
            uniform(rng, -0.05, 0.05),
            uniform(rng, -0.03, 0.06),
        ),
        body_width=uniform(rng, 0.86, 0.96),
        neck_width=uniform(rng, 0.24, 0.3),
        lungs=lungs,
        heart=heart,
        rib_start=uniform(rng, -0.82, -0.74),
        rib_spacing=uniform(rng, 0.13, 0.15),
        rib_curve=uniform(rng, 0.7, 0.95),
        clavicle_y=uniform(rng, -0.62, -0.54),
        tissue=uniform(rng, 0.6, 0.7),
        air=uniform(rng, 0.32, 0.42),
        bone=uniform(rng, 0.08, 0.12),
        gain=uniform(rng, *spec.exposure),
        offset=uniform(rng, -0.03, 0.05),
        gamma=uniform(rng, 0.87, 1.15),
        noise_sigma=uniform(rng, 0.008, 0.022),
        fields=dict(
            bias=smooth_noise(rng, 3),
            texture=smooth_noise(rng, 24),
            markings=smooth_noise(rng, 12),
            grain=smooth_noise(rng, RENDER_SIZE // 2),
        ),
    )


def _chest_layers(sub: ChestSubject, heart_scale: tuple[float, float] = (1.0, 1.0)) -> ChestLayers:
    x, y = grid()
    scale, rot, tx, ty = sub.pose
    c, s = np.float32(np.cos(rot)), np.float32(np.sin(rot))
    u = (c * (x - tx) + s * (y - ty)) / scale
    v = (-s * (x - tx) + c * (y - ty)) / scale
    au = np.abs(u)

    def window(u0: float, u1: float, v0: float, v1: float) -> tuple[slice, slice]:
        """Pixel window holding the patient-coordinate box (small parts are drawn there only)."""
        cu, cv = np.array([u0, u1, u0, u1]), np.array([v0, v0, v1, v1])
        return pixel_window(tx + scale * (c * cu - s * cv), ty + scale * (s * cu + c * cv))

    # body: neck widening into sloping shoulders, trunk slightly narrower towards the abdomen
    shoulders = soft_inside(-0.66 - v, 0.26)  # 0 above the shoulders, 1 below
    half_width = (
        sub.neck_width + (sub.body_width - sub.neck_width) * shoulders - 0.08 * np.clip(v - 0.4, 0, 1)
    )
    body = soft_inside(au - half_width, 0.025)
    tissue = sub.tissue * (1 + 0.15 * soft_inside(0.5 - v, 0.3) + 0.03 * sub.fields["bias"])

    # heart: tilted ellipse, apex to the patient's left (image right); cardiomegaly scales it
    h = sub.heart
    hax, hay = h["ax"] * heart_scale[0], h["ay"] * heart_scale[1]
    hcx = h["cx"] + 0.45 * (hax - h["ax"])  # an enlarged heart grows mostly towards the apex
    heart = np.zeros_like(u)
    w = window(hcx - hax - 0.05, hcx + hax + 0.05, h["cy"] - hax - 0.05, h["cy"] + hax + 0.05)
    ca, sa = np.float32(np.cos(h["angle"])), np.float32(np.sin(h["angle"]))
    du, dv = u[w] - hcx, v[w] - h["cy"]
    heart[w] = soft_inside(ellipse_radius(ca * du + sa * dv, -sa * du + ca * dv, hax, hay) - 1, 0.07)
    mediastinum = heart.copy()
    w = window(-0.05, 0.25, -0.5, -0.22)  # aortic knob bulging into the left lung
    mediastinum[w] = np.maximum(
        mediastinum[w], soft_inside(ellipse_radius(u[w] - 0.1, v[w] + 0.36, 0.09, 0.08) - 1, 0.15)
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
        outline = soft_inside(np.maximum(lat - lateral_edge, -medial_edge - lat), 0.05)
        outline *= soft_inside(-1 - q, 0.03)  # nothing above the apex
        dome = 1 - lung["dome"] * (1 - np.square(np.clip((lat + 0.1) / 0.9, -1, 1)))  # in units of q
        cut = soft_inside((q - dome) * lung["ay"], 0.015)  # the hemidiaphragm
        lungs[i][w] = outline * cut * (1 - mediastinum[w]) * soft_inside(0.08 - au[w], 0.03)

    lung_any = lungs[0] + lungs[1]
    # posterior ribs: arcs from the spine descending laterally, all at once through the phase;
    # seen mainly over the lungs, fading out at the shoulders and below the diaphragm
    rib_line = v - (-0.1 * au + sub.rib_curve * np.square(au))
    phase = (rib_line - sub.rib_start) / sub.rib_spacing
    rib_dist = np.abs(phase - np.round(phase)) * sub.rib_spacing
    ribs = (
        soft_inside(rib_dist - 0.026, 0.012)
        * (0.3 + 0.7 * lung_any)
        * shoulders
        * soft_inside(v - 0.62, 0.08)
    )
    ribs *= soft_inside(0.05 - au, 0.02)
    # clavicles: bars rising laterally from the sternum, over the lung apices
    clavicles = np.zeros_like(u)
    w = window(-0.75, 0.75, sub.clavicle_y - 0.25, sub.clavicle_y + 0.1)
    cl = au[w] - 0.06
    clav_line = v[w] - (sub.clavicle_y - 0.2 * cl + 0.1 * np.square(cl))
    clavicles[w] = (
        soft_inside(np.abs(clav_line) - 0.028, 0.01) * soft_inside(-cl, 0.01) * soft_inside(cl - 0.58, 0.06)
    )
    # spine: vertebral bodies with darker discs, seen through the mediastinum; dark trachea above
    spine = np.zeros_like(u)
    w = window(-0.1, 0.1, -1.5, 1.5)
    disc = np.abs(((v[w] - sub.rib_start) / (0.9 * sub.rib_spacing)) % 1 - 0.5)
    spine[w] = soft_inside(au[w] - 0.065, 0.02) * (0.55 + 0.45 * soft_inside(disc - 0.38, 0.06))
    spine[w] -= 1.2 * soft_inside(au[w] - 0.035, 0.012) * soft_inside(v[w] + 0.3, 0.05)  # trachea

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
    x, y = grid()
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
                    dict(
                        cx=cx,
                        cy=cy,
                        rx=uniform(rng, 0.18, 0.28),
                        ry=uniform(rng, 0.24, 0.4),
                        amp=uniform(rng, 0.8, 1.1),
                    ),
                    dict(warp=smooth_noise(rng, 8), texture=smooth_noise(rng, 20)),
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
                        r=uniform(rng, 0.045, 0.09),
                        aspect=uniform(rng, 0.85, 1.15),
                        amp=uniform(rng, 0.75, 1.0),
                    ),
                )
            )
        elif kind == "effusion":
            out.append(
                Finding(
                    "effusion",
                    side,
                    dict(
                        height=uniform(rng, 0.18, 0.42),
                        meniscus=uniform(rng, 0.1, 0.22),
                        amp=uniform(rng, 0.9, 1.0),
                    ),
                )
            )
        else:
            out.append(
                Finding("cardiomegaly", -1, dict(sx=uniform(rng, 1.4, 1.65), sy=uniform(rng, 1.1, 1.25)))
            )
    return out


def _chest_finding_fill(f: Finding, sub: ChestSubject, layers: ChestLayers) -> np.ndarray:
    """Fraction (0..1) of the lung air a finding replaces with fluid or tissue, within its lung field.
    At 1 the region has soft-tissue density (like the chest wall): a finding never gets whiter."""
    x, y = grid()
    p = f.params
    # its own lung only; the air map already fades at the lung edge, so no second fade here
    lung = (layers.lungs[f.side] > 0).astype(np.float32)
    out = np.zeros_like(lung)
    if f.kind == "opacity":
        # irregular outline (warped radius), patchy inside, fuzzy edge reaching zero at r = 1
        w = pixel_window(
            np.array([p["cx"] - 1.6 * p["rx"], p["cx"] + 1.6 * p["rx"]]),
            np.array([p["cy"] - 1.6 * p["ry"], p["cy"] + 1.6 * p["ry"]]),
        )
        # (the warp is clipped so the outline stays inside the window and the radius positive)
        warp = np.clip(1 + 0.25 * f.fields["warp"][w], 0.6, 1.5)
        r = ellipse_radius(x[w] - p["cx"], y[w] - p["cy"], p["rx"], p["ry"]) / warp
        blob = soft_inside(r - 0.75, 0.25)
        patches = np.clip(0.85 + 0.2 * f.fields["texture"][w], 0.4, 1.3)
        out[w] = np.minimum(p["amp"] * blob * patches, 1) * lung[w]
    elif f.kind == "nodule":
        ry = p["r"] * p["aspect"]
        w = pixel_window(
            np.array([p["cx"] - 1.5 * p["r"], p["cx"] + 1.5 * p["r"]]),
            np.array([p["cy"] - 1.5 * ry, p["cy"] + 1.5 * ry]),
        )
        r = ellipse_radius(x[w] - p["cx"], y[w] - p["cy"], p["r"], ry)
        out[w] = p["amp"] * soft_inside(r - 1, 0.35) * lung[w]
    elif f.kind == "effusion":
        # fluid fills the costophrenic angle; its surface (meniscus) climbs along the lateral wall
        L = sub.lungs[f.side]
        lateral = np.clip(L["side"] * (layers.u - L["cx"]) / L["ax"], -1, 1)
        surface = L["cy"] + L["ay"] - p["height"] - p["meniscus"] * np.square((lateral + 1) / 2)
        fluid = soft_inside(surface - layers.v, 0.035) * (
            0.85 + 0.15 * soft_inside(surface + 0.1 - layers.v, 0.1)
        )
        out = p["amp"] * fluid * lung
    else:
        raise ValueError(f"no layer for finding {f.kind!r}")
    return out


def _chest_intensity(density: np.ndarray, sub: ChestSubject) -> np.ndarray:
    """Exposure curve: gain, offset, gamma (pointwise, so a finding changes only its own pixels)."""
    return np.clip(sub.offset + sub.gain * density + 0.1, 0, 1) ** sub.gamma


def render_chest(rng: np.random.Generator, spec: SynthDataset, abnormal: bool) -> Rendering:
    sub = _sample_chest(rng, spec)
    layers = _chest_layers(sub)
    clean = _chest_intensity(layers.density, sub)
    noise = sub.fields["grain"] * sub.noise_sigma
    if not abnormal:
        return Rendering(clean, clean, noise, [])
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
    return Rendering(clean, _chest_intensity(density, sub), noise, [f.kind for f in findings])
