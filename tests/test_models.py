"""Networks: shapes, pinned parameter counts, patch/stitch inverse, position code behaviour."""

import pytest
import torch

from sagan.models.attention_gate import AttentionGate
from sagan.models.discriminator import CentralTaps, Discriminator
from sagan.models.generator import SAGANGenerator, StarGANGenerator
from sagan.models.position_code import code_bits, from_patches, position_codes, to_patches


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# Authors' full-size model (g_conv_dim = d_conv_dim = 64, 6 residual blocks, N = 2, 64 px).
AUTHORS_G, AUTHORS_D = 44_758_979, 44_719_040


def test_full_size_parameter_counts_match_authors():
    assert n_params(SAGANGenerator(network="authors")) == AUTHORS_G  # exact
    # the critic in the authors' layout (every layer a full 4x4 conv) is theirs exactly; the project's
    # last conv keeps only the 2x2 central taps of its 1024 -> 2048 kernel (the other 12 meet padding)
    assert n_params(Discriminator(image_size=128)) == AUTHORS_D  # 128 px: the last conv sees 4x4
    assert n_params(Discriminator()) == AUTHORS_D - 12 * 1024 * 2048 == 19_553_216
    # the default network uses the same parameters (the code term moves after the norm)
    assert n_params(SAGANGenerator()) == AUTHORS_G
    # Table 3 variants: without ACM the fusions lose their 3 code channels (3 * (128 + 256 + 512));
    # without ARRM the gates and the multi-level fusion are gone
    assert n_params(SAGANGenerator(use_acm=False)) == AUTHORS_G - 3 * (128 + 256 + 512) == 44_756_291
    assert n_params(SAGANGenerator(use_arrm=False)) == 43_478_912
    assert n_params(SAGANGenerator(use_acm=False, use_arrm=False)) == 43_476_224


def test_shapes_full_size():
    x = torch.randn(2, 1, 64, 64)
    g, d = SAGANGenerator(), Discriminator()
    assert g(x).shape == (2, 1, 64, 64)
    assert g.additive_map(x).shape == (2, 1, 64, 64)
    assert d(x).shape == (2,)
    assert d.main(x).shape == (2, 2048, 1, 1)  # a global critic at 64 px
    assert StarGANGenerator(16, 2)(x).shape == (2, 1, 64, 64)


@pytest.mark.parametrize("use_acm,use_arrm", [(False, False), (True, False), (False, True), (True, True)])
def test_ablation_variants_run(use_acm, use_arrm):
    g = SAGANGenerator(8, 1, use_acm=use_acm, use_arrm=use_arrm)
    out = g(torch.randn(3, 1, 32, 32), gate_p=0.95, rng=torch.Generator().manual_seed(0))
    assert out.shape == (3, 1, 32, 32) and out.abs().max() <= 1


def test_patch_stitch_exact_inverse():
    x = torch.randn(3, 5, 64, 64)
    for n in (1, 2, 4):
        p = to_patches(x, n)
        assert p.shape == (3 * n * n, 5, 64 // n, 64 // n)
        assert torch.equal(from_patches(p, n), x)
    p = to_patches(x, 2)  # order TL, TR, BL, BR
    assert torch.equal(p[1], x[0, :, :32, 32:]) and torch.equal(p[2], x[0, :, 32:, :32])


def test_position_codes():
    assert code_bits(2) == 3 and code_bits(4) == 5
    assert position_codes(2).tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1]]


def _with_code(g: SAGANGenerator, codes: torch.Tensor) -> SAGANGenerator:
    for fuse in g.fuse:
        fuse.codes = codes
    return g


@pytest.mark.parametrize("network,matters", [("authors", False), ("paper", True)])
def test_position_code_effect(network, matters):
    torch.manual_seed(0)
    g = SAGANGenerator(8, 1, network=network)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        ref = g(x)
        codes = g.fuse[0].codes.clone()
        zero = _with_code(g, torch.zeros_like(codes))(x)
    diff = (ref - zero).abs().max().item()
    if matters:
        assert diff > 1e-3
    else:  # the InstanceNorm after the 1x1 fusion removes a spatially constant code
        assert diff < 2e-5


def test_without_acm_the_fusions_get_no_code_and_the_image_is_one_patch():
    g = SAGANGenerator(8, 1, use_acm=False)
    assert g.n == 1 and all(f.codes.shape == (1, 0) for f in g.fuse)
    assert [f.conv.in_channels for f in g.fuse] == [16, 32, 64]


def test_without_arrm_skips_pass_ungated_and_i_x_comes_from_the_last_level():
    g = SAGANGenerator(8, 1, use_arrm=False)
    assert all(level.gate is None for level in g.levels)
    assert not hasattr(g, "merge") and not hasattr(g, "lift")


def test_attention_gate_coefficients_in_unit_interval():
    gate = AttentionGate(16, 8)
    f, g = torch.randn(2, 16, 8, 8), torch.randn(2, 8, 8, 8)
    a = gate.coefficients(f, g)
    assert a.shape == (2, 1, 8, 8) and (a >= 0).all() and (a <= 1).all()
    assert torch.allclose(gate(f, g), a * g)


def test_gate_off_is_deterministic_and_gate_on_is_random():
    g = SAGANGenerator(8, 1)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(g(x), g(x))
        a = g(x, 0.5, torch.Generator().manual_seed(1))
        b = g(x, 0.5, torch.Generator().manual_seed(2))
    assert not torch.equal(a, b)


def test_critic_central_taps_equal_the_conv_in_value_gradient_and_double_backward():
    """CentralTaps computes the last critic conv (2x2 -> 1x1) from the kernel's central taps; it must
    be the 4x4 stride-2 conv whatever the outer taps hold, including the penalty's double backward,
    and the conv's outer taps must get a zero gradient (so Adam never moves them)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(16, 32, 4, 2, 1).double()  # random outer taps
    fast = CentralTaps(conv)
    assert fast.weight.shape == (32, 16, 2, 2) and fast.weight.is_contiguous()
    x = torch.randn(3, 16, 2, 2, dtype=torch.float64, requires_grad=True)
    out = []
    for net in (fast, conv, fast.as_conv()):
        y = net(x)
        (g,) = torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)  # as in the gradient penalty
        (y.sum() + g.pow(2).sum()).backward()
        w = net.weight.grad if net is fast else net.weight.grad[:, :, 1:3, 1:3]
        out.append((y.detach(), g.detach(), w, net.bias.grad))
        if net is conv:
            assert conv.weight.grad[:, :, [0, 3]].abs().max() == 0
            assert conv.weight.grad[:, :, :, [0, 3]].abs().max() == 0
    for other in out[1:]:
        for a, b in zip(out[0], other):
            assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="2x2"):
        fast(torch.randn(1, 16, 4, 4, dtype=torch.float64))


def test_critic_central_taps_keep_the_full_convs_initial_values():
    """The critic is built (and initialised, default or He) as full convs, then the last one is cut to
    its central taps: the same random draws, so the same network as before the cut."""
    for init in ("default", "kaiming"):
        torch.manual_seed(0)
        full = Discriminator(8, 5, init, image_size=64)  # 64 px: the last conv sees 2x2 only at 32 px
        torch.manual_seed(0)
        cut = Discriminator(8, 5, init, image_size=32)
        assert isinstance(cut.main[-2], CentralTaps) and not isinstance(full.main[-2], CentralTaps)
        assert torch.equal(cut.main[-2].weight, full.main[-2].weight[:, :, 1:3, 1:3])
        x = torch.randn(2, 1, 32, 32)
        assert torch.allclose(cut(x), full(x), atol=1e-6)


def test_critic_state_dict_is_the_plain_conv_critics():
    d = Discriminator(8, 5, image_size=32)
    assert all(isinstance(m, torch.nn.Conv2d) for m in d.main[:-2:2]) and isinstance(d.main[-2], CentralTaps)
    assert [k for k in d.state_dict()] == [
        f"main.{2 * i}.{p}" for i in range(5) for p in ("weight", "bias")
    ] + ["head.weight"]


def input_gradient_norm(critic: Discriminator, x: torch.Tensor) -> float:
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x)
    return grad.flatten(1).norm(dim=1).mean().item()


@pytest.mark.parametrize("size,width,repeat", [(32, 32, 5), (64, 64, 6)])
def test_critic_starts_nearly_constant_at_default_init_and_not_at_kaiming(size, width, repeat):
    """Why the demo's critics start from He init (d_init=kaiming): PyTorch's default init, the
    authors', shrinks the signal in every layer, so the critic starts with an input gradient ~1e-3 (its
    gradient penalty ~1, no signal to G); He init for LeakyReLU(0.01) starts it two orders higher."""
    torch.manual_seed(0)
    x = torch.rand(8, 1, size, size) * 2 - 1
    torch.manual_seed(0)
    default = input_gradient_norm(Discriminator(width, repeat, image_size=size), x)
    torch.manual_seed(0)
    critic = Discriminator(width, repeat, init="kaiming", image_size=size)
    kaiming = input_gradient_norm(critic, x)
    assert default < 2e-3 and kaiming > 0.05 and kaiming > 50 * default
    assert all(not critic.main[i].bias.detach().any() for i in range(0, 2 * repeat, 2))
    # the same modules and names: only the initial values differ
    assert critic.state_dict().keys() == Discriminator(width, repeat, image_size=size).state_dict().keys()
