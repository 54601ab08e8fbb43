"""Run configuration: typed, validated, resolved in one place and saved with every run.

Resolution order: dataclass defaults (the paper's values) -> the generic preset (`paper` | `demo` |
`ci` | `bench`, below; `ci` and `bench` start from `demo`) -> the method's `PRESETS[preset]` -> config
file (YAML, nested sections) -> `--set section.key=value` overrides -> explicit command-line values
(`--seed`).
Method-specific settings (network widths, learning rates, loss weights) live in the method's own
`Config` dataclass, handed to `build_config` with the method's presets (`sagan.runtime.resolve_config`
looks both up in the registry); generic settings live here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from sagan.atomic import write_atomic
from sagan.errors import ConfigError


def choice(default: Any, choices: tuple, doc: str = "") -> Any:
    return field(default=default, metadata={"choices": choices, "doc": doc})


def at_least(default: int, minimum: int, why: str = "") -> Any:
    """An integer field whose smallest allowed value is not the generic 1 (see `check_fields`)."""
    return field(default=default, metadata={"min": minimum, "why": why})


@dataclass
class DataConfig:
    path: str = ""  # prepared dataset folder (set from `sagan train --data`)
    # anomaly ratio of the unlabelled set (data.md): 0..1, or "0_u" for no unlabelled data (Table 4)
    anomaly_ratio: Any = field(default=0.6, metadata={"normalize": lambda v: normalize_anomaly_ratio(v)})
    # what to do when a pool is too small for the ratio (LAG above 0.6): "error" or "shrink" U
    on_small_pool: str = choice("error", ("error", "shrink"))
    # experiment image size; prepared images of another size are resized once at load time
    image_size: int = 64


@dataclass
class TrainConfig:
    iterations: int = 100_000  # discriminator iterations (paper: "100000")
    # paper: 64 (authors' code: 16 default, 32 in scripts)
    batch_size: int = at_least(64, 2, "batch norms and pseudo anomalies need two images a batch")
    log_every: int = 100
    checkpoint_every: int = 1000
    device: str = choice("auto", ("auto", "cpu", "cuda"))
    amp: str = choice("none", ("none", "bf16"))  # optional bf16 autocast
    threads: int = at_least(0, 0)  # torch CPU threads; 0 = torch's default (not part of a run's identity)
    # torch.compile (inductor) the networks the method names in `Method.compiled` (the restoration GANs'
    # generator) for training: 1.1-1.7x a full-size SAGAN step on CPU after about 100 s of compiling,
    # 1.6-2.1x the authors' procedure (benchmarks/RESULTS.md, "eleventh session"); at the demo's size
    # the compile costs more than it saves. Float rounding only (not part of a run's identity); CPU
    # needs a C++ compiler.
    compile: bool = False
    # learning-rate schedule, applied by the trainer to every optimiser from its initial lr:
    # "linear": the SAGAN paper's intent, decay toward 0 over the last half, in steps every
    # lr_decay_every iterations; "official": the authors' code (subtracts lr/decay_iters per step:
    # nearly constant); "none": constant. Methods choose theirs in their PRESETS.
    lr_decay: str = choice("none", ("linear", "official", "none"))
    lr_decay_every: int = 1000


@dataclass
class EvalConfig:
    # "last": the last checkpoint (no test labels used; what the authors' test script evaluates).
    # "test-oracle": what the authors' training loop keeps, the checkpoint whose test AUC and AP are
    # both >= the best so far (labelled in every output). Which gave the paper's numbers is unknown.
    selection: str = choice("last", ("last", "test-oracle"))
    select_every: int = 1000  # test-oracle evaluation interval (authors' code: 1000)
    batch_size: int = 256
    # learning curves without test labels: score the dataset's labelled validation split every
    # val_every iterations (and at the last) into RUN/val_log.csv; 0 = off. Only datasets with a
    # validation split (the synthetic sets) can; the workflow's synthetic configs turn it on.
    val_every: int = at_least(0, 0, "0 = no validation curve")


SECTIONS = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig}

# Generic presets: budgets. Each method adds its own settings per preset (`Method.PRESETS`).
# A preset named in PRESET_BASE starts from its base (the generic base preset, then the method's),
# then applies its own generic and method settings: `ci` and `bench` keep the demo's networks and
# change only budgets, so that a network setting is written once, in the method's "demo" preset.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # demo: 32 px images, small networks; the README's main job, at budgets where the methods have
    # learned (benchmarks/RESULTS.md), except five baselines (the four costliest, and FPI, which learns
    # late) at 1% of their bench budgets so that the demo fits its 30 minutes (pipeline checks, which
    # Table 2 does not rank). The budgets (train.iterations) are the methods' own, in their
    # PRESETS["demo"] and PRESETS["bench"] and nowhere else (tests/test_trainer.py checks that each has one)
    "demo": {
        "data.image_size": 32,
        "train.batch_size": 16,
        "train.log_every": 10,
        "train.checkpoint_every": 40,
        "eval.select_every": 40,
    },
    # ci: the demo's networks at a pipeline-check budget, the same for every method (a method's own
    # demo budget is overridden): enough iterations for every code path (the GANs' generator steps,
    # learning-rate decay steps, two checkpoints), not for learning
    "ci": {
        "train.iterations": 6,
        "train.log_every": 2,
        "train.checkpoint_every": 3,
        "train.lr_decay_every": 1,
        "eval.select_every": 3,
    },
    # bench: the demo's networks at the budgets where the validation curves flatten, set per method
    # in its PRESETS["bench"] (config/bench.yaml runs it)
    "bench": {
        "train.log_every": 50,
        "train.checkpoint_every": 500,
        "eval.select_every": 500,
    },
}
PRESET_BASE = {"ci": "demo", "bench": "demo"}


def preset_layers(preset: str, method_presets: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The settings of a preset, lowest first: its base's layers, then its generic and method settings."""
    base = preset_layers(PRESET_BASE[preset], method_presets) if preset in PRESET_BASE else []
    return [*base, PRESETS[preset], method_presets.get(preset, {})]


@dataclass
class RunConfig:
    method: str
    seed: int
    preset: str
    model: Any  # the method's config dataclass
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "seed": self.seed,
            "preset": self.preset,
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "eval": dataclasses.asdict(self.eval),
        }


def _coerce(value: Any, default: Any, key: str) -> Any:
    """Convert a (possibly string) value to the type of the field's default."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if isinstance(default, int):
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if isinstance(default, str):
        return str(value)
    return value


def set_field(obj: Any, name: str, value: Any, prefix: str) -> None:
    known = {f.name: f for f in fields(obj)}
    key = f"{prefix}.{name}"
    if name not in known:
        raise ConfigError(f"unknown config key {key!r}; allowed in {prefix}: {', '.join(sorted(known))}")
    f = known[name]
    normalize = f.metadata.get("normalize")
    value = normalize(value) if normalize else _coerce(value, getattr(obj, name), key)
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {', '.join(map(str, choices))}")
    setattr(obj, name, value)


def parse_anomaly_ratio(value: Any, key: str = "data.anomaly_ratio") -> float | None:
    """'0_u' -> None (no unlabelled data); otherwise a fraction in [0, 1] (`key` names it in errors)."""
    if value is None or str(value).lower() in ("0_u", "none"):
        return None
    try:
        ar = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: {value!r} is not a number in [0, 1] or '0_u'") from None
    if not 0.0 <= ar <= 1.0:
        raise ConfigError(f"{key}: {ar} is outside [0, 1]; use a fraction (0.6 = 60%) or '0_u'")
    return ar


def normalize_anomaly_ratio(value: Any) -> float | str:
    ar = parse_anomaly_ratio(value)
    return "0_u" if ar is None else ar


def parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.iterations=500")
        key, raw = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(raw) if raw != "" else ""
    return out


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def build_config(
    method: str,
    model_config: type,
    method_presets: dict[str, dict[str, Any]],
    seed: int | None = None,
    preset: str = "paper",
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """Build the fully resolved, validated configuration of one run of `method`, whose settings are
    the dataclass `model_config` and whose presets are `method_presets`. `seed`, when given, wins
    over a seed in the config file or the overrides (default 0)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    cfg = RunConfig(method=method, seed=0, preset=preset, model=model_config())

    layers = preset_layers(preset, method_presets)
    if config_file:
        layers.append(flatten(_read_config_file(Path(config_file))))
    layers.append(overrides or {})
    layers.append({} if seed is None else {"seed": seed})

    for layer in layers:
        for key, value in layer.items():
            section, _, name = key.partition(".")
            if key in ("method", "preset"):
                continue  # chosen on the command line; a saved config may repeat them
            if key == "seed":
                cfg.seed = _coerce(value, 0, "seed")
                continue
            if section == "model":
                target = cfg.model
            elif section in SECTIONS:
                target = getattr(cfg, section)
            else:
                raise ConfigError(
                    f"unknown config key {key!r}; sections are model, {', '.join(SECTIONS)} (e.g. train.iterations)"
                )
            if not name:
                raise ConfigError(f"config key {key!r} needs a field, e.g. {section}.<name>")
            set_field(target, name, value, section)

    parse_anomaly_ratio(cfg.data.anomaly_ratio)  # validate
    for section in SECTIONS:
        check_fields(getattr(cfg, section), section)
    validate_model(cfg.model)
    return cfg


def check_fields(obj: Any, prefix: str) -> None:
    """The checks every setting of every section and method gets, by its type: an integer is a count
    (>= 1, or the minimum `at_least` gives it); a number is finite and >= 0, a learning rate (`lr`,
    `lr_*`) included; Adam's `beta1` and `beta2` are below 1."""
    for f in fields(obj):
        key, value = f"{prefix}.{f.name}", getattr(obj, f.name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and value < f.metadata.get("min", 1):
            why = f" ({f.metadata['why']})" if f.metadata.get("why") else ""
            raise ConfigError(f"{key} must be >= {f.metadata.get('min', 1)}{why}, got {value}")
        if isinstance(value, float) and not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{key} must be a finite number >= 0, got {value}")
        if f.name in ("beta1", "beta2") and not value < 1:
            raise ConfigError(f"{key} must be in [0, 1) (an Adam beta), got {value}")


def validate_model(model: Any) -> None:
    """A method's settings: the generic checks, then the method's own (its Config's `validate`)."""
    check_fields(model, "model")
    if hasattr(model, "validate"):
        model.validate()


def _read_config_file(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    loaded = read_yaml(path, "fix its syntax", "config file ") or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path}: expected a mapping of sections (model, data, train, eval)")
    return loaded


def read_yaml(path: Path, fix: str, what: str = "") -> Any:
    """A YAML file's content; a syntax error is a ConfigError naming the file, the line and `fix`."""
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise ConfigError(f"{what}{path} is not valid YAML{line}; {fix}") from None


def save_config(cfg: RunConfig, path: str | Path) -> None:
    write_atomic(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
