"""The method interface (`sagan/methods/base.py`) and the registry, checked for every registered
method: constructor, optimisers, transform, training step, prediction, and what data each loads."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import pytest
import torch

import sagan.methods
from sagan.experiments import GROUPS, SEMI_SUPERVISED
from sagan.fpi import foreign_patch_interpolation
from sagan.methods import Method, Prediction, get_method, method_names, register
from sagan.runtime import build_method, resolve_config
from sagan.trainer import BatchMaker, training_data

SIZE = 32


def built(name: str, tiny) -> tuple[Method, object]:
    cfg = resolve_config(
        name, 0, "demo", None, {"data.path": str(tiny), "data.image_size": SIZE, "train.batch_size": 4}
    )
    return build_method(cfg, torch.device("cpu")), cfg


def stage_starts(method: Method, iterations: int) -> list[int]:
    """First step of every training stage of a method that names them (`stage(step)`: AMAE), else [0]."""
    if not hasattr(method, "stage"):
        return [0]
    starts: dict = {}
    for t in range(iterations):
        starts.setdefault(method.stage(t), t)
    return sorted(starts.values())


def first_batch(method: Method, cfg, tiny):
    data = training_data(method, cfg, torch.device("cpu"))
    return BatchMaker(data, cfg, torch.device("cpu"), method.transform())(0, torch.Generator().manual_seed(0))


def test_registry_finds_every_method_defined_in_the_package():
    defined = set()
    for info in pkgutil.iter_modules(sagan.methods.__path__, prefix="sagan.methods."):
        for obj in vars(importlib.import_module(info.name)).values():
            if inspect.isclass(obj) and issubclass(obj, Method) and "name" in vars(obj):
                defined.add(obj)
    assert defined and defined == {get_method(n) for n in method_names()}


@pytest.mark.parametrize("name", method_names())
def test_class_attributes(name):
    cls = get_method(name)
    assert cls.name == name and cls.group in GROUPS and dataclasses.is_dataclass(cls.Config)
    assert list(inspect.signature(cls.__init__).parameters) == ["self", "cfg", "image_size", "iterations"]


@pytest.mark.parametrize("name", method_names())
def test_optimisers_are_built_in_init_and_cover_every_parameter(name, tiny_dataset):
    method, _ = built(name, tiny_dataset)
    assert method.optimizers and all(isinstance(o, torch.optim.Optimizer) for o in method.optimizers.values())
    optimised = [p for o in method.optimizers.values() for g in o.param_groups for p in g["params"]]
    assert len(optimised) == len({id(p) for p in optimised})  # no parameter in two optimisers
    assert {id(p) for p in optimised} == {id(p) for p in method.parameters()}


@pytest.mark.parametrize("name", method_names())
def test_training_step_returns_detached_scalars_and_updates_the_networks(name, tiny_dataset):
    method, cfg = built(name, tiny_dataset)
    method.train()
    batch = first_batch(method, cfg, tiny_dataset)
    before = [p.detach().clone() for p in method.parameters()]
    n_steps = getattr(cfg.model, "n_critic", 1)  # a GAN's generator steps every n_critic-th step
    for start in stage_starts(method, cfg.train.iterations):  # each stage trains its own networks
        for step in range(start, start + n_steps):
            losses = method.training_step(batch, step, torch.Generator().manual_seed(step))
            assert losses and all(isinstance(v, torch.Tensor) for v in losses.values())
            assert all(v.dim() == 0 and not v.requires_grad for v in losses.values()), losses
    assert all(not torch.equal(a, b) for a, b in zip(before, method.parameters()))


@pytest.mark.parametrize("name", method_names())
def test_predict_returns_a_prediction_at_the_input_size(name, tiny_dataset):
    method, _ = built(name, tiny_dataset)
    method.eval()
    x = torch.rand(3, 1, SIZE, SIZE) * 2 - 1
    out = method.predict(x, torch.Generator().manual_seed(0))
    assert isinstance(out, Prediction) and out.score.shape == (3,) and not out.score.requires_grad
    for image in (out.map, out.restored):
        assert image is None or image.shape == (3, 1, SIZE, SIZE)
    assert all(v.shape == (3,) for v in out.extra.values())


@pytest.mark.parametrize("name", method_names())
def test_batches_carry_what_the_method_needs(name, tiny_dataset):
    method, cfg = built(name, tiny_dataset)
    batch = first_batch(method, cfg, tiny_dataset)
    # the unlabelled set is loaded only for the methods that learn from it
    assert (batch.unlabeled is not None) == (method.group == SEMI_SUPERVISED)
    # the pseudo anomalies are made only for the methods that name a transform
    assert (batch.pseudo is None) == (batch.pseudo_mask is None) == (method.transform() is None)
    assert batch.normal.shape == (4, 1, SIZE, SIZE)


def test_sagan_makes_fpi_pseudo_anomalies_and_the_others_none(tiny_dataset):
    transforms = {n: built(n, tiny_dataset)[0].transform() for n in method_names()}
    assert transforms["sagan"] is foreign_patch_interpolation
    assert transforms["ae"] is None and transforms["brainomaly"] is None


@pytest.mark.parametrize("name", method_names())
@pytest.mark.parametrize("preset", ["paper", "demo"])
def test_every_method_resolves_every_preset(name, preset):
    cfg = resolve_config(name, 0, preset)
    assert cfg.method == name and cfg.preset == preset


def test_register_refuses_a_bad_method():
    base = {"Config": dataclasses.make_dataclass("C", []), "PRESETS": {}}
    bad = [
        ({"name": "x", "group": "supervised", **base}, "group"),
        ({"name": "x", "group": GROUPS[0], **base, "PRESETS": {"fast": {}}}, "unknown presets"),
        ({"name": "sagan", "group": GROUPS[0], **base}, "two methods are named 'sagan'"),
    ]
    for attrs, message in bad:
        with pytest.raises(ValueError, match=message):
            register(type("Bad", (Method,), attrs))
    assert method_names() == sorted(method_names()) and "x" not in method_names()
