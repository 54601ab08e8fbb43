"""Prepare throughput on a fake RSNA competition archive that uses every real file name of the split.

    python benchmarks/prepare_throughput.py [--workers 2] [--dicom-size 64] [--limit N] [--image-size 64]

Builds the raw archive (zip, or tar.gz read as a stream; 8-bit MONOCHROME2 DICOMs of --dicom-size pixels; the real ones are 1024),
runs `prepare_dataset("rsna", ...)` and prints images/s and peak resident memory of the main
process and of the largest worker (resource.getrusage, children included). `--limit N` keeps the
first N names of each split list (for large --dicom-size).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fakes

from sagan.data.ingest import prepare_dataset  # noqa: E402
from sagan.data.splits import published_split  # noqa: E402
from tests.fakes import pack, write_rsna_raw  # noqa: E402


def limited(split: dict, n: int | None) -> dict:
    if n is None:
        return split
    unl = split["train"]["unlabeled"]
    return {
        "train": {"0": split["train"]["0"][:n], "unlabeled": {"0": unl["0"][:n], "1": unl["1"][:n]}},
        "test": {"0": split["test"]["0"][:n], "1": split["test"]["1"][:n]},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--dicom-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--form", default="zip", choices=["zip", "tar.gz"], help="archive form (tar.gz: streamed)")
    args = p.parse_args()
    split = limited(published_split("rsna"), args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if args.form == "zip":
            raw = write_rsna_raw(Path(tmp) / "rsna.zip", split, form="zip", size=args.dicom_size)
        else:
            raw = pack(write_rsna_raw(Path(tmp) / "rsna", split, size=args.dicom_size), "tar.gz")
        t1 = time.perf_counter()
        out = prepare_dataset("rsna", raw, Path(tmp) / "prepared", args.image_size, args.workers, split)
        t2 = time.perf_counter()
        n = sum(1 for _ in (out / "index.csv").open()) - 1
        zip_mb = raw.stat().st_size / 2**20
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"fake RSNA {args.form}: {n} DICOMs of {args.dicom_size}x{args.dicom_size}, {zip_mb:.1f} MiB, built in {t1 - t0:.1f} s"
    )
    print(
        f"prepare: {n} images -> {args.image_size}x{args.image_size} in {t2 - t1:.1f} s with {args.workers} workers: "
        f"{n / (t2 - t1):.0f} images/s"
    )
    print(f"peak RSS: main process {me:.0f} MiB, largest worker {kids:.0f} MiB")


if __name__ == "__main__":
    main()
