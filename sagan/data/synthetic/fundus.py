"""Fundus photograph phantom: field of view, optic disc and cup, vessels, macula; and the enlarged
cup (glaucomatous cupping) of synth-lag."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sagan.data.synthetic.draw import Rendering, ellipse_radius, grid, smooth_noise, soft_inside, uniform
from sagan.data.synthetic.specs import RENDER_SIZE


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
    fc = (uniform(rng, -0.03, 0.03), uniform(rng, -0.03, 0.03))
    dcx, dcy = fc[0] + eye * uniform(rng, 0.36, 0.46), fc[1] + uniform(rng, -0.08, 0.06)
    vessels = []
    for sign in (-1, 1):  # superior and inferior temporal arcades: a vein and an artery each
        for width, dark in ((0.026, 1.0), (0.019, 0.65)):
            t0 = uniform(rng, 1.05, 1.35)
            vessels.append(
                dict(
                    sign=sign,
                    theta0=t0,
                    slope=uniform(rng, 0.6, 0.85) * t0 / 1.2,
                    r0=0.0,
                    r1=1.7,
                    width=width * uniform(rng, 0.9, 1.1),
                    dark=dark,
                    wiggle=uniform(rng, 0.02, 0.06),
                    freq=uniform(rng, 8, 16),
                    phase=uniform(rng, 0, 6.3),
                )
            )
        for _ in range(2):  # nasal vessels, thinner and straighter
            vessels.append(
                dict(
                    sign=sign,
                    theta0=np.pi - uniform(rng, 0.3, 0.9),
                    slope=uniform(rng, -0.3, 0.2),
                    r0=0.0,
                    r1=uniform(rng, 0.9, 1.4),
                    width=uniform(rng, 0.012, 0.018),
                    dark=uniform(rng, 0.5, 0.8),
                    wiggle=uniform(rng, 0.03, 0.08),
                    freq=uniform(rng, 8, 16),
                    phase=uniform(rng, 0, 6.3),
                )
            )
    for _ in range(int(rng.integers(3, 6))):  # branches leaving an arcade towards the periphery
        parent = vessels[int(rng.integers(4))]
        rb = uniform(rng, 0.3, 0.7)
        theta_b = parent["theta0"] - parent["slope"] * rb
        vessels.append(
            dict(
                sign=parent["sign"],
                theta0=theta_b + uniform(rng, 0.25, 0.6) * rb,
                slope=uniform(rng, 0.25, 0.6),
                r0=rb,
                r1=uniform(rng, 1.1, 1.6),
                width=uniform(rng, 0.01, 0.015),
                dark=uniform(rng, 0.5, 0.8),
                wiggle=uniform(rng, 0.02, 0.05),
                freq=uniform(rng, 8, 16),
                phase=uniform(rng, 0, 6.3),
            )
        )
    return FundusSubject(
        field_r=uniform(rng, 0.9, 0.98),
        field_c=fc,
        eye=eye,
        disc=(dcx, dcy, uniform(rng, 0.16, 0.2), uniform(rng, 1.0, 1.12)),
        cdr=uniform(rng, 0.3, 0.45),
        cup_shift=uniform(rng, 0.0, 0.15),
        macula=(dcx - eye * uniform(rng, 0.68, 0.78), dcy + uniform(rng, 0.02, 0.08)),
        brightness=dict(
            bg=uniform(rng, 0.4, 0.52),
            vignette=uniform(rng, 0.25, 0.45),
            disc=uniform(rng, 0.14, 0.2),
            cup=uniform(rng, 0.2, 0.28),
            vessel=uniform(rng, 0.12, 0.18),
            macula=uniform(rng, 0.06, 0.12),
        ),
        vessels=vessels,
        gain=uniform(rng, 0.9, 1.1),
        gamma=uniform(rng, 0.87, 1.15),
        noise_sigma=uniform(rng, 0.008, 0.022),
        fields=dict(
            texture=smooth_noise(rng, 32),
            bias=smooth_noise(rng, 3),
            grain=smooth_noise(rng, RENDER_SIZE // 2),
        ),
    )


def _cup_layer(sub: FundusSubject, cdr: float, stretch: float = 1.0) -> np.ndarray:
    """The pale cup inside the disc, `cdr` times the disc radius (vertically `stretch` more)."""
    x, y = grid()
    dcx, dcy, rd, aspect = sub.disc
    ccx = dcx - sub.eye * sub.cup_shift * rd * (1 - cdr)  # cup sits a little temporal, less so when large
    r = ellipse_radius(x - ccx, y - dcy, cdr * rd, cdr * rd * aspect * stretch)
    return sub.brightness["cup"] * soft_inside(r - 1, 0.12)


def _fundus_base(sub: FundusSubject) -> tuple[np.ndarray, np.ndarray]:
    """Everything but the cup: (brightness, field-of-view mask)."""
    x, y = grid()
    b = sub.brightness
    fr = ellipse_radius(x - sub.field_c[0], y - sub.field_c[1], sub.field_r, sub.field_r)
    fov = soft_inside(fr - 1, 0.015)
    dcx, dcy, rd, aspect = sub.disc
    img = (
        b["bg"] * (1 - b["vignette"] * np.square(fr))
        + 0.02 * sub.fields["texture"]
        + 0.03 * sub.fields["bias"]
    )
    rdisc = ellipse_radius(x - dcx, y - dcy, rd, rd * aspect)
    img += b["disc"] * soft_inside(rdisc - 1, 0.08) + 0.04 * soft_inside(rdisc - 1.5, 0.4)  # disc + halo
    rmac = ellipse_radius(x - sub.macula[0], y - sub.macula[1], 0.16, 0.16)
    img -= b["macula"] * soft_inside(rmac - 1, 0.8)
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
        extent = soft_inside(ves["r0"] - r, 0.04) * soft_inside(r - ves["r1"], 0.15)
        np.maximum(dark, ves["dark"] * profile * extent, out=dark)
    img -= b["vessel"] * dark
    return img, fov


def _fundus_intensity(img: np.ndarray, fov: np.ndarray, sub: FundusSubject) -> np.ndarray:
    return np.clip(sub.gain * img * fov, 0, 1) ** sub.gamma


def render_fundus(rng: np.random.Generator, abnormal: bool) -> Rendering:
    sub = _sample_fundus(rng)
    base, fov = _fundus_base(sub)
    clean = _fundus_intensity(base + _cup_layer(sub, sub.cdr), fov, sub)
    noise = sub.fields["grain"] * sub.noise_sigma * fov
    if not abnormal:
        return Rendering(clean, clean, noise, [])
    # glaucomatous cupping: the cup widens and elongates vertically, thinning the rim
    cdr, stretch = uniform(rng, 0.68, 0.88), uniform(rng, 1.0, 1.15)
    return Rendering(
        clean, _fundus_intensity(base + _cup_layer(sub, cdr, stretch), fov, sub), noise, ["large_cup"]
    )
