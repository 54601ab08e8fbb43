"""`sagan` command line: the one entry point used by users, tests, Snakemake and DVC.

Each sub-command parses its arguments here and calls one function of the package, imported only
when the command runs: the data and report commands (`sagan tables`, `sagan synth`, ...) never
import torch (tests/test_imports.py checks `sagan tables`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from sagan.atomic import DISK_FULL, storage_error
from sagan.errors import SaganError

# sub-command -> "module:function"; each function takes the parsed argparse.Namespace
HANDLERS = {
    "synth": "sagan.data.synthetic:cli_synth",
    "download": "sagan.data.download:cli_download",
    "prepare": "sagan.data.ingest:cli_prepare",
    "splits": "sagan.data.splits:cli_splits",
    "train": "sagan.trainer:cli_train",
    "evaluate": "sagan.evaluate:cli_evaluate",
    "run": "sagan.run:cli_run",
    "methods": "sagan.methods:cli_methods",
    "tables": "sagan.report.tables:cli_tables",
    "check-tables": "sagan.report.checks:cli_check_tables",
    "compare-paper": "sagan.report.checks:cli_compare_paper",
    "figures": "sagan.report.figures:cli_figures",
    "check-sources": "sagan.data.download:cli_check_sources",
    "fingerprint": "sagan.fingerprint:cli_fingerprint",
}

MAPS_HELP = "anomaly maps to save per class for figures"
OVERWRITE_HELP = (
    "replace a prepared dataset (or --keep-raw folder) that sagan wrote earlier at that path; a folder "
    "holding anything else is never replaced"
)


def count(text: str) -> int:
    """An argument that counts something: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sagan", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # --- data -------------------------------------------------------------------------------
    s = sub.add_parser(
        "synth", help="write a prepared synthetic dataset (synth-rsna | synth-vindr | synth-lag)"
    )
    s.add_argument("name")
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", default="small", help="small (demo default) | large | medium")
    s.add_argument("--image-size", type=int, default=64)
    s.add_argument(
        "--keep-raw", default=None, metavar="DIR", help="also keep the rendered Med-AD folder here"
    )
    s.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)

    s = sub.add_parser("download", help="fetch a raw dataset (Kaggle, URL, or a local archive/folder)")
    s.add_argument("dataset", help="rsna | vindr | lag")
    s.add_argument("--out", required=True, help="folder that receives the raw archive or folder")
    s.add_argument(
        "--source", default="kaggle", help="'kaggle' (rsna, vindr), a URL (lag), or a local archive/folder"
    )
    s.add_argument("--sha256", default=None, help="expected sha256 of a URL download")

    s = sub.add_parser("check-sources", help="fail early, with one message, if a dataset source is unusable")
    s.add_argument("--dataset", action="append", default=[], help="DATASET=SOURCE (repeatable)")

    s = sub.add_parser("prepare", help="raw layout -> prepared dataset (images.npy + index.csv + split.json)")
    s.add_argument("dataset", help="rsna | vindr | lag | medad (a Med-AD folder: images/ + data.json)")
    s.add_argument("--source", required=True, help="raw archive (zip, tar, tar.gz) or extracted folder")
    s.add_argument("--out", required=True)
    s.add_argument("--image-size", type=int, default=64)
    s.add_argument("--workers", type=int, default=0, help="processes (0 = all cores)")
    s.add_argument("--split", default=None, help="split file (default: the published one shipped with sagan)")
    s.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)

    s = sub.add_parser(
        "splits", help="Table 1 counts, label check and anomaly-ratio variants of a prepared dataset"
    )
    s.add_argument("data")
    s.add_argument("--out", required=True, help="JSON summary to write")
    s.add_argument("--ratios", default="0,0.2,0.4,0.6,0.8,1.0")
    s.add_argument("--on-small-pool", default="error", choices=["error", "shrink"])

    # --- training and evaluation -----------------------------------------------------------
    for name, text in (
        ("train", "train (or resume) one run"),
        ("run", "train (or resume) runs, then evaluate them, in one process (the workflow's job)"),
    ):
        s = sub.add_parser(name, help=text)
        if name == "train":
            s.add_argument("--data", required=True, help="prepared dataset folder")
        else:
            s.add_argument(
                "--data", required=True, nargs="+", metavar="DATA",
                help="prepared dataset folder(s); several run one after the other",
            )  # fmt: skip
        s.add_argument("--method", required=True)
        if name == "train":
            s.add_argument(
                "--seed", type=int, default=None, help="run seed (default: the --config file's, else 0)"
            )
            s.add_argument("--out", required=True, help="run folder")
        else:
            s.add_argument(
                "--seed", type=int, nargs="+", default=None, metavar="SEED",
                help="run seed(s) (default: the --config file's, else 0); several run one after the other",
            )  # fmt: skip
            s.add_argument(
                "--out", required=True,
                help="run folder; with several seeds it contains {seed}, with several datasets {dataset}",
            )  # fmt: skip
        s.add_argument("--config", default=None, help="YAML file with model/data/train/eval sections")
        s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
        s.add_argument(
            "--preset", default="paper", help="paper (full size and budget) | demo (small, CPU) | ci | bench"
        )
        if name == "run":
            s.add_argument("--maps", type=count, default=8, help=MAPS_HELP)

    s = sub.add_parser("evaluate", help="score the test set of a trained run")
    s.add_argument("run")
    s.add_argument("--maps", type=count, default=8, help=MAPS_HELP)

    sub.add_parser("methods", help="list the registered methods")

    # --- results -----------------------------------------------------------------------------
    s = sub.add_parser("tables", help="render Tables 1-4 and table_loc (csv, md, tex) from run metrics")
    s.add_argument("--results", required=True, help="experiment folder (results/<name>)")
    s.add_argument("--out", required=True, help="tables folder")

    s = sub.add_parser(
        "check-tables", help="regenerate tables from stored metrics; fail if committed ones differ"
    )
    s.add_argument("--results", required=True)
    s.add_argument("--tables", required=True, help="folder holding the committed tables")

    s = sub.add_parser("compare-paper", help="compare a results table with the paper's values")
    s.add_argument("table", help="table2.csv or table3.csv")
    s.add_argument(
        "--tolerance", type=float, required=True, help="allowed |ours - paper| in percentage points"
    )

    s = sub.add_parser("figures", help="heatmaps, ROC/PR, AR curves and training curves")
    s.add_argument("--results", required=True)
    s.add_argument("--out", required=True)

    s = sub.add_parser("fingerprint", help="write the code fingerprint of each workflow stage (for DVC)")
    s.add_argument("--out", required=True, help="folder that receives one file per stage")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    module, func = HANDLERS[args.command].split(":")
    try:
        rc = getattr(importlib.import_module(module), func)(args)
    except SaganError as err:
        if args.debug:
            raise
        print(f"sagan {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk where no writer named the file (np.save into a temporary folder)
        if args.debug or err.errno not in DISK_FULL:
            raise
        print(
            f"sagan {args.command}: error: {storage_error(err.filename or 'its output', err)}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"sagan {args.command}: interrupted; run the same command again to go on", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
