"""The shared trainer and evaluator, run for real on a tiny prepared dataset: every method end to end,
determinism, resume after SIGKILL, the run identity, errors, test-oracle, "0_u", bf16, the schedule."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from sagan.cli import main as cli
from sagan.config import PRESETS
from sagan.data.prepared import load_prepared
from sagan.errors import ConfigError, DatasetError, TrainingError
from sagan.evaluate import evaluate_run
from sagan.experiments import NORMAL_ONLY
from sagan.localization import boxes_to_mask, localization_metrics
from sagan.methods import get_method, method_names
from sagan.runtime import build_method, resolve_config, seed_everything
from sagan.trainer import BatchMaker, lr_factor, train, training_data
from tests.conftest import make_tiny_dataset

FAST = ["train.threads=1", "data.image_size=32", "train.batch_size=4", "train.log_every=2"]
SMALL = {"data.image_size": 32, "train.batch_size": 4, "train.threads": 1}


def sagan_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "sagan.cli", *args]


def train_args(tiny, method="sagan", iters=6, extra=()) -> list[str]:
    args = ["--data", str(tiny), "--method", method, "--seed", "0", "--preset", "demo"]
    for s in [*FAST, f"train.iterations={iters}", "train.checkpoint_every=2", *extra]:
        args += ["--set", s]
    return args


def run_cli(tiny, out, method="sagan", iters=6, extra=()):
    assert cli(["train", *train_args(tiny, method, iters, extra), "--out", str(out)]) == 0
    assert cli(["evaluate", str(out)]) == 0


def small_config(tiny, method="sagan", **changes):
    return resolve_config(
        method, 0, "demo", None, {"data.path": str(tiny), "train.iterations": 4, **SMALL, **changes}
    )


@pytest.mark.parametrize("method", method_names())
def test_every_registered_method_trains_and_scores(tiny_dataset, tmp_path, method):
    run_cli(tiny_dataset, tmp_path / method, method)
    scores = pd.read_csv(tmp_path / method / "scores.csv")
    assert list(scores.columns)[:3] == ["name", "label", "score"]
    assert len(scores) == 12 and scores["score"].between(0, 1).all() and scores["score"].notna().all()
    m = json.loads((tmp_path / method / "metrics.json").read_text())
    assert 0 <= m["auc"] <= 1 and 0 <= m["ap"] <= 1 and m["selection"] == "last" and m["method"] == method
    extra = list(scores.columns)[3:]  # one column per extra score of the method (DDAD's intra)
    assert set(extra) == set(m.get("extra", {})) and scores[extra].notna().all().all()
    cfg = yaml.safe_load((tmp_path / method / "config.yaml").read_text())
    assert m["model"] == cfg["model"]  # the model settings, whole
    assert (
        cfg["method"] == method
        and cfg["train"]["iterations"] == 6
        and cfg["data"]["path"] == str(tiny_dataset)
    )
    log = pd.read_csv(tmp_path / method / "train_log.csv")
    assert log["iteration"].tolist() == [2, 4, 6]
    loss_columns = [c for c in log.columns if c not in ("iteration", "seconds") and not c.startswith("lr_")]
    assert loss_columns and log[loss_columns].notna().any().all()


def test_same_command_twice_gives_identical_scores(tiny_dataset, tmp_path):
    for name in ("a", "b"):
        run_cli(tiny_dataset, tmp_path / name)
    assert (tmp_path / "a" / "scores.csv").read_bytes() == (tmp_path / "b" / "scores.csv").read_bytes()


def test_another_setting_gives_other_scores(tiny_dataset, tmp_path):
    run_cli(tiny_dataset, tmp_path / "a")
    run_cli(tiny_dataset, tmp_path / "c", extra=["model.gate_p=0.5"])
    assert (tmp_path / "a" / "scores.csv").read_bytes() != (tmp_path / "c" / "scores.csv").read_bytes()


def test_resume_after_sigkill_gives_identical_final_scores(tiny_val_dataset, tmp_path):
    iters = 60
    args = ["--data", str(tiny_val_dataset), "--method", "sagan", "--seed", "1", "--preset", "demo"]
    for s in [*FAST, f"train.iterations={iters}", "train.checkpoint_every=5", "eval.val_every=10"]:
        args += ["--set", s]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(sagan_cmd("train", *args, "--out", str(tmp_path / "full")), check=True, env=env)

    crashed = tmp_path / "crashed"
    proc = subprocess.Popen(sagan_cmd("train", *args, "--out", str(crashed)), env=env)
    ckpt = crashed / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(ckpt, weights_only=False)["iteration"]
    assert killed_at < iters, "the run finished before it could be killed"
    subprocess.run(sagan_cmd("train", *args, "--out", str(crashed)), check=True, env=env)  # resumes
    for run in ("full", "crashed"):
        subprocess.run(sagan_cmd("evaluate", str(tmp_path / run)), check=True, env=env)
    assert (tmp_path / "full" / "scores.csv").read_bytes() == (crashed / "scores.csv").read_bytes()
    full_log = pd.read_csv(tmp_path / "full" / "train_log.csv").drop(columns="seconds")
    resumed_log = pd.read_csv(crashed / "train_log.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(full_log, resumed_log)
    # the validation rows before the kill come from the checkpoint, the others from the resumed run
    assert (tmp_path / "full" / "val_log.csv").read_bytes() == (crashed / "val_log.csv").read_bytes()
    assert pd.read_csv(crashed / "val_log.csv")["iteration"].tolist() == [10, 20, 30, 40, 50, 60]


def test_non_finite_loss_stops_with_iteration_and_loss(tiny_dataset, tmp_path):
    cfg = small_config(tiny_dataset, **{"model.lr_d": 1e30, "model.lr_g": 1e30, "train.iterations": 50})
    with pytest.raises(TrainingError, match=r"non-finite loss at iteration \d+: \{'"):
        train(tmp_path / "nan", cfg)


def test_non_finite_loss_on_the_command_line_is_one_line_with_status_2(tiny_dataset, tmp_path):
    args = train_args(tiny_dataset, iters=50, extra=["model.lr_d=1e30", "model.lr_g=1e30"])
    done = subprocess.run(
        sagan_cmd("train", *args, "--out", str(tmp_path / "nan")), capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("sagan train: error: non-finite loss at iteration")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    debug = subprocess.run(
        sagan_cmd("--debug", "train", *args, "--out", str(tmp_path / "nan2")), capture_output=True, text=True
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "TrainingError" in debug.stderr


def test_test_oracle_selection_is_labelled_and_reports_the_gap(tiny_dataset, tmp_path):
    run_cli(tiny_dataset, tmp_path / "o", extra=["eval.selection=test-oracle", "eval.select_every=2"])
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["selection"] == "test-oracle"
    assert m["auc"] == m["oracle"]["auc"] and m["last"]["iteration"] == 6
    assert m["oracle_gap"]["auc"] == pytest.approx(m["oracle"]["auc"] - m["last"]["auc"])


def test_test_oracle_keeps_the_later_checkpoint_on_a_tie(tiny_dataset, tmp_path):
    # learning rate 0: the model never changes, so every test evaluation ties with the first one;
    # the authors keep a checkpoint when AUC >= best and AP >= best, so the last evaluation wins
    frozen = ["model.lr_g=0", "model.lr_d=0", "eval.selection=test-oracle", "eval.select_every=2"]
    run_cli(tiny_dataset, tmp_path / "tie", extra=frozen)
    m = json.loads((tmp_path / "tie" / "metrics.json").read_text())
    log = pd.read_csv(tmp_path / "tie" / "selection_log.csv")
    assert log["iteration"].tolist() == [2, 4, 6] and log["auc"].nunique() == 1 and log["ap"].nunique() == 1
    assert m["oracle"]["iteration"] == 6


def test_zero_u_setting_trains_without_unlabelled_data(tiny_dataset, tmp_path):
    run_cli(tiny_dataset, tmp_path / "0u", extra=["data.anomaly_ratio=0_u"])
    m = json.loads((tmp_path / "0u" / "metrics.json").read_text())
    assert m["anomaly_ratio"] == "0_u" and m["unlabeled"]["U"] == 0


def test_rerun_with_other_config_is_refused(tiny_dataset, tmp_path):
    train(tmp_path / "r", small_config(tiny_dataset))
    with pytest.raises(ConfigError, match="different configuration.*train.iterations"):
        train(tmp_path / "r", small_config(tiny_dataset, **{"train.iterations": 7}))


def test_rerun_with_other_thread_count_resumes(tiny_dataset, tmp_path, caplog):
    # Snakemake sets train.threads from --cores: another count must keep the progress made
    run = tmp_path / "t"
    train(run, small_config(tiny_dataset))
    caplog.set_level("INFO")
    train(run, small_config(tiny_dataset, **{"train.threads": 2}))
    assert "resuming" in caplog.text and "from scratch" not in caplog.text
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["threads"] == 2
    assert evaluate_run(run)["iteration"] == 4  # and the evaluator trusts the checkpoint


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--method", "nope"], "unknown method 'nope'; registered methods: " + ", ".join(method_names())),
        (["--set", "model.nope=1"], "unknown config key 'model.nope'; allowed in model:"),
        (["--set", "model.network=foo"], "choose one of paper, authors"),
        (["--set", "train.iterations=abc"], "train.iterations: expected an integer"),
        (["--set", "train.lr_decay=cosine"], "choose one of linear, official, none"),
        (["--set", "data.anomaly_ratio=1.5"], "outside [0, 1]"),
        (["--preset", "huge"], "unknown preset 'huge'; choose one of paper, demo, ci, bench"),
        (["--method", "ae", "--set", "train.compile=true"], "method ae has no network to compile"),
    ],
)
def test_bad_options_are_one_line_errors(tiny_dataset, tmp_path, capsys, argv, message):
    base = {"--method": "sagan", "--preset": "demo"}
    for flag, value in zip(argv[::2], argv[1::2]):
        if flag in base:
            base[flag] = value
    extra = [a for f, v in zip(argv[::2], argv[1::2]) if f == "--set" for a in (f, v)]
    args = ["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "x"), "--seed", "0"]
    args += [a for kv in base.items() for a in kv] + extra
    assert cli(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_evaluate_unfinished_run_says_how_to_resume(tiny_dataset, tmp_path):
    run = tmp_path / "u"
    train(run, small_config(tiny_dataset))
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    state["iteration"] = 2
    torch.save(state, run / "checkpoints" / "last.pt")
    with pytest.raises(DatasetError, match="training did not finish"):
        evaluate_run(run)


def test_methods_command_lists_registry(capsys):
    assert cli(["methods"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in method_names())


def test_maps_for_figures(tiny_dataset, tmp_path):
    run_cli(tiny_dataset, tmp_path / "m")
    z = np.load(tmp_path / "m" / "maps.npz")
    assert z["images"].shape == z["restored"].shape == z["maps"].shape == (12, 32, 32)
    assert (z["maps"] >= 0).all() and (z["maps"] <= 1).all()
    assert json.loads(str(z["boxes"][-1]))  # abnormal test images carry their boxes
    assert Path(tmp_path / "m" / "checkpoints" / "last.pt").is_file()


def no_nan(text: str) -> dict:
    def refuse(constant):
        raise AssertionError(f"metrics.json holds {constant}")

    return json.loads(text, parse_constant=refuse)


def test_evaluator_stores_every_test_map_with_its_ground_truth_and_the_localization(tiny_dataset, tmp_path):
    run_cli(tiny_dataset, tmp_path / "m", method="ae")
    z = np.load(tmp_path / "m" / "maps.npz")
    ds = load_prepared(tiny_dataset)
    rows = ds.rows(list(z["test_names"]))
    assert list(z["test_labels"]) == list(ds.index["label"].to_numpy()[rows]) and len(rows) == 12
    assert z["test_maps"].dtype == np.float16 and z["test_maps"].shape == (12, 32, 32)
    # the 16 examples of the heatmap figure are the same maps, at full precision
    examples = [list(z["test_names"]).index(n) for n in z["names"]]
    scale = float(z["test_map_scale"])
    np.testing.assert_allclose(z["test_maps"][examples] * scale, z["maps"], rtol=1e-3, atol=1e-3 * scale)
    # ground truth: the recorded boxes, scaled to the 32 px of the experiment (here prepared at 32 px)
    truth = np.stack([boxes_to_mask(ds.boxes(r), 32, 32) for r in rows])
    assert np.array_equal(z["test_truth"], truth) and truth[6:].any(axis=(1, 2)).all() and not truth[:6].any()
    m = no_nan((tmp_path / "m" / "metrics.json").read_text())
    loc = m["localization"]
    assert loc["ground_truth"] == "boxes" and loc["has_map"] and loc["n_images"] == 12
    again = localization_metrics(z["test_maps"].astype(np.float32) * scale, z["test_labels"], truth)
    for key in ("pixel_auroc", "aupro", "best_dice"):  # the stored float16 maps give the same values
        assert loc[key] == pytest.approx(again[key], abs=2e-3), key
    assert loc["pointing_game"] == pytest.approx(again["pointing_game"], abs=1 / 6)  # a tie may move
    for metric in ("auc", "ap"):
        low, high = m["ci95"][metric]
        assert 0 <= low <= m[metric] <= high <= 1


def test_evaluator_writes_null_localization_without_pixel_labels(tmp_path):
    data = make_tiny_dataset(tmp_path / "lag-like")
    index = pd.read_csv(data / "index.csv")
    index["boxes"] = "[]"  # like LAG: labels, but no box and no mask
    index.to_csv(data / "index.csv", index=False)
    run_cli(data, tmp_path / "m", method="ae", iters=2)
    z = np.load(tmp_path / "m" / "maps.npz")
    assert "test_truth" not in z.files and z["test_maps"].shape == (12, 32, 32)
    loc = no_nan((tmp_path / "m" / "metrics.json").read_text())["localization"]
    assert loc["ground_truth"] is None and loc["has_map"] and loc["n_images"] == 0
    assert [loc[k] for k in ("pixel_auroc", "aupro", "pointing_game", "best_dice")] == [None] * 4


def test_extra_scores_get_their_interval_and_group(tiny_dataset, tmp_path):
    run_cli(tiny_dataset, tmp_path / "d", method="ddad", iters=2)
    intra = no_nan((tmp_path / "d" / "metrics.json").read_text())["extra"]["intra"]
    assert intra["group"] == NORMAL_ONLY and get_method("ddad").group != NORMAL_ONLY
    assert intra["ci95"]["auc"][0] <= intra["auc"] <= intra["ci95"]["auc"][1]


def conv_output_dtypes(tiny, tmp_path, amp: str) -> set[torch.dtype]:
    """Output dtypes of every convolution run in training mode during a real training run."""
    seen: set[torch.dtype] = set()

    def hook(module, args, output):
        if isinstance(module, torch.nn.Conv2d) and module.training and torch.is_grad_enabled():
            seen.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        train(tmp_path / amp, small_config(tiny, **{"train.iterations": 2, "train.amp": amp}))
    finally:
        handle.remove()
    return seen


def test_bf16_option_runs_the_training_step_in_bf16(tiny_dataset, tmp_path):
    assert conv_output_dtypes(tiny_dataset, tmp_path, "bf16") == {torch.bfloat16}
    assert conv_output_dtypes(tiny_dataset, tmp_path, "none") == {torch.float32}


def test_checkpoint_of_the_same_identity_is_resumed(tiny_dataset, tmp_path, caplog):
    cfg = small_config(tiny_dataset)
    train(tmp_path / "fp", cfg)
    caplog.set_level("INFO")
    train(tmp_path / "fp", cfg)  # same config, code and data: resumes at the end, nothing to do
    assert "resuming" in caplog.text and "from scratch" not in caplog.text


@pytest.mark.parametrize("key", ["config", "code", "data"])
def test_checkpoint_of_another_identity_is_not_resumed(tiny_dataset, tmp_path, caplog, key):
    cfg = small_config(tiny_dataset)
    run = tmp_path / "fp"
    train(run, cfg)
    ckpt = run / "checkpoints" / "last.pt"
    state = torch.load(ckpt, weights_only=False)
    state[key] = "something else"
    torch.save(state, ckpt)
    caplog.set_level("INFO")
    train(run, cfg)
    assert f"made with other {key}; training from scratch" in caplog.text
    assert torch.load(ckpt, weights_only=False)[key] != "something else"


@pytest.mark.parametrize("key", ["config", "code", "data"])
def test_evaluate_refuses_a_checkpoint_of_another_identity(tiny_dataset, tmp_path, key):
    run = tmp_path / "ev"
    train(run, small_config(tiny_dataset))
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    state[key] = "something else"
    torch.save(state, run / "checkpoints" / "last.pt")
    with pytest.raises(DatasetError, match=rf"last.pt was made with other {key} than .*run `sagan train` on"):
        evaluate_run(run)


@pytest.mark.parametrize("method", method_names())
@pytest.mark.parametrize("schedule", ["linear", "official"])
def test_trainer_applies_the_schedule_to_every_optimiser(tiny_dataset, tmp_path, method, schedule):
    sets = {
        "train.iterations": 8,
        "train.log_every": 1,
        "train.lr_decay": schedule,
        "train.lr_decay_every": 2,
    }
    cfg = small_config(tiny_dataset, method, **sets)
    log = pd.read_csv(train(tmp_path / method, cfg) / "train_log.csv")
    lr0 = {c: log[c].iloc[0] for c in log.columns if c.startswith("lr_")}
    assert lr0, "no learning rate logged"
    for name, first in lr0.items():
        expected = [first * lr_factor(it - 1, 8, schedule, 2) for it in log["iteration"]]
        assert log[name].tolist() == pytest.approx(expected, rel=1e-12), name
        assert log[name].iloc[-1] < first


@pytest.mark.parametrize("preset", ["paper", "demo", "ci", "bench"])
def test_presets_keep_each_method_s_schedule(preset):
    # the GANs decay linearly over the last half, the AE keeps a constant learning rate
    assert resolve_config("sagan", 0, preset).train.lr_decay == "linear"
    assert resolve_config("brainomaly", 0, preset).train.lr_decay == "linear"
    assert resolve_config("ae", 0, preset).train.lr_decay == "none"


# --- learning curves on the validation split (eval.val_every) --------------------------------------
def final_state(run: Path) -> dict:
    """What a run trained, from its last checkpoint: model, optimisers, RNG, logs without wall times
    (the identity keys are left out: the data fingerprint covers every label of the dataset)."""
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    log = [{k: v for k, v in row.items() if k != "seconds"} for row in state["log"]]
    return {"model": state["model"], "optimizers": state["optimizers"], "rng": state["rng"], "log": log}


def assert_same_training(a: Path, b: Path) -> None:
    sa, sb = final_state(a), final_state(b)
    assert sa["log"] == sb["log"]
    assert torch.equal(sa["rng"], sb["rng"])
    assert sa["model"].keys() == sb["model"].keys()
    for key in sa["model"]:
        assert torch.equal(sa["model"][key], sb["model"][key]), key
    for name in sa["optimizers"]:
        for pa, pb in zip(sa["optimizers"][name]["state"].values(), sb["optimizers"][name]["state"].values()):
            assert all(torch.equal(pa[k], pb[k]) for k in pa), name


@pytest.mark.parametrize("method", method_names())
def test_validation_curve_of_every_method_leaves_the_trained_model_unchanged(
    tiny_val_dataset, tmp_path, method
):
    plain = train(tmp_path / "plain", small_config(tiny_val_dataset, method, **{"train.iterations": 6}))
    cfg = small_config(tiny_val_dataset, method, **{"train.iterations": 6, "eval.val_every": 2})
    run = train(tmp_path / "val", cfg)
    assert not (plain / "val_log.csv").exists()
    val = pd.read_csv(run / "val_log.csv")
    assert val["iteration"].tolist() == [2, 4, 6]
    extra = sorted(c.removesuffix("_auc") for c in val.columns if c.endswith("_auc"))
    assert list(val.columns) == ["iteration", "auc", "ap"] + [
        f"{e}_{m}" for e in extra for m in ("auc", "ap")
    ]
    assert val.drop(columns="iteration").apply(lambda c: c.between(0, 1)).all().all()
    assert_same_training(plain, run)  # validation never touches the training's model or RNG stream
    # the last row is the final model's: the evaluator's scores of the validation images give it
    m = evaluate_run(run)
    assert set(extra) == set(m.get("extra", {}))


def test_validation_on_a_dataset_without_a_validation_split_is_a_one_line_error(
    tiny_dataset, tmp_path, capsys
):
    args = train_args(tiny_dataset, extra=["eval.val_every=2"])
    assert cli(["train", *args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(tiny_dataset) in err and "no labelled validation split" in err and "eval.val_every=0" in err


def scramble_test_labels(src: Path, dst: Path) -> Path:
    """A copy of a prepared dataset whose test labels are mixed up: half of each test class moves to
    the other (split.json and index.csv), images untouched."""
    shutil.copytree(src, dst)
    split = json.loads((dst / "split.json").read_text())
    normal, abnormal = split["test"]["0"], split["test"]["1"]
    k = len(normal) // 2
    split["test"] = {"0": normal[:k] + abnormal[:k], "1": normal[k:] + abnormal[k:]}
    (dst / "split.json").write_text(json.dumps(split))
    index = pd.read_csv(dst / "index.csv", keep_default_na=False, dtype={"name": str})
    index.loc[index["name"].isin(split["test"]["0"]), "label"] = 0
    index.loc[index["name"].isin(split["test"]["1"]), "label"] = 1
    index.to_csv(dst / "index.csv", index=False)
    return dst


def test_training_reads_no_test_label(tiny_val_dataset, tmp_path):
    scrambled = scramble_test_labels(tiny_val_dataset, tmp_path / "scrambled")
    runs = {}
    for name, data in (("true", tiny_val_dataset), ("scrambled", scrambled)):
        cfg = small_config(data, **{"train.iterations": 6, "eval.val_every": 2})
        runs[name] = train(tmp_path / name, cfg)
    a, b = runs["true"], runs["scrambled"]
    # the same training and the same validation curve: nothing before the final evaluation used the labels
    assert (a / "val_log.csv").read_bytes() == (b / "val_log.csv").read_bytes()
    drop = lambda run: pd.read_csv(run / "train_log.csv").drop(columns="seconds")  # noqa: E731
    pd.testing.assert_frame_equal(drop(a), drop(b))
    assert_same_training(a, b)
    # ... while the final evaluation, which does read them, tells the two apart
    assert evaluate_run(a)["auc"] != evaluate_run(b)["auc"]
    # the authors' test-oracle protocol reads them during training, and is labelled so
    for name, data in (("true-oracle", tiny_val_dataset), ("scrambled-oracle", scrambled)):
        cfg = small_config(
            data, **{"train.iterations": 6, "eval.selection": "test-oracle", "eval.select_every": 2}
        )
        runs[name] = train(tmp_path / name, cfg)
    logs = [pd.read_csv(runs[n] / "selection_log.csv") for n in ("true-oracle", "scrambled-oracle")]
    assert not logs[0]["auc"].equals(logs[1]["auc"])


@pytest.mark.parametrize(("selection", "loaded"), [("last", False), ("test-oracle", True)])
def test_the_trainer_loads_the_test_set_only_for_the_test_oracle(tiny_val_dataset, selection, loaded):
    cfg = small_config(tiny_val_dataset, **{"eval.selection": selection, "eval.val_every": 2})
    cpu = torch.device("cpu")
    data = training_data(build_method(cfg, cpu), cfg, cpu)
    assert (data.test_labels is not None, len(data.test) > 0, len(data.test_names) > 0) == (loaded,) * 3
    assert data.val is not None and len(data.normal) == 12


RUN_FILES = ("config.yaml", "train_log.csv", "val_log.csv", "scores.csv", "metrics.json", "maps.npz")


def test_run_command_trains_and_evaluates_in_one_process(tiny_val_dataset, tmp_path, caplog):
    extra = ["eval.val_every=2"]
    run_cli(tiny_val_dataset, tmp_path / "two", extra=extra)  # `sagan train`, then `sagan evaluate`
    one = tmp_path / "one"
    assert cli(["run", *train_args(tiny_val_dataset, extra=extra), "--out", str(one)]) == 0
    for name in ("scores.csv", "val_log.csv", "metrics.json"):
        assert (one / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    # Snakemake removes the outputs of a job before it reruns it; the checkpoint survives (it is no
    # output), so the rerun trains nothing again and writes every file anew
    scores = (one / "scores.csv").read_bytes()
    for name in RUN_FILES:
        (one / name).unlink()
    caplog.set_level("INFO")
    assert cli(["run", *train_args(tiny_val_dataset, extra=extra), "--out", str(one)]) == 0
    assert "from iteration 6" in caplog.text
    assert all((one / name).is_file() for name in RUN_FILES)
    assert (one / "scores.csv").read_bytes() == scores
    assert (one / "val_log.csv").read_bytes() == (tmp_path / "two" / "val_log.csv").read_bytes()


def test_run_command_with_several_seeds_equals_one_process_per_seed(tiny_val_dataset, tmp_path, capsys):
    """`sagan run --seed 0 1 2` (a row job of the synthetic configurations) trains and evaluates each
    seed as its own `sagan run` would, one after the other in one process: byte-identical files."""
    extra = ["eval.val_every=2"]
    args = [a for a in train_args(tiny_val_dataset, iters=4, extra=extra) if a not in ("--seed", "0")]
    assert cli(["run", *args, "--seed", "0", "1", "2", "--out", str(tmp_path / "row" / "seed{seed}")]) == 0
    assert [json.loads(line)["seed"] for line in capsys.readouterr().out.splitlines()] == [0, 1, 2]
    for seed in (1, 0):  # the later seed first: a seed's result does not depend on what ran before
        one = tmp_path / f"alone{seed}"
        assert cli(["run", *args, "--seed", str(seed), "--out", str(one)]) == 0
        row = tmp_path / "row" / f"seed{seed}"
        for name in ("config.yaml", "val_log.csv", "scores.csv", "metrics.json"):
            assert (one / name).read_bytes() == (row / name).read_bytes(), (seed, name)
        logs = [pd.read_csv(run / "train_log.csv").drop(columns="seconds") for run in (one, row)]
        pd.testing.assert_frame_equal(*logs)  # the losses; "seconds" is the wall clock
    scores = [pd.read_csv(tmp_path / "row" / f"seed{s}" / "scores.csv")["score"] for s in (0, 1)]
    assert not scores[0].equals(scores[1])  # the seeds are different runs


@pytest.mark.parametrize(
    ("other", "out", "message"),
    [
        (
            "other",
            "row/seed{seed}",
            "with several datasets each run needs its own folder; put {dataset} in it",
        ),
        ("copy/{name}", "{dataset}/seed{seed}", "two dataset folders have the same name"),
    ],
)
def test_run_command_with_several_datasets_needs_a_folder_per_dataset(
    tiny_val_dataset, tmp_path, capsys, other, out, message
):
    # a method job of the workflow (`datasets_in_one_job`): `sagan run --data A B C`, one folder per
    # dataset through {dataset} (the data folder's name); refused before any run started
    args = train_args(tiny_val_dataset, iters=2)
    second = tmp_path / other.format(name=tiny_val_dataset.name)
    args.insert(args.index(str(tiny_val_dataset)) + 1, str(second))
    assert cli(["run", *args, "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "row").exists() and not (tmp_path / tiny_val_dataset.name).exists()


@pytest.mark.parametrize(
    ("seeds", "out", "message"),
    [(["0", "1"], "row", "put {seed} in it"), (["1", "1"], "row/seed{seed}", "a seed is given twice")],
)
def test_run_command_with_several_seeds_needs_a_folder_per_seed(
    tiny_val_dataset, tmp_path, capsys, seeds, out, message
):
    args = [a for a in train_args(tiny_val_dataset, iters=2) if a not in ("--seed", "0")]
    assert cli(["run", *args, "--seed", *seeds, "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "row").exists()  # refused before any run started


def test_ci_and_bench_keep_the_demo_networks_and_change_only_budgets():
    for method in method_names():
        # each method's demo and bench budgets are written once, in its own PRESETS
        presets = get_method(method).PRESETS
        assert "train.iterations" in presets["demo"] and "train.iterations" in presets["bench"], method
        assert "train.iterations" not in PRESETS["demo"] and "train.iterations" not in PRESETS["bench"]
        demo = resolve_config(method, 0, "demo")
        for preset in ("ci", "bench"):
            cfg = resolve_config(method, 0, preset)
            # the demo's networks; a preset may set its own learning rates, in its own PRESETS (SAGAN's
            # bench: the shared ones, at which its bench budget was measured)
            rates = {k.split(".")[1] for k in presets.get(preset, {}) if k.startswith("model.lr")}
            at_demo_rates = replace(cfg.model, **{k: getattr(demo.model, k) for k in rates})
            assert at_demo_rates == demo.model, (method, preset)
            assert cfg.data == demo.data, (method, preset)
            assert cfg.train.batch_size == demo.train.batch_size and cfg.train.lr_decay == demo.train.lr_decay
        # CI's budget is the same minimal one for every method; the benchmark's is longer than the demo's
        assert resolve_config(method, 0, "ci").train.iterations == 6
        assert resolve_config(method, 0, "bench").train.iterations > demo.train.iterations


@pytest.mark.parametrize("method", method_names())
def test_turning_off_the_uninitialised_memory_fill_changes_no_number(tiny_dataset, method):
    """`seed_everything` turns off deterministic mode's fill of every new tensor (a 1-3.5% speed-up of a
    demo step). That is exact only if no op reads memory it has not written: 6 demo steps of the
    method on the tiny dataset give bit-identical parameters with the fill on and off."""
    cfg = resolve_config(method, 0, "demo", None, {"data.path": str(tiny_dataset)})

    def parameters_after_6_steps(fill: bool) -> dict[str, torch.Tensor]:
        net = build_method(cfg, torch.device("cpu"))  # seeds, and sets deterministic mode without the fill
        net.train()
        batches = BatchMaker(
            training_data(net, cfg, torch.device("cpu")), cfg, torch.device("cpu"), net.transform()
        )
        rng = torch.Generator().manual_seed(0)
        torch.utils.deterministic.fill_uninitialized_memory = fill
        assert not fill or torch.empty(8).isnan().all()  # with the fill on, a new tensor is NaN
        for t in range(6):
            net.training_step(batches(t, rng), t, rng)
        return {k: v.clone() for k, v in net.state_dict().items()}

    try:
        filled, unfilled = parameters_after_6_steps(True), parameters_after_6_steps(False)
    finally:
        seed_everything(0)  # the project's setting again
    assert torch.utils.deterministic.fill_uninitialized_memory is False
    assert filled.keys() == unfilled.keys() and all(torch.equal(filled[k], unfilled[k]) for k in filled)
