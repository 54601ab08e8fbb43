"""Reconstruction and self-supervised baselines of Table 2: AE, MemAE, DDAD, CutPaste / FPI / PII (NSA).

Each method is driven through its interface (constructor, training_step, predict) on small phantoms.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import sagan
from sagan.config import validate_model
from sagan.errors import ConfigError
from sagan.methods import ddad as ddad_module
from sagan.methods import get_method, method_names
from sagan.methods.base import Batch
from sagan.methods.ddad import DDAD, DDADConfig, discrepancies
from sagan.methods.nsa import PatchSegmentation
from sagan.models.autoencoder import AutoEncoder
from sagan.models.ensemble import ensemble_forward
from sagan.models.memae import Memory, addressing_entropy
from sagan.runtime import resolve_config
from sagan.trainer import train
from tests.phantoms import one_thread, phantoms  # noqa: F401 (one_thread: autouse fixture)

REC_METHODS = ("ae", "memae", "ddad")
NSA_METHODS = ("cutpaste", "nsa-fpi", "pii")


def build(name: str, image_size: int = 32, **model):
    """A method at its demo model settings (plus overrides), seeded."""
    cls = get_method(name)
    cfg = cls.Config()
    demo = {k.split(".", 1)[1]: v for k, v in cls.PRESETS["demo"].items() if k.startswith("model.")}
    for k, v in {**demo, **model}.items():
        setattr(cfg, k, v)
    validate_model(cfg)
    torch.manual_seed(0)
    return cls(cfg, image_size, 100)


def make_batch(method, normal: torch.Tensor, unlabeled: torch.Tensor | None, rng) -> Batch:
    transform = method.transform()
    pseudo, mask = transform(normal, rng) if transform is not None else (None, None)
    return Batch(normal=normal, unlabeled=unlabeled, pseudo=pseudo, pseudo_mask=mask)


def test_registry_names_and_groups():
    names = set(method_names())
    assert set(REC_METHODS + NSA_METHODS) <= names
    assert {n: get_method(n).group for n in REC_METHODS + NSA_METHODS} == {
        "ae": "normal only",
        "memae": "normal only",
        "ddad": "normal + unlabelled",
        "cutpaste": "normal only",
        "nsa-fpi": "normal only",
        "pii": "normal only",
    }
    # one class, three names, each fixed to its synthesis mode
    modes = {n: get_method(n).Config().synthesis for n in NSA_METHODS}
    assert modes == {"cutpaste": "cutpaste", "nsa-fpi": "fpi", "pii": "pii"}
    assert all(issubclass(get_method(n), PatchSegmentation) for n in NSA_METHODS)
    with pytest.raises(ConfigError, match="model.synthesis"):
        resolve_config("cutpaste", overrides={"model.synthesis": "pii"})


def test_autoencoder_matches_the_benchmark_description():
    """4x4 stride-2 convs 16-32-64-64 (BN, no bias), FC 1024 with BN1d, 16-d latent, mirrored decoder."""
    net = AutoEncoder(64, base_width=16, hidden_dim=1024, latent_dim=16)
    convs = [m for m in net.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (a, b, (4, 4), (2, 2)) for a, b in ((1, 16), (16, 32), (32, 64), (64, 64))
    ]
    deconvs = [m for m in net.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in deconvs] == [(64, 64), (64, 32), (32, 16), (16, 1)]
    # parameters from the description: convs without bias, BN (2 per channel), two FC stacks
    conv = 16 * (1 * 16 + 16 * 32 + 32 * 64 + 64 * 64)
    bn = 2 * (16 + 32 + 64 + 64) + 2 * (64 + 32 + 16)
    flat = 64 * 4 * 4
    fc = (
        (flat * 1024 + 1024)
        + 2 * 1024
        + (1024 * 16 + 16)
        + (16 * 1024 + 1024)
        + 2 * 1024
        + (1024 * flat + flat)
    )
    assert sum(p.numel() for p in net.parameters()) == 2 * conv + bn + fc
    assert net(phantoms(3, 64, 0)).shape == (3, 1, 64, 64)
    assert net.encode(phantoms(3, 64, 0)).shape == (3, 16)


def test_memory_addressing_is_sparse_and_normalised():
    mem = Memory(slots=25, dim=16, shrink=0.0025)
    z_hat, w = mem(torch.randn(50, 16, generator=torch.Generator().manual_seed(0)) * 3)
    assert z_hat.shape == (50, 16) and w.shape == (50, 25)
    assert torch.allclose(w.sum(1), torch.ones(50), atol=1e-5)
    assert ((w == 0) | (w > 0.0025)).all() and (w == 0).any()  # hard shrinkage removed small weights
    assert torch.allclose(z_hat, w @ mem.items)
    uniform = torch.full((4, 25), 1 / 25)
    assert math.isclose(addressing_entropy(uniform).item(), math.log(25), rel_tol=1e-5)


@pytest.mark.parametrize("name", REC_METHODS + NSA_METHODS)
def test_loss_falls_on_a_tiny_set(name):
    method = build(name)
    method.train()
    rng = torch.Generator().manual_seed(0)
    normal, unlabeled = phantoms(16, 32, 1), phantoms(16, 32, 2)
    history = []
    for step in range(40):
        idx = torch.randperm(16, generator=torch.Generator().manual_seed(step))[:8]
        batch = make_batch(method, normal[idx], unlabeled[idx], rng)
        losses = method.training_step(batch, step, rng)
        assert all(v.dim() == 0 and not v.requires_grad for v in losses.values())
        history.append(sum(losses.values()).item())
    first, last = np.mean(history[:5]), np.mean(history[-5:])
    assert np.isfinite(history).all() and last < 0.8 * first, (first, last)


@pytest.mark.parametrize("name", REC_METHODS + NSA_METHODS)
def test_prediction_shapes_ranges_and_determinism(name):
    method = build(name)
    method.eval()
    x = phantoms(5, 32, 3)
    p = method.predict(x, None)
    assert p.score.shape == (5,) and p.map.shape == (5, 1, 32, 32)
    assert torch.isfinite(p.score).all() and (p.map >= 0).all()
    assert torch.allclose(p.score, p.map.flatten(1).mean(1))  # every one of these scores is a map mean
    assert torch.equal(method.predict(x, None).score, p.score)  # eval mode: deterministic
    if name in NSA_METHODS:
        assert p.restored is None and (p.map <= 1).all()
    else:
        assert p.restored.shape == (5, 1, 32, 32)
    assert set(p.extra) == ({"intra"} if name == "ddad" else set())


def test_ae_score_is_the_mean_squared_error():
    method = build("ae")
    method.eval()
    x = phantoms(4, 32, 4)
    p = method.predict(x, None)
    assert torch.allclose(p.score, ((x - method.net(x)) ** 2).mean((1, 2, 3)))


def test_ddad_has_k_networks_per_module_and_k_is_part_of_the_state():
    for k in (2, 3, 4):
        m = build("ddad", ensemble_size=k)
        assert len(m.module_a) == len(m.module_b) == k
        assert all(isinstance(n, AutoEncoder) for n in [*m.module_a, *m.module_b])
    assert DDADConfig().ensemble_size == 3 and DDADConfig().hidden_dim == 2048
    assert resolve_config("ddad").to_dict()["model"]["ensemble_size"] == 3  # saved with the run
    with pytest.raises(RuntimeError):  # a K=3 state never loads into a K=2 method
        build("ddad", ensemble_size=2).load_state_dict(build("ddad", ensemble_size=3).state_dict())
    with pytest.raises(ConfigError, match="ensemble_size"):
        validate_model(DDADConfig(ensemble_size=1))


def test_ddad_modules_train_on_their_own_data(monkeypatch):
    """Module B sees only the labelled normals; module A two batches, each half normal, half unlabelled."""
    m = build("ddad", ensemble_size=2)
    m.train()
    seen: dict[str, list[torch.Tensor]] = {"module_a": [], "module_b": []}
    names = {id(m.module_a): "module_a", id(m.module_b): "module_b"}

    def recording(nets, x):  # every network of a module reads the same input (one grouped forward)
        seen[names[id(nets)]].append(x.clone())
        return ensemble_forward(nets, x)

    monkeypatch.setattr(ddad_module, "ensemble_forward", recording)
    normal, unlabeled = phantoms(8, 32, 5), phantoms(8, 32, 6)
    m.training_step(Batch(normal, unlabeled, None, None), 0, torch.Generator())
    assert len(seen["module_b"]) == 1 and torch.equal(seen["module_b"][0], normal)
    a = seen["module_a"]
    assert [len(x) for x in a] == [8, 8]
    assert torch.equal(a[0], torch.cat([normal[:4], unlabeled[:4]]))
    assert torch.equal(a[1], torch.cat([normal[4:], unlabeled[4:]]))
    with pytest.raises(ConfigError, match="unlabelled"):
        m.training_step(Batch(normal, None, None, None), 1, torch.Generator())


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_ddad_grouped_ensemble_equals_one_forward_per_network(mode):
    """The K AEs as one grouped network: each network's output, gradient and batch-norm running
    statistics as its own forward gives them (float64)."""
    torch.manual_seed(0)
    nets = nn.ModuleList(AutoEncoder(32, 8, 16, 4) for _ in range(3)).double()
    twin = nn.ModuleList(AutoEncoder(32, 8, 16, 4) for _ in range(3)).double()
    twin.load_state_dict(nets.state_dict())
    getattr(nets, mode)(), getattr(twin, mode)()
    x = torch.randn(5, 1, 32, 32, dtype=torch.float64)
    grouped, alone = ensemble_forward(nets, x), torch.stack([net(x) for net in twin], dim=1)
    assert grouped.shape == (5, 3, 1, 32, 32)
    torch.testing.assert_close(grouped, alone, rtol=1e-12, atol=1e-12)
    (grouped.square().sum() + grouped[:, 1].sum()).backward()
    (alone.square().sum() + alone[:, 1].sum()).backward()
    for p, q in zip(nets.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12)
    for (name, p), q in zip(nets.state_dict().items(), twin.state_dict().values(), strict=True):
        assert torch.equal(p, q) if "num_batches" in name else torch.allclose(p, q, rtol=1e-12, atol=1e-15)
    assert int(nets[2].encoder[1][1].num_batches_tracked) == (1 if mode == "train" else 0)


class Fixed(nn.Module):
    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = out

    def forward(self, x):
        return self.out.expand(len(x), -1, -1, -1)


def test_ddad_inter_and_intra_against_a_hand_made_case():
    m = DDAD(DDADConfig(ensemble_size=2, hidden_dim=8), 16, 1)
    a = [torch.full((1, 16, 16), 1.0), torch.full((1, 16, 16), 3.0)]  # mu_A = 2
    b = [torch.zeros(1, 16, 16), torch.full((1, 16, 16), 2.0)]  # mu_B = 1, std_B = sqrt(2)
    b[1][0, :8] = 4.0  # top half: mu_B = 2 (inter 0), std_B = sqrt(8)
    m.module_a = nn.ModuleList(Fixed(t) for t in a)
    m.module_b = nn.ModuleList(Fixed(t) for t in b)
    p = m.predict(torch.zeros(3, 1, 16, 16), None)
    assert torch.allclose(p.score, torch.full((3,), 0.5))  # mean of |2 - 2| (top) and |2 - 1| (bottom)
    intra = (math.sqrt(8) + math.sqrt(2)) / 2
    assert torch.allclose(p.extra["intra"], torch.full((3,), intra))
    assert torch.allclose(p.restored[0, 0, 0, 0], torch.tensor(2.0))  # mu_B
    inter, sd = discrepancies(torch.stack(a)[None], torch.stack(b)[None])
    assert torch.equal(inter, p.map[:1]) and torch.allclose(sd.mean(), torch.tensor(intra))


def test_other_papers_reference_values_are_well_formed():
    path = Path(sagan.__file__).parent / "reference" / "other_papers.yaml"
    ref = yaml.safe_load(path.read_text())
    assert set(ref) == {"sources", "values"}
    assert all({"citation", "where", "setting"} <= set(s) for s in ref["sources"].values())
    known = set(method_names())
    for row in ref["values"]:
        assert set(row) - {"ap"} == {"source", "dataset", "method", "score", "anomaly_ratio", "auc"}, row
        assert row["source"] in ref["sources"] and row["dataset"] in ("rsna", "vindr", "lag")
        assert row["method"] in known or row["method"] == "vae"  # VAE: a benchmark row we do not run
        assert row["score"] == "main" or (row["method"], row["score"]) == ("ddad", "intra")
        assert row["anomaly_ratio"] is None or 0 <= row["anomaly_ratio"] <= 1
        assert all(0 < row[k] < 100 for k in ("auc", "ap") if k in row)
    keys = [(r["source"], r["dataset"], r["method"], r["score"], r["anomaly_ratio"]) for r in ref["values"]]
    assert len(keys) == len(set(keys))  # one number per cell


def test_ddad_run_is_never_resumed_with_another_k(tiny_dataset, tmp_path):
    """K is part of the run's identity: the trainer refuses a run folder trained with another K."""
    sets = {"data.path": str(tiny_dataset), "train.iterations": 2, "train.batch_size": 4, "train.threads": 1}
    run = tmp_path / "ddad"
    train(run, resolve_config("ddad", 0, "demo", None, sets))
    with pytest.raises(ConfigError, match="ensemble_size"):
        train(run, resolve_config("ddad", 0, "demo", None, {**sets, "model.ensemble_size": 2}))
