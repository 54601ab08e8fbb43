"""AMAE (sagan/methods/amae.py) and its MAE (sagan/models/mae.py): patches and masks, each stage's loss,
which parameters each stage trains, the pseudo-labels, scores, determinism and exact resume."""

from __future__ import annotations

import copy

import pytest
import torch

from sagan.errors import ConfigError
from sagan.methods.amae import AMAE, AMAEConfig, pseudo_labels
from sagan.models.mae import MaskedAutoencoder, masked_of, patchify, random_keep, unpatchify
from sagan.runtime import build_method, resolve_config
from sagan.trainer import BatchMaker, training_data

SIZE = 32
TINY = {  # a small model, so that a few hundred steps take seconds
    "model.patch_size": 4,  # 64 tokens at 32 px
    "model.dim": 32,
    "model.depth": 1,
    "model.heads": 2,
    "model.decoder_dim": 16,
    "model.decoder_heads": 2,
    "model.head_hidden": 16,
    "model.queue_size": 64,
}


def make(tiny, iterations: int, seed: int = 0, **sets) -> tuple[AMAE, BatchMaker]:
    """AMAE on the tiny dataset through the run configuration and the trainer's batches."""
    over = {"data.path": str(tiny), "train.iterations": iterations, "train.batch_size": 8, **TINY, **sets}
    cfg = resolve_config("amae", seed, "demo", None, over)
    method = build_method(cfg, torch.device("cpu"))
    data = training_data(method, cfg, torch.device("cpu"))
    return method, BatchMaker(data, cfg, torch.device("cpu"), method.transform())


def run(method: AMAE, batches: BatchMaker, steps: range, rng: torch.Generator) -> list[dict]:
    method.train()
    return [{k: float(v) for k, v in method.training_step(batches(t, rng), t, rng).items()} for t in steps]


def snapshot(method: AMAE) -> dict[str, list[torch.Tensor]]:
    return {n: [p.detach().clone() for p in getattr(method, n).parameters()] for n in MODULES}


def changed(before: dict, method: AMAE) -> set[str]:
    now = snapshot(method)
    return {n for n in MODULES if any(not torch.equal(a, b) for a, b in zip(before[n], now[n]))}


MODULES = ("mae", "head", "normative", "anomalous")


def test_patchify_and_unpatchify_are_exact_inverses():
    x = torch.randn(2, 1, SIZE, SIZE)
    tokens = patchify(x, 4)
    assert tokens.shape == (2, 64, 16)
    assert torch.equal(unpatchify(tokens, 4), x)
    assert torch.equal(tokens[:, 1].reshape(2, 4, 4), x[:, 0, 0:4, 4:8])  # row-major: 2nd patch of row 0
    assert torch.equal(tokens[:, 8].reshape(2, 4, 4), x[:, 0, 4:8, 0:4])  # 1st patch of row 1
    t = torch.randn(3, 16, 64)
    assert torch.equal(patchify(unpatchify(t, 8), 8), t)


def test_random_masks_hide_the_ratio_of_patches_and_differ_per_image():
    keep = random_keep(6, 64, 0.75, torch.Generator().manual_seed(0), "cpu")
    assert keep.shape == (6, 16)
    assert all(len(set(row.tolist())) == 16 for row in keep)
    mask = masked_of(keep, 64)
    assert torch.equal(mask.sum(1), torch.full((6,), 48.0))
    assert torch.equal(mask.gather(1, keep), torch.zeros(6, 16))
    assert len({tuple(sorted(row.tolist())) for row in keep}) == 6
    again = random_keep(6, 64, 0.75, torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(keep, again)


def test_masked_loss_is_the_error_on_masked_patches_only():
    torch.manual_seed(0)
    mae = MaskedAutoencoder(SIZE, 4, 32, 1, 2, 16, 1, 2)
    x = torch.rand(3, 1, SIZE, SIZE) * 2 - 1
    keep = random_keep(3, 64, 0.75, torch.Generator().manual_seed(1), "cpu")
    err = ((mae(x, keep) - patchify(x, 4)) ** 2).mean(-1)  # (3, 64)
    masked = masked_of(keep, 64).bool()
    expected = torch.stack([err[i][masked[i]].mean() for i in range(3)])
    assert torch.allclose(mae.masked_loss(x, keep), expected)


def test_test_time_masks_show_each_patch_once(tiny_dataset):
    method, _ = make(tiny_dataset, 30)
    groups = method.eval_groups(torch.device("cpu"))
    assert len(groups) == 4  # 1 / (1 - 0.75)
    assert sorted(torch.cat(groups).tolist()) == list(range(64))
    assert {len(g) for g in groups} == {16}  # the training ratio: 48 of 64 patches hidden per pass


def test_pseudo_labels_on_a_hand_made_case():
    p_normal = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5])  # quantile 0.5 -> 0.3, quantile 0.75 -> 0.4
    p_unlabeled = torch.tensor([0.05, 0.3, 0.35, 0.4, 0.45, 0.9])
    is_normal, is_anomalous = pseudo_labels(p_unlabeled, p_normal, 0.5, 0.75)
    assert is_normal.tolist() == [True, True, False, False, False, False]
    assert is_anomalous.tolist() == [False, False, False, False, True, True]
    everything = pseudo_labels(p_unlabeled, p_normal, 1.0, 1.0)
    assert everything[0].tolist() == [True] * 5 + [False] and everything[1].tolist() == [False] * 5 + [True]


def test_the_normals_queue_keeps_the_latest_probabilities(tiny_dataset):
    method, _ = make(tiny_dataset, 30, **{"model.queue_size": 5})
    assert method._push_normals(torch.tensor([0.1, 0.2])).tolist() == pytest.approx([0.1, 0.2])
    kept = method._push_normals(torch.tensor([0.3, 0.4, 0.5, 0.6, 0.7]))
    assert sorted(kept.tolist()) == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7])
    assert int(method.queued) == 7
    kept = method._push_normals(torch.arange(12) / 100)  # more than the queue holds: the last five
    assert sorted(kept.tolist()) == pytest.approx([0.07, 0.08, 0.09, 0.10, 0.11])


def test_stages_split_the_iterations_and_too_few_iterations_are_refused(tiny_dataset):
    method, _ = make(tiny_dataset, 100)
    assert (method.s1, method.s2) == (50, 80)
    assert [method.stage(t) for t in (0, 49, 50, 79, 80, 99)] == [0, 0, 1, 1, 2, 2]
    # its validation curve is judged from the stage that trains each score (sagan/report/curves.py)
    assert (method.score_start(), method.score_start("normative"), method.score_start("classifier")) == (
        80,
        80,
        50,
    )
    with pytest.raises(ConfigError, match="leaves no iteration"):
        make(tiny_dataset, 3)
    with pytest.raises(ConfigError, match="patch_size"):
        AMAE(AMAEConfig(patch_size=5), SIZE, 100)
    with pytest.raises(ConfigError, match="classifier_fraction"):
        resolve_config("amae", 0, "demo", None, {"model.mae_fraction": 0.7, "model.classifier_fraction": 0.3})


def test_each_stage_trains_only_its_own_networks(tiny_dataset):
    method, batches = make(tiny_dataset, 30)  # stages [0, 15), [15, 24), [24, 30)
    rng = torch.Generator().manual_seed(0)
    before = snapshot(method)
    run(method, batches, range(0, 2), rng)
    assert changed(before, method) == {"mae"}
    before = snapshot(method)
    run(method, batches, range(15, 17), rng)
    assert changed(before, method) == {"head"}  # the MAE is frozen
    before = snapshot(method)
    logs = run(method, batches, range(24, 26), rng)
    stepped = {"normative"} | ({"anomalous"} if any("anomalous_loss" in row for row in logs) else set())
    assert changed(before, method) == stepped  # the MAE and the classifier are frozen


def test_stage_two_starts_from_the_stage_zero_mae(tiny_dataset):
    # anomaly quantile 1: no unlabelled image is pseudo-anomalous, the anomalous module does not step
    method, batches = make(tiny_dataset, 30, **{"model.anomaly_quantile": 1.0})
    batch = batches(24, torch.Generator().manual_seed(0))
    batch.unlabeled = batch.normal.clone()  # probabilities equal to the normals': none above their max
    mae = copy.deepcopy(method.mae.state_dict())
    assert not bool(method.adapted)
    losses = method.training_step(batch, 24, torch.Generator().manual_seed(0))
    assert bool(method.adapted) and "anomalous_loss" not in losses and float(losses["pseudo_anomalous"]) == 0
    assert all(torch.equal(v, mae[k]) for k, v in method.anomalous.state_dict().items())
    assert not all(torch.equal(v, mae[k]) for k, v in method.normative.state_dict().items())  # one step


def test_without_unlabelled_images_the_anomalous_module_learns_the_synthetic_anomalies(tiny_dataset):
    method, batches = make(tiny_dataset, 30, **{"data.anomaly_ratio": "0_u"})
    batch = batches(24, torch.Generator().manual_seed(0))
    assert batch.unlabeled is None and batch.pseudo is not None
    losses = method.training_step(batch, 24, torch.Generator().manual_seed(0))
    assert set(losses) == {"normative_loss", "anomalous_loss"}


def test_the_loss_of_each_stage_falls(tiny_dataset):
    fractions = {"model.mae_fraction": 0.3, "model.classifier_fraction": 0.4}
    method, batches = make(tiny_dataset, 600, **fractions)  # stages of 180, 240 and 180 steps
    logs = run(method, batches, range(600), torch.Generator().manual_seed(0))  # CutPaste anomalies

    def falls(key: str, rows: list[dict]) -> bool:
        values = [r[key] for r in rows if key in r]
        k = max(3, len(values) // 5)
        return sum(values[-k:]) / k < 0.8 * sum(values[:k]) / k

    assert falls("mae_loss", logs[:180])
    assert falls("cls_loss", logs[180:420])
    assert falls("normative_loss", logs[420:]) and falls("anomalous_loss", logs[420:])


def test_scores_maps_and_extras_have_the_documented_shapes_and_ranges(tiny_dataset):
    method, batches = make(tiny_dataset, 30)
    run(method, batches, range(30), torch.Generator().manual_seed(0))
    method.eval()
    x = torch.rand(5, 1, SIZE, SIZE) * 2 - 1
    out = method.predict(x)
    assert out.score.shape == (5,) and bool(((out.score >= 0) & (out.score <= 1)).all())
    assert out.map.shape == out.restored.shape == (5, 1, SIZE, SIZE)
    assert bool((out.map.abs() <= 1).all()) and bool((out.restored.abs() <= 1).all())
    assert set(out.extra) == {"normative", "classifier"}
    assert all(v.shape == (5,) for v in out.extra.values())
    assert bool(((out.extra["classifier"] >= 0) & (out.extra["classifier"] <= 1)).all())
    e_n = ((x - out.restored) ** 2 / 4).flatten(1).mean(1)
    assert torch.allclose(out.extra["normative"], e_n)
    # scores use fixed masks: the same with or without a generator, alone or in a batch
    again = method.predict(x[:2], torch.Generator().manual_seed(5))
    assert torch.allclose(again.score, out.score[:2], atol=1e-6)


def test_training_is_deterministic_and_resumes_exactly_in_any_stage(tiny_dataset):
    whole, batches = make(tiny_dataset, 30, seed=3)
    run(whole, batches, range(30), torch.Generator().manual_seed(3))
    x = torch.rand(4, 1, SIZE, SIZE) * 2 - 1
    expected = whole.eval().predict(x).score
    twin, batches = make(tiny_dataset, 30, seed=3)
    run(twin, batches, range(30), torch.Generator().manual_seed(3))
    assert torch.equal(twin.eval().predict(x).score, expected)
    for stop in (20, 27):  # killed in stage 1, and in stage 2 with the queue partly filled
        first, batches = make(tiny_dataset, 30, seed=3)
        rng = torch.Generator().manual_seed(3)
        run(first, batches, range(stop), rng)
        state = {
            "model": copy.deepcopy(first.state_dict()),
            "optimizers": {k: copy.deepcopy(o.state_dict()) for k, o in first.optimizers.items()},
            "rng": rng.get_state(),
        }
        resumed, batches = make(tiny_dataset, 30, seed=3)
        with torch.no_grad():  # other weights: the checkpoint must overwrite them all
            for p in resumed.parameters():
                p.add_(1.0)
        resumed.load_state_dict(state["model"])
        for name, opt in resumed.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        rng = torch.Generator().manual_seed(0)
        rng.set_state(state["rng"])
        run(resumed, batches, range(stop, 30), rng)
        assert torch.equal(resumed.eval().predict(x).score, expected), stop
