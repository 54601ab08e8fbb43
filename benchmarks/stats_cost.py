"""Cost of the statistics of a demo-sized experiment, and coverage of the row interval.

    python benchmarks/stats_cost.py [--runs 135] [--seeds 3] [--test 80] [--group 5] [--map-size 64]
                                    [--coverage 0] [--demo]

Generated scores stand in for the runs (the statistics only see per-image scores and labels):
runs / seeds table rows, each row --seeds runs of --test images (half abnormal), rows in groups of
--group compared with their best. Times, in seconds: a stratified bootstrap interval per run, a
two-way interval per row, DeLong + paired bootstrap + Holm per group, and the localization metrics
of every run on --test maps of --map-size pixels. All with 2000 resamples.

--demo builds the demo's run matrix (config/demo.yaml: 3 synthetic sets, every registered method,
3 seeds, the Table 3 variants on synth-vindr and the Table 4 ratios on synth-rsna) as run folders in
the evaluator's layout (tests/run_fakes.py; --test images of --map-size pixels per run), then times
what the evaluator adds per run (`run_interval` and `run_localization` on the stored scores and maps)
and `sagan tables` on the whole experiment (every interval and p-value of Tables 2-4 and table_loc).

--coverage N simulates N experiments whose true seed-mean AUC is known (seeds differ in signal
strength by --seed-spread) and prints how often each
kind of 95% interval holds it: the two-way bootstrap (seeds x images, the one the tables use), a
bootstrap over images only (seeds fixed), and a t interval over seeds only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import norm, t

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sagan import localization, stats  # noqa: E402
from sagan.experiments import MAIN_AR, VARIANTS  # noqa: E402
from sagan.methods import method_names  # noqa: E402
from sagan.report.tables import build_tables  # noqa: E402
from tests.run_fakes import make_run, make_splits  # noqa: E402

DEMO_DATASETS = ("synth-rsna", "synth-vindr", "synth-lag")
DEMO_RATIOS = ("0_u", "0", "0.2", "0.4", "0.8", "1")  # Table 4, besides the main ratio


def scores_of_row(
    rng: np.random.Generator, labels: np.ndarray, seeds: int, signal: float, spread: float = 0.3
) -> np.ndarray:
    """(seeds, n): an image effect shared by all seeds, a per-seed signal strength and noise."""
    image = rng.normal(0, 1, labels.size)
    strength = rng.normal(signal, spread, (seeds, 1))
    return strength * labels + image + rng.normal(0, 0.7, (seeds, labels.size))


def timed(label: str, fn) -> float:
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    print(f"{label:58s} {seconds:7.2f} s")
    return seconds


def cost(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], args.test // 2)
    n_rows = args.runs // args.seeds
    rows = [scores_of_row(rng, labels, args.seeds, rng.uniform(0.5, 2.5)) for _ in range(n_rows)]
    groups = [rows[i : i + args.group] for i in range(0, n_rows, args.group)]
    print(
        f"{args.runs} runs = {n_rows} rows x {args.seeds} seeds, {args.test} test images, {len(groups)} groups"
    )
    total = timed(
        f"per-run intervals ({args.runs} runs)",
        lambda: [stats.run_interval(s, labels) for r in rows for s in r],
    )
    total += timed(
        f"per-row two-way intervals ({n_rows} rows)", lambda: [stats.row_interval(r, labels) for r in rows]
    )
    total += timed(
        f"comparisons with the best ({len(groups)} groups of {args.group})",
        lambda: [stats.compare_to_best({f"m{i}": r for i, r in enumerate(g)}, labels) for g in groups],
    )
    print(f"{'statistics, total':58s} {total:7.2f} s")
    size = args.map_size
    truth = np.zeros((args.test, size, size), bool)
    for i in np.flatnonzero(labels):
        r, c = rng.integers(0, size - size // 4, 2)
        truth[i, r : r + size // 4, c : c + size // 6] = True
    maps = [rng.random((args.test, size, size)) + 0.5 * truth for _ in range(args.runs)]
    timed(
        f"localization metrics ({args.runs} runs of {args.test} {size}x{size} maps)",
        lambda: [localization.localization_metrics(m, labels, truth) for m in maps],
    )


def demo_matrix(seeds: int) -> list[tuple[str, str, str, str, int]]:
    """(dataset, method, ar, variant, seed) of every run of the demo (workflow/rules/common.smk)."""
    keys = []
    for seed in range(seeds):
        keys += [(d, m, MAIN_AR, "default", seed) for d in DEMO_DATASETS for m in method_names()]
        keys += [("synth-vindr", "sagan", MAIN_AR, v, seed) for v in VARIANTS if v != "default"]
        keys += [("synth-rsna", "sagan", ar, "default", seed) for ar in DEMO_RATIOS]
    return keys


def demo(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "demo"
        keys = demo_matrix(args.seeds)
        folders = []
        for d in DEMO_DATASETS:
            make_splits(root, d)
        for dataset, method, ar, variant, seed in keys:
            folders.append(
                make_run(
                    root, dataset, method, seed, ar=ar, variant=variant, n_test=args.test, size=args.map_size
                )
            )
        print(f"demo matrix: {len(keys)} runs ({len(method_names())} methods), {args.test} test images of "
              f"{args.map_size}x{args.map_size} px")  # fmt: skip
        stored = []
        for run in folders:
            z = np.load(run / "maps.npz")
            maps = z["test_maps"].astype(np.float32) * float(z["test_map_scale"])
            truth = z["test_truth"] if "test_truth" in z.files else None
            stored.append((z["test_labels"], np.loadtxt(run / "scores.csv", delimiter=",", skiprows=1, usecols=2),
                           maps, truth))  # fmt: skip
        total = timed(
            f"evaluator: run intervals ({len(stored)} runs)",
            lambda: [stats.run_interval(scores, labels) for labels, scores, _, _ in stored],
        )
        total += timed(
            f"evaluator: localization ({len(stored)} runs)",
            lambda: [localization.run_localization(m, y, t, "masks" if t is not None else None)
                     for y, _, m, t in stored],
        )  # fmt: skip
        total += timed(
            "sagan tables (Tables 1-4 and table_loc, every interval and p)", lambda: build_tables(root)
        )
        print(f"{'statistics of the demo, total':58s} {total:7.2f} s")


def coverage(args: argparse.Namespace) -> None:
    """True value: scores differ between an abnormal and a normal image by N(strength, 2 (1 + 0.7^2)),
    so a seed's population AUC is Phi(strength / sqrt(2.98)); the target is its mean over seeds."""
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], args.test // 2)
    signal = 1.0
    draws = np.random.default_rng(2).normal(signal, args.seed_spread, 1_000_000)
    truth = float(norm.cdf(draws / np.sqrt(2 * (1 + 0.7**2))).mean())
    held = {"two-way bootstrap": 0, "images only": 0, "seeds only (t)": 0}
    for k in range(args.coverage):
        row = scores_of_row(rng, labels, args.seeds, signal, args.seed_spread)
        lo, hi = stats.row_interval(row, labels, seed=k)["auc"]
        held["two-way bootstrap"] += lo <= truth <= hi
        images = stats.stratified_weights(labels, stats.N_BOOT, np.random.default_rng(k))
        boot = np.mean([stats.weighted_auc(s, labels, images) for s in row], axis=0)
        lo, hi = stats.percentile_interval(boot)
        held["images only"] += lo <= truth <= hi
        aucs = [stats.weighted_auc(s, labels, np.ones((1, labels.size), int))[0] for s in row]
        half = t.ppf(0.975, args.seeds - 1) * np.std(aucs, ddof=1) / np.sqrt(args.seeds)
        held["seeds only (t)"] += abs(np.mean(aucs) - truth) <= half
    print(f"coverage of 95% intervals of the seed-mean AUC (true {truth:.4f}), {args.coverage} experiments:")
    for name, n in held.items():
        print(f"  {name:20s} {n / args.coverage:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=135)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--test", type=int, default=80)
    p.add_argument("--group", type=int, default=5)
    p.add_argument("--map-size", type=int, default=64)
    p.add_argument("--coverage", type=int, default=0)
    p.add_argument("--seed-spread", type=float, default=0.3, help="std of the seeds' signal strength")
    p.add_argument("--demo", action="store_true", help="time the demo's matrix as run folders instead")
    args = p.parse_args()
    if args.demo:
        demo(args)
    else:
        cost(args)
    if args.coverage:
        coverage(args)


if __name__ == "__main__":
    main()
