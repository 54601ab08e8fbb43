"""Run configuration (`sagan/config.py`, `sagan.runtime.resolve_config`): the resolution order, the
seed, presets handed in by the method, and errors that name the key or the file."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from sagan.config import PRESETS, TrainConfig, build_config
from sagan.errors import ConfigError
from sagan.runtime import resolve_config


@dataclasses.dataclass
class ToyModel:
    width: int = 64
    depth: int = 4


TOY_PRESETS = {"demo": {"model.width": 8, "train.iterations": 20}}


def resolve(**kwargs):
    return build_config("toy", ToyModel, TOY_PRESETS, **kwargs)


def test_defaults_are_the_dataclasses():
    cfg = resolve(preset="paper")
    assert (cfg.model.width, cfg.train.iterations, cfg.seed) == (64, TrainConfig.iterations, 0)


def test_the_method_preset_comes_after_the_generic_one():
    cfg = resolve(preset="demo")
    assert cfg.model.width == 8 and cfg.train.iterations == 20  # the method's, over the generic demo's
    assert cfg.train.batch_size == PRESETS["demo"]["train.batch_size"]  # the generic demo's


def test_file_then_overrides_then_the_seed_argument(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump({"seed": 5, "model": {"width": 4, "depth": 2}, "train": {"iterations": 7}})
    )
    cfg = resolve(preset="demo", config_file=path, overrides={"train.iterations": 9})
    assert (cfg.model.width, cfg.model.depth, cfg.train.iterations) == (4, 2, 9)
    assert cfg.seed == 5  # no seed argument: the file's
    assert resolve(preset="demo", config_file=path, seed=3).seed == 3  # an explicit seed wins
    assert resolve(preset="demo", config_file=path, seed=0).seed == 0


def test_saved_config_round_trips(tmp_path):
    cfg = resolve_config("sagan", 4, "demo", None, {"model.use_acm": False, "train.lr_decay": "official"})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    again = resolve_config("sagan", None, "paper", path)
    assert again.model == cfg.model and again.train == cfg.train and again.seed == 4


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model.height": 1}, "unknown config key 'model.height'; allowed in model: depth, width"),
        ({"optim.lr": 1}, "unknown config key 'optim.lr'; sections are model, data, train, eval"),
        (
            {"train.lr_decay": "cosine"},
            "train.lr_decay: 'cosine' is not allowed; choose one of linear, official, none",
        ),
        ({"train.lr_decay_every": 0}, "train.lr_decay_every must be >= 1"),
        ({"model.lr_decay": "linear"}, "unknown config key 'model.lr_decay'"),
    ],
)
def test_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(overrides=overrides)


def test_a_config_file_that_is_not_yaml_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: {iterations: [1\n")
    with pytest.raises(ConfigError, match=f"config file {path} is not valid YAML"):
        resolve(config_file=path)
