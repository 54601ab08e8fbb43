"""SAGAN's training step and prediction, pinned with instrumented networks (method.md, Eq. 1-7).

The method is built with its public constructor. Its generator and critic are then wrapped by
recorders that keep the real networks (so the method's own optimisers still step their parameters)
and log every call: the images that went in, whether they carried a graph back to the generator,
what came out, and when each optimiser stepped. The assertions compare the method's returned losses
with formulas evaluated on those logged values, never with a second run of the method's own code.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from sagan.config import validate_model
from sagan.fpi import foreign_patch_interpolation
from sagan.methods import get_method
from sagan.methods.base import Batch
from sagan.methods.gan import G_PASSES
from sagan.methods.sagan import SAGAN, SAGANConfig

SIZE, B = 32, 4


@dataclass
class Call:
    who: str  # "G", "D", or "step g" / "step d" (an optimiser step)
    x: torch.Tensor | None = None  # input images, detached copy
    out: torch.Tensor | None = None  # output, detached copy
    graph: bool = False  # the input carried autograd history (a path back to the generator)
    leaf_grad: bool = False  # the input was a leaf that requires grad (the gradient penalty's x_hat)
    gate_p: float | None = None  # the generator's Bernoulli gate probability (None = gate off)


class Recorder(nn.Module):
    """Runs the wrapped network unchanged and logs the call."""

    def __init__(self, who: str, net: nn.Module, log: list[Call]):
        super().__init__()
        self.who, self.net, self.log = who, net, log

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        out = self.net(x, **kwargs)
        leaf = x.requires_grad and x.grad_fn is None
        self.log.append(
            Call(
                self.who,
                x.detach().clone(),
                out.detach().clone(),
                x.grad_fn is not None,
                leaf,
                kwargs.get("gate_p"),
            )
        )
        return out


def optimizers(method) -> dict[str, torch.optim.Optimizer]:
    opts = method.optimizers
    return opts() if callable(opts) else opts


def instrumented(**overrides) -> tuple[SAGAN, list[Call]]:
    cfg = SAGANConfig(conv_dim=4, n_res=1, d_conv_dim=4, d_repeat_num=3, **overrides)
    validate_model(cfg)
    torch.manual_seed(0)
    method = SAGAN(cfg, SIZE, 1000)
    log: list[Call] = []
    method.G = Recorder("G", method.G, log)
    method.D = Recorder("D", method.D, log)
    for name, opt in optimizers(method).items():
        opt.register_step_post_hook(lambda *_, name=name: log.append(Call(f"step {name}")))
    return method, log


def make_batch(zero_u: bool = False, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    x_n = torch.rand(B, 1, SIZE, SIZE, generator=g) * 2 - 1
    x_u = torch.rand(B, 1, SIZE, SIZE, generator=g) * 2 - 1
    x_p, mask = foreign_patch_interpolation(x_n, g)
    return Batch(normal=x_n, unlabeled=None if zero_u else x_u, pseudo=x_p, pseudo_mask=mask)


def find(calls: list[Call], who: str, images: torch.Tensor) -> tuple[Call, torch.Tensor]:
    """The call of `who` whose input holds exactly `images` (alone or as a slice of a larger batch),
    and the matching rows of its output."""
    n = len(images)
    for c in calls:
        if c.who == who:
            for i in range(len(c.x) - n + 1):
                if torch.equal(c.x[i : i + n], images):
                    return c, c.out[i : i + n]
    raise AssertionError(f"{who} never saw these images")


def phases(log: list[Call]) -> tuple[list[Call], list[Call]]:
    """Split one iteration's log at the critic's optimiser step: (critic phase, generator phase)."""
    k = [c.who for c in log].index("step d")
    return log[:k], log[k + 1 :]


def test_critic_real_is_the_labelled_normals_and_fake_the_restored_unlabelled_detached():
    method, log = instrumented()
    batch = make_batch()
    out = method.training_step(batch, 0, torch.Generator().manual_seed(1))
    critic, rest = phases(log)
    assert [c.who for c in rest] == []  # step 0 of n_critic = 2: the critic only
    _, x_u_r = find(critic, "G", batch.unlabeled)  # x'_u
    assert all(c.gate_p == 0.95 for c in critic if c.who == "G")  # restored with the gate on
    real, d_real = find(critic, "D", batch.normal)
    fake, d_fake = find(critic, "D", x_u_r)
    assert not fake.graph  # detached: the critic's loss cannot reach the generator
    assert out["d_adv"].item() == pytest.approx((d_fake.mean() - d_real.mean()).item(), rel=1e-6)  # Eq. 7
    assert out["d_loss"].item() == pytest.approx((out["d_adv"] + 10.0 * out["gp"]).item(), rel=1e-6)


@pytest.mark.parametrize("lambda_gp", [10.0, 3.0])
def test_gradient_penalty_interpolates_normals_and_restored_unlabelled_with_one_alpha_per_sample(lambda_gp):
    method, log = instrumented(lambda_gp=lambda_gp)
    batch = make_batch()
    out = method.training_step(batch, 0, torch.Generator().manual_seed(1))
    critic, _ = phases(log)
    _, fake = find(critic, "G", batch.unlabeled)
    (x_hat,) = [c.x for c in critic if c.who == "D" and c.leaf_grad]  # the penalty's input
    real = batch.normal
    apart = (real - fake).abs() > 0.05  # where the pixel determines alpha well
    alpha = torch.where(apart, (x_hat - fake) / (real - fake), torch.nan)  # x_hat = a*real + (1-a)*fake
    per_sample = [a[~a.isnan()] for a in alpha]
    for a in per_sample:
        assert (a - a.median()).abs().max() < 1e-4  # one alpha for the whole image
    medians = torch.stack([a.median() for a in per_sample])
    assert ((medians >= 0) & (medians <= 1)).all() and len(medians.unique()) == B  # U(0, 1), one each
    assert out["d_loss"].item() == pytest.approx((out["d_adv"] + lambda_gp * out["gp"]).item(), rel=1e-6)


@pytest.mark.parametrize("g_pass", G_PASSES)
@pytest.mark.parametrize("n_critic", [2, 3])
def test_generator_steps_on_every_n_critic_th_iteration_after_the_critic(n_critic, g_pass):
    method, log = instrumented(n_critic=n_critic, g_pass=g_pass)
    batch, rng = make_batch(), torch.Generator().manual_seed(1)
    g_params = list(method.G.parameters())
    for step in range(2 * n_critic):
        log.clear()
        before = [p.detach().clone() for p in g_params]
        method.training_step(batch, step, rng)
        steps = [c.who for c in log if c.who.startswith("step")]
        moved = any(not torch.equal(a, p) for a, p in zip(before, g_params))
        if (step + 1) % n_critic:
            assert steps == ["step d"] and not moved
        else:
            assert steps == ["step d", "step g"] and moved
            critic, generator = phases(log)
            # the generator's adversarial term is scored by the critic already updated this iteration
            assert [c.who for c in generator if c.who == "D"] == ["D"] and generator[-1].who == "step g"


@pytest.mark.parametrize("g_pass", G_PASSES)
def test_generator_loss_is_adversarial_plus_weighted_identity_and_restoration(g_pass):
    method, log = instrumented(lambda_id=0.7, lambda_rec=1.9, g_pass=g_pass)
    batch, rng = make_batch(), torch.Generator().manual_seed(1)
    method.training_step(batch, 0, rng)
    log.clear()
    out = method.training_step(batch, 1, rng)
    _, generator = phases(log)
    _, x_n_r = find(generator, "G", batch.normal)
    _, x_p_r = find(generator, "G", batch.pseudo)
    _, x_u_r = find(generator, "G", batch.unlabeled)
    assert all(c.gate_p == 0.95 for c in generator if c.who == "G")
    critic_call, d_u = find(generator, "D", x_u_r)
    assert critic_call.graph  # not detached: the adversarial term trains the generator
    adv = -d_u.mean()  # Eq. 5
    idt = (x_n_r - batch.normal).abs().mean()  # Eq. 3, L1
    rec = ((x_p_r - batch.normal) ** 2).mean()  # Eq. 4, MSE against the pseudo anomaly's source
    expected = adv + 0.7 * idt + 1.9 * rec  # Eq. 6
    assert out["g_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out["g_adv"].item() == pytest.approx(adv.item(), rel=1e-5)
    # one generator call over the three inputs, or one call each (part by part)
    assert sum(c.who == "G" for c in generator) == (1 if g_pass == "joint" else 3)


def test_zero_u_part_by_part_the_pseudo_anomalies_restorations_take_the_fake_side():
    method, log = instrumented(g_pass="per_part")
    batch, rng = make_batch(zero_u=True), torch.Generator().manual_seed(1)
    method.training_step(batch, 0, rng)
    log.clear()
    out = method.training_step(batch, 1, rng)
    _, generator = phases(log)
    assert [c.who for c in generator] == ["G", "G", "D", "step g"]  # x_n, then x_p and its critic score
    _, x_p_r = find(generator, "G", batch.pseudo)
    critic_call, d_p = find(generator, "D", x_p_r)
    assert critic_call.graph and out["g_adv"].item() == pytest.approx(-d_p.mean().item(), rel=1e-5)


def test_zero_u_pseudo_anomalies_take_the_fake_side():
    method, log = instrumented()
    batch, rng = make_batch(zero_u=True), torch.Generator().manual_seed(1)
    method.training_step(batch, 0, rng)
    critic, _ = phases(log)
    _, x_p_r = find(critic, "G", batch.pseudo)
    find(critic, "D", batch.normal)  # real: still the labelled normals
    fake, _ = find(critic, "D", x_p_r)
    assert not fake.graph
    log.clear()
    out = method.training_step(batch, 1, rng)
    _, generator = phases(log)
    _, x_p_r = find(generator, "G", batch.pseudo)
    call, d_p = find(generator, "D", x_p_r)
    assert call.graph and out["g_adv"].item() == pytest.approx(-d_p.mean().item(), rel=1e-6)


def score(prediction) -> torch.Tensor:
    return prediction.score if hasattr(prediction, "score") else prediction["score"]


@pytest.mark.parametrize("gate_at_test", [False, True])
def test_predict_is_deterministic_with_the_gate_off_and_random_with_gate_at_test(gate_at_test):
    method, log = instrumented(gate_at_test=gate_at_test)
    method.eval()
    x = make_batch().unlabeled
    a = score(method.predict(x, torch.Generator().manual_seed(1)))
    b = score(method.predict(x, torch.Generator().manual_seed(2)))
    a_again = score(method.predict(x, torch.Generator().manual_seed(1)))
    assert {c.gate_p for c in log} == ({0.95} if gate_at_test else {None})
    assert torch.equal(a, a_again)
    assert torch.equal(a, b) != gate_at_test
    restored = log[0].out
    assert torch.allclose(a, (x - restored).abs().mean(dim=(1, 2, 3)) / 2)  # score = mean |x - x'| / 2


# --- the generator step in one pass or part by part (sagan/methods/gan.py, `model.g_pass`) ---------
def small_gan(name: str, g_pass: str):
    method_cls = get_method(name)
    cfg = method_cls.Config(conv_dim=4, n_res=1, d_conv_dim=4, d_repeat_num=3, g_pass=g_pass)
    validate_model(cfg)
    torch.manual_seed(0)
    method = method_cls(cfg, SIZE, 1000).double()
    method.train()
    method.D.requires_grad_(False)  # as in the generator step
    return method


def double_batch(zero_u: bool) -> Batch:
    b = make_batch(zero_u)
    return Batch(
        normal=b.normal.double(),
        unlabeled=None if zero_u else b.unlabeled.double(),
        pseudo=b.pseudo.double(),
        pseudo_mask=b.pseudo_mask,
    )


class Box:
    def __init__(self, t: torch.Tensor):
        self.t = t


class SavedBytes:
    """The bytes that autograd holds for backward, at most, while the block runs (saved-tensor hooks:
    a saved tensor counts from its save until its graph node lets it go)."""

    def __init__(self):
        self.live = self.peak = 0

    def pack(self, t: torch.Tensor):
        n = t.numel() * t.element_size()
        self.live += n
        self.peak = max(self.peak, self.live)
        box = Box(t)
        weakref.finalize(box, self.release, n)
        return box

    def release(self, n: int) -> None:
        self.live -= n

    def __enter__(self):
        self.hooks = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda box: box.t)
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self.hooks.__exit__(*exc)


@pytest.mark.parametrize(
    "name, zero_u", [("sagan", False), ("sagan", True), ("brainomaly", False), ("healthygan", False)]
)
def test_the_generator_step_part_by_part_gives_the_joint_gradient_holding_one_part(name, zero_u):
    batch, grads, terms, peaks, parts = double_batch(zero_u), {}, {}, {}, 0
    for g_pass in G_PASSES:
        method = small_gan(name, g_pass)
        with SavedBytes() as saved:
            terms[g_pass] = method.generator_step(batch, torch.Generator().manual_seed(3))  # the gates' draws
        peaks[g_pass] = saved.peak
        grads[g_pass] = [p.grad for p in method.G.parameters()]
        assert all(g is not None for g in grads[g_pass])
        parts = len(method.generator_parts(batch))
    for a, b in zip(grads["joint"], grads["per_part"]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert terms["joint"].keys() == terms["per_part"].keys()
    for k in terms["joint"]:
        torch.testing.assert_close(terms["joint"][k], terms["per_part"][k], rtol=1e-10, atol=1e-12)
    # part by part, autograd holds about one part's tensors (and each call's weights) at a time
    assert peaks["per_part"] < peaks["joint"] * (1.2 / parts)
