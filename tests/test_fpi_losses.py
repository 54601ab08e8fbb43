"""Pseudo anomalies (FPI) and losses against their definitions (method.md)."""

import torch

from sagan.fpi import foreign_patch_interpolation, fpi_boxes
from sagan.losses import anomaly_map, anomaly_score, gradient_penalty
from sagan.trainer import lr_factor


def test_fpi_box_sizes_and_positions_follow_the_code():
    rng = torch.Generator().manual_seed(0)
    boxes = fpi_boxes(20000, 64, rng)
    centre_y = (boxes[:, 0] + boxes[:, 1]) // 2  # exact when the box is not clipped
    # centres are uniform integers in [int(0.2*64), int(0.8*64)) = [12, 51); half-widths in [3, 13)
    half = (boxes[:, 1] - boxes[:, 0]) // 2
    assert boxes[:, 0].min() >= 0 and boxes[:, 1].max() <= 64
    assert half.min() == 3 and half.max() == 12
    assert centre_y.min() == 12 and centre_y.max() == 50
    assert torch.equal(boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2])  # square (never clipped at 64)


def test_fpi_blend_alpha_and_source():
    rng = torch.Generator().manual_seed(3)
    x = torch.arange(8, dtype=torch.float32)[:, None, None, None].expand(8, 1, 64, 64).clone()  # image i == i
    x_p, m = foreign_patch_interpolation(x, rng)
    for i in range(8):
        inside = m[i, 0] > 0
        alpha = m[i, 0][inside].unique()
        assert len(alpha) == 1 and 0 <= alpha.item() < 1  # one alpha per image, only inside the box
        assert torch.equal(x_p[i, 0][~inside], x[i, 0][~inside])  # untouched outside
        src = (x_p[i, 0][inside] - (1 - alpha) * i) / alpha  # recovers the source image's value
        assert torch.allclose(src, src[0].expand_as(src), atol=1e-4) and round(src[0].item()) != i
    # alpha is uniform on [0, 1): its mean over many images is about 0.5
    _, m = foreign_patch_interpolation(torch.zeros(4000, 1, 64, 64), torch.Generator().manual_seed(0))
    assert abs(m.flatten(1).max(1).values.mean().item() - 0.5) < 0.02


def test_fpi_is_seeded():
    x = torch.randn(6, 1, 64, 64)
    a = foreign_patch_interpolation(x, torch.Generator().manual_seed(5))[0]
    b = foreign_patch_interpolation(x, torch.Generator().manual_seed(5))[0]
    assert torch.equal(a, b)


class LinearCritic(torch.nn.Module):
    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x):
        return (x.flatten(1) * self.w.flatten()).sum(1) + 0.3


def test_gradient_penalty_closed_form_on_linear_critic():
    # D(x) = <w, x> + b has gradient w everywhere: GP = (||w||_2 - 1)^2 whatever the interpolation
    w = torch.randn(1, 8, 8, generator=torch.Generator().manual_seed(0))
    real, fake = torch.randn(5, 1, 8, 8), torch.randn(5, 1, 8, 8)
    gp = gradient_penalty(LinearCritic(w), real, fake, torch.Generator().manual_seed(1))
    assert torch.allclose(gp, (w.norm() - 1) ** 2, rtol=1e-5)
    unit = w / w.norm()
    assert gradient_penalty(LinearCritic(unit), real, fake, torch.Generator()).item() < 1e-10


def test_anomaly_score_definition():
    x = torch.full((2, 1, 4, 4), -1.0)
    r = x.clone()
    r[1] = 1.0
    assert torch.equal(anomaly_map(x, r)[1], torch.ones(1, 4, 4))
    assert anomaly_score(x, r).tolist() == [0.0, 1.0]


def test_lr_schedule():
    assert lr_factor(0, 100_000, "linear", 1000) == 1.0
    assert lr_factor(49_999, 100_000, "linear", 1000) == 1.0
    assert lr_factor(50_999, 100_000, "linear", 1000) == 1.0
    assert lr_factor(51_000, 100_000, "linear", 1000) == 1 - 1000 / 50_000
    assert lr_factor(99_999, 100_000, "linear", 1000) == 1 - 49_000 / 50_000
    # the authors' code subtracts lr/decay_iters per update: nearly constant
    assert abs(lr_factor(99_999, 100_000, "official", 1000) - (1 - 49 / 50_000)) < 1e-12
    assert lr_factor(99_999, 100_000, "none", 1000) == 1.0
