"""A synthetic set as a Med-AD folder, prepared by the real ingest: names, rendering in worker
processes, provenance, and the `sagan synth` command."""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

from sagan.atomic import temp_dir, write_atomic
from sagan.data.ingest import prepare_dataset
from sagan.data.outputs import FolderKind, claim_output, writing_folder
from sagan.data.prepared import PREPARED
from sagan.data.synthetic.specs import (
    GROUP_LABEL,
    GROUPS,
    RENDER_SIZE,
    TABLE1_GROUPS,
    VAL_GROUPS,
    SynthDataset,
    dataset_spec,
    split_counts,
)
from sagan.data.synthetic.subject import draw_subject, mask_boxes, one_blas_thread
from sagan.errors import DatasetError


def _names(spec: SynthDataset, seed: int, counts: dict[str, int]) -> dict[str, list[str]]:
    """File names per group: numbers drawn by a seeded permutation, so neither the name nor the
    file order gives away the label; each list keeps subject order (its first k are stable).

    The Table 1 groups share one permutation of 1..N; the validation groups get their own of the
    numbers after N, so that adding them renamed no existing image."""
    stem = spec.name.replace("-", "_")
    out: dict[str, list[str]] = {}
    first = 1
    for groups, entropy in ((TABLE1_GROUPS, [seed, spec.code, 99]), (VAL_GROUPS, [seed, spec.code, 99, 1])):
        total = sum(counts[g] for g in groups)
        numbers = np.random.default_rng(entropy).permutation(total) + first
        at = 0
        for g in groups:
            out[g] = [f"{stem}_{int(n):05d}.png" for n in numbers[at : at + counts[g]]]
            at += counts[g]
        first += total
    return out


def _write_subject(task: tuple[str, int, str, int, str, str, int]) -> list[str]:
    """Render one subject into a Med-AD folder; returns its boxes.csv rows."""
    name, seed, group, index, fname, out, level = task
    sub = draw_subject(name, seed, group, index)
    img, mask = sub.image, sub.mask
    Image.fromarray(img).save(Path(out, "images", fname), compress_level=level)
    if GROUP_LABEL[group] == 0:
        return []
    Image.fromarray(mask.astype(np.uint8) * 255).save(
        Path(out, "masks", f"{Path(fname).stem}.png"), compress_level=level
    )
    return [f"{fname},{x0},{y0},{x1},{y1}" for x0, y0, x1, y1 in mask_boxes(mask)]


def _retain_freed_memory() -> None:
    """Let glibc keep up to 64 MB of freed memory instead of returning it to the OS at once.

    A subject allocates and frees some fifty 256 KB arrays; by default glibc unmaps them when the
    subject is done and the next one page-faults them back in. benchmarks/synthetic_render.py
    (size small, 2-core machine, shared): with it, rendering synth-vindr takes 4.8 s against 6.1 s
    in one process and 6.4 against 11.8 s with two workers (synth-lag: 5.2 / 7.1 and 6.6 / 9.0 s),
    with 10-40x fewer minor page faults and the same peak RSS (within 1 MB).
    The setting is process-wide and stays for the rest of the process (at most 64 MB held back).
    A no-op where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _usable_cores() -> int:
    """Cores this process may run on (respects taskset / cgroup affinity where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _init_render_worker() -> None:
    threadpool_limits(1, user_api="blas")
    _retain_freed_memory()


def write_medad_folder(
    name: str, out: str | Path, seed: int = 0, size: str = "small", workers: int = 1, png_level: int = 1
) -> Path:
    """Render a synthetic dataset as a Med-AD folder: images/<name>.png (RENDER_SIZE, grey),
    data.json (the split), boxes.csv (name,x_min,y_min,x_max,y_max in pixels, x_max exclusive),
    masks/<stem>.png (abnormal images only). `workers` processes render (0 = all cores); the
    result does not depend on it. `png_level`: zlib level (0 is fastest, for a throwaway folder)."""
    spec = dataset_spec(name)
    names = _names(spec, seed, split_counts(name, size))
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    tasks = [
        (name, seed, g, k, fname, str(out), png_level) for g in GROUPS for k, fname in enumerate(names[g])
    ]
    workers = min(len(tasks), workers if workers > 0 else _usable_cores())
    if workers <= 1:
        _retain_freed_memory()
        with one_blas_thread():
            rows = [_write_subject(t) for t in tasks]
    else:
        with multiprocessing.get_context("fork").Pool(workers, _init_render_worker) as pool:
            rows = pool.map(_write_subject, tasks, chunksize=max(1, len(tasks) // (workers * 8)))
    split = {
        "train": {"0": names["train/0"], "unlabeled": {"0": names["unlabeled/0"], "1": names["unlabeled/1"]}},
        "test": {"0": names["test/0"], "1": names["test/1"]},
        "val": {"0": names["val/0"], "1": names["val/1"]},  # read by the ingest when present
    }
    (out / "data.json").write_text(json.dumps(split, indent=1))
    (out / "boxes.csv").write_text(
        "\n".join(["name,x_min,y_min,x_max,y_max"] + [r for rs in rows for r in rs]) + "\n"
    )
    return out


SYNTH_MARKER = "sagan-synth.json"  # marks a --keep-raw folder as written by `sagan synth` (its provenance)
SYNTH_RAW = FolderKind(
    "a Med-AD folder",
    frozenset({"images", "masks", "data.json", "boxes.csv", SYNTH_MARKER}),
    lambda folder: (folder / SYNTH_MARKER).is_file(),
)


def make_synthetic(
    name: str,
    out: str | Path,
    seed: int = 0,
    size: str = "small",
    image_size: int = 64,
    keep_raw: str | Path | None = None,
    workers: int = 0,
    overwrite: bool = False,
) -> Path:
    """Generate a synthetic dataset and prepare it with the real ingest; returns the prepared folder.

    The Med-AD folder is written to a temporary folder, or kept at `keep_raw`. `overwrite`: replace
    what an earlier `sagan synth` wrote at `out` and `keep_raw` (nothing else is ever replaced).
    `workers`: processes for rendering and for the ingest (0 = all cores).
    """
    dataset_spec(name)
    split_counts(name, size)  # validates --size before any work
    if seed < 0:
        raise DatasetError(f"--seed must be >= 0, got {seed}")
    claim_output(out, PREPARED, overwrite)
    if keep_raw is not None:
        claim_output(keep_raw, SYNTH_RAW, overwrite, "--keep-raw")
    provenance = {
        "generator": "sagan.data.synthetic",
        "name": name,
        "seed": seed,
        "size": size,
        "render_size": RENDER_SIZE,
        "counts": split_counts(name, size),
    }
    if keep_raw is None:
        with temp_dir(out, "medad") as tmp:  # the throwaway folder goes beside the output
            raw = write_medad_folder(name, tmp / name, seed=seed, size=size, workers=workers, png_level=0)
            prepared = prepare_dataset(
                "medad", raw, out, image_size=image_size, workers=workers, name=name, overwrite=overwrite
            )
        source = f"sagan synth {name} --seed {seed} --size {size} (rendered to a temporary Med-AD folder)"
        return _record_provenance(prepared, provenance, source)
    # render beside the target and swap it in, so an interrupted run leaves no half folder there
    with writing_folder(keep_raw, SYNTH_RAW, overwrite, "--keep-raw") as tmp:
        write_medad_folder(name, tmp, seed=seed, size=size, workers=workers)
        (tmp / SYNTH_MARKER).write_text(json.dumps(provenance, indent=2) + "\n")
    prepared = prepare_dataset(
        "medad", keep_raw, out, image_size=image_size, workers=workers, name=name, overwrite=overwrite
    )
    return _record_provenance(prepared, provenance, None)


def _record_provenance(prepared: Path, provenance: dict, source: str | None) -> Path:
    """Add how the data was generated to meta.json (rewritten atomically); `source` replaces the
    ingest's source path when that folder was temporary."""

    meta_path = Path(prepared) / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["synthetic"] = provenance
    if source is not None:
        meta["source"] = source
    write_atomic(meta_path, json.dumps(meta, indent=2, sort_keys=True))
    return Path(prepared)


def cli_synth(args: argparse.Namespace) -> int:
    """`sagan synth NAME --out DIR [--seed S] [--size small|medium|large] [--image-size 64] [--keep-raw DIR]`."""
    t0 = time.perf_counter()
    out = make_synthetic(
        args.name,
        args.out,
        seed=args.seed,
        size=args.size,
        image_size=args.image_size,
        keep_raw=getattr(args, "keep_raw", None),
        overwrite=args.overwrite,
    )
    counts = split_counts(args.name, args.size)
    print(
        f"wrote {out}: {args.name} ({args.size}, seed {args.seed}), {sum(counts.values())} images at "
        f"{args.image_size} px, {time.perf_counter() - t0:.1f} s"
    )
    return 0
