"""Table 1 splits and the unlabelled set for a given anomaly ratio (data.md, "Splits"), and their
summary for a prepared dataset (`sagan splits`).

The published Med-AD split files ship with the package (sagan/splits/, MIT, see NOTICE there).
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

from sagan.atomic import write_atomic
from sagan.config import parse_anomaly_ratio
from sagan.data.prepared import load_prepared, split_entries
from sagan.errors import DatasetError

log = logging.getLogger(__name__)

PUBLISHED = {"rsna": "rsna.json", "vindr": "vindr.json", "lag": "lag.json"}


def published_split(dataset: str) -> dict:
    """The published split file of a real dataset (rsna | vindr | lag)."""
    if dataset not in PUBLISHED:
        raise DatasetError(f"no published split for {dataset!r}; known: {', '.join(PUBLISHED)}")
    return json.loads(resources.files("sagan.splits").joinpath(PUBLISHED[dataset]).read_text())


def table1_counts(split: dict) -> dict[str, int]:
    """The Table 1 row of a split: T_n, T_u (= U at the default construction) and its pools, T_test;
    and the validation split's counts (val_normal, val_abnormal) where the split has one."""
    split_entries(split)  # validates structure and disjointness
    unl = split["train"]["unlabeled"]
    counts = {
        "train_normal": len(split["train"]["0"]),
        "unlabeled_total": len(split["train"]["0"]),  # U = number of labelled normals
        "unlabeled_normal": len(unl["0"]),
        "unlabeled_abnormal": len(unl["1"]),
        "test_normal": len(split["test"]["0"]),
        "test_abnormal": len(split["test"]["1"]),
    }
    if "val" in split:  # not a Table 1 column
        counts |= {"val_normal": len(split["val"]["0"]), "val_abnormal": len(split["val"]["1"])}
    return counts


def validation_split(split: dict) -> tuple[list[str], list[int]] | None:
    """Names and labels (0 normal, 1 abnormal) of the labelled validation split, normals first;
    None for a split without one (the real datasets)."""
    if "val" not in split:
        return None
    normal, abnormal = list(split["val"]["0"]), list(split["val"]["1"])
    return normal + abnormal, [0] * len(normal) + [1] * len(abnormal)


def build_unlabeled_set(split: dict, ar: float | None, on_small_pool: str = "error") -> dict:
    """The unlabelled training set at anomaly ratio `ar`, as the authors' code builds it.

    U = number of labelled normals; the first int(U*ar) names of unlabeled["1"] and the first
    U - int(U*ar) names of unlabeled["0"], in file order. `ar=None` is the "0_u" setting (empty).
    If a pool is too small: `on_small_pool="error"` raises a DatasetError saying so;
    `"shrink"` lowers U until both pools suffice and logs the reduction.
    Returns {"names": [...], "n_abnormal": a, "n_normal": n, "U": U, "requested_U": U0}.
    """
    U0 = len(split["train"]["0"])
    if ar is None:
        return {"names": [], "n_abnormal": 0, "n_normal": 0, "U": 0, "requested_U": U0}
    normal_pool = split["train"]["unlabeled"]["0"]
    abnormal_pool = split["train"]["unlabeled"]["1"]
    U = U0
    while True:
        n_ab = int(U * ar)
        n_no = U - n_ab
        if n_ab <= len(abnormal_pool) and n_no <= len(normal_pool):
            break
        if on_small_pool != "shrink":
            raise DatasetError(
                f"anomaly ratio {ar:g} needs {n_ab} abnormal and {n_no} normal unlabelled images (U = {U}), "
                f"but the pools hold {len(abnormal_pool)} abnormal and {len(normal_pool)} normal. "
                "Use a smaller ratio, or set data.on_small_pool=shrink to reduce U (logged and recorded)."
            )
        U -= 1
    if U != U0:
        log.warning("anomaly ratio %g: unlabelled set shrunk from U=%d to U=%d (pools too small)", ar, U0, U)
    names = list(abnormal_pool[:n_ab]) + list(normal_pool[:n_no])
    return {"names": names, "n_abnormal": n_ab, "n_normal": n_no, "U": U, "requested_U": U0}


def splits_summary(data: str | Path, ratios: list[str], on_small_pool: str = "error") -> dict:
    """Table 1 row, the ingest's label check and the unlabelled set composition for each ratio."""
    ds = load_prepared(data, mmap=True)
    variants: dict[str, dict] = {}
    for ratio in dict.fromkeys([*ratios, "0_u"]):
        ar = parse_anomaly_ratio(ratio, key="ratio")
        try:
            u = build_unlabeled_set(ds.split, ar, on_small_pool)
            variants[ratio] = {k: u[k] for k in ("n_abnormal", "n_normal", "U", "requested_U")}
        except DatasetError as err:  # expected for LAG above 0.6: recorded, not fatal
            variants[ratio] = {"error": str(err)}
    return {
        "dataset": ds.name,
        "table1": table1_counts(ds.split),
        "label_check": ds.meta.get("label_check"),
        "on_small_pool": on_small_pool,
        "unlabeled": variants,
    }


def cli_splits(args: Any) -> int:
    """`sagan splits DATA --out FILE.json [--ratios ...] [--on-small-pool error|shrink]`."""
    ratios = [r.strip() for r in args.ratios.split(",") if r.strip()]
    for r in ratios:
        parse_anomaly_ratio(r, key="--ratios")  # a fraction in [0, 1] or 0_u (ConfigError otherwise)
    summary = splits_summary(args.data, ratios, args.on_small_pool)
    write_atomic(args.out, json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0
