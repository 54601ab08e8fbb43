# Shared definitions: the run matrix derived from the config, paths, and target functions.
#
# One run = (dataset, method, anomaly ratio, variant, seed) and lives in
#   results/<name>/runs/<dataset>/<method>/ar<AR>/<variant>/seed<S>/
# The matrix is the union of what the tables need, so a run shared by several tables (SAGAN at
# AR 0.6 with default options: Tables 2, 3 and 4) is trained once.

import hashlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import sagan
from sagan.methods import method_names
from sagan.report.runs import MAIN_AR, ar_tag  # one definition for paths, tables and figures

RESULTS = f"results/{config['name']}"
RUN = f"{RESULTS}/runs/{{dataset}}/{{method}}/ar{{ar}}/{{variant}}/seed{{seed}}"
RUN_LOG = "{dataset}/{method}/ar{ar}/{variant}/seed{seed}"

# Table 3 variants of SAGAN (model options); "default" = the full model.
VARIANTS = {
    "default": {},
    "acm0-arrm0": {"model.use_acm": False, "model.use_arrm": False},  # the baseline structure
    "acm1-arrm0": {"model.use_arrm": False},  # + ACM
    "acm0-arrm1": {"model.use_acm": False},  # + ARRM
}

DATASETS = list(config["datasets"])
SYNTHETIC = [d for d in DATASETS if d.startswith("synth-")]
REAL = [d for d in DATASETS if d not in SYNTHETIC]
REGISTERED = method_names()
METHODS = REGISTERED if config["methods"] == "all" else list(config["methods"])
SEEDS = list(config["seeds"])
TABLE3 = config.get("table3")
TABLE4 = config.get("table4")


def config_error(message):
    raise WorkflowError(f"config: {message}")


for _m in METHODS:
    if _m not in REGISTERED:
        config_error(f"unknown method {_m!r} in 'methods'; registered: {', '.join(REGISTERED)}")
for _key, _table in (("table3", TABLE3), ("table4", TABLE4)):
    if _table and _table["dataset"] not in DATASETS:
        config_error(f"{_key}.dataset {_table['dataset']!r} is not in 'datasets' ({', '.join(DATASETS)})")
for _m in config["overrides"]:
    if _m != "all" and _m not in REGISTERED:
        config_error(f"overrides.{_m}: no such method; use 'all' or one of {', '.join(REGISTERED)}")


def run_matrix():
    """Every (dataset, method, ar, variant, seed) the configured tables need, each once."""
    keys = []
    for seed in SEEDS:
        for dataset in DATASETS:
            keys += [(dataset, method, ar_tag(MAIN_AR), "default", seed) for method in METHODS]
        if TABLE3:
            keys.append((TABLE3["dataset"], "brainomaly", ar_tag(MAIN_AR), "default", seed))
            keys += [(TABLE3["dataset"], "sagan", ar_tag(MAIN_AR), v, seed) for v in VARIANTS]
        if TABLE4:
            keys += [(TABLE4["dataset"], "sagan", ar_tag(r), "default", seed) for r in TABLE4["ratios"]]
    return list(dict.fromkeys(keys))


MATRIX = run_matrix()
for _m in {key[1] for key in MATRIX} - set(REGISTERED):
    config_error(f"the tables need method {_m!r}, which is not registered ({', '.join(REGISTERED)})")


def ratios_of(dataset):
    """Anomaly ratios trained on a dataset (checked by `sagan splits` before any training)."""
    return sorted({float(k[2]) for k in MATRIX if k[0] == dataset and k[2] != "0_u"})


def run_dir(dataset, method, ar, variant, seed):
    return RUN.format(dataset=dataset, method=method, ar=ar, variant=variant, seed=seed)


def run_files(name):
    return [f"{run_dir(*key)}/{name}" for key in MATRIX]


def train_sets(wildcards):
    """`--set` arguments of one training job: config overrides, anomaly ratio, variant options."""
    sets = dict(config["overrides"].get("all", {}))
    sets.update(config["overrides"].get(wildcards.method, {}))
    sets["data.anomaly_ratio"] = wildcards.ar
    sets.update(VARIANTS[wildcards.variant])
    text = {k: json.dumps(v) if isinstance(v, bool) else str(v) for k, v in sets.items()}
    return " ".join(f"--set {shlex.quote(f'{k}={v}')}" for k, v in text.items())


def synth_option(wildcards, key, default):
    return config["datasets"][wildcards.dataset].get(key, default)


def source_args(wildcards):
    entry = config["datasets"][wildcards.dataset]
    args = f"--source {shlex.quote(entry['source'])}"
    if entry.get("sha256"):
        args += f" --sha256 {entry['sha256']}"
    return args


# --- code fingerprints ------------------------------------------------------------------------
# Each job carries a hash of the package code it runs as a param, so Snakemake's params trigger
# reruns exactly the jobs whose code changed (and `dvc repro` -> snakemake reruns only those).
# A method's runs do not depend on the other methods' modules, nor on the registry listing them.
PACKAGE = Path(sagan.__file__).parent


def code_hash(include, exclude=()):
    digest = hashlib.sha256()
    files = sorted({p for pattern in include for p in PACKAGE.glob(pattern) if p.is_file()})
    for path in files:
        rel = path.relative_to(PACKAGE).as_posix()
        if "__pycache__" in rel or any(path.match(x) or rel == x for x in exclude):
            continue
        for part in (rel.encode(), path.read_bytes()):
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)
    return digest.hexdigest()[:16]


def _training_code(method, extra=()):
    others = [m for m in REGISTERED if m != method]
    exclude = ["cli.py", "evaluate.py", "methods/__init__.py"]
    exclude += [f"methods/{m}.py" for m in others] + [f"methods/{m}/*" for m in others]
    data_only = ["download.py", "ingest.py", "archives.py", "decoding.py", "layouts.py", "synthetic/*"]
    exclude += [f"data/{n}" for n in data_only] + ["report/*", "reference/*"]
    return code_hash(["**/*.py", "splits/*.json", *extra], exclude)


INGEST_CODE = [
    "data/ingest.py",
    "data/archives.py",
    "data/decoding.py",
    "data/layouts.py",
    "data/prepared.py",
    "data/splits.py",
]
CODE = {
    # synthetic sets go through the real Med-AD ingest
    "synth": code_hash(["data/synthetic/*.py", *INGEST_CODE]),
    "prepare": code_hash([*INGEST_CODE, "splits/*"]),
    "splits": code_hash(["data/prepared.py", "data/splits.py", "splits/*"]),
    "train": {m: _training_code(m) for m in REGISTERED},
    "evaluate": {m: code_hash(["evaluate.py"]) + _training_code(m) for m in REGISTERED},
    "tables": code_hash(["config.py", "stats.py", "report/runs.py", "report/markup.py", "report/uncertainty.py",
                         "report/tables.py", "reference/*.yaml"]),
    "figures": code_hash(["config.py", "report/runs.py", "report/figures.py"]),
}


# --- outputs of the table and figure rules ---------------------------------------------------
TABLES = [f"{RESULTS}/tables/table{i}.{ext}" for i in (1, 2, 3, 4) for ext in ("csv", "md", "tex")]
FIGURES = {
    "heatmaps": [f"{RESULTS}/figures/heatmaps_{d}.{e}" for d in DATASETS for e in ("png", "pdf")],
    "roc_pr": [f"{RESULTS}/figures/roc_pr_{d}.{e}" for d in DATASETS for e in ("png", "pdf")],
    "training": [f"{RESULTS}/figures/training_{d}.png" for d in DATASETS],
    "anomaly_ratio": [f"{RESULTS}/figures/anomaly_ratio.{e}" for e in ("png", "pdf")] if TABLE4 else [],
}


def all_targets():
    return TABLES + [f"{RESULTS}/metrics.json"] + [f for group in FIGURES.values() for f in group]


# --- sources: fail first, with one message, when real data cannot be fetched ----------------
def check_sources():
    """Run `sagan check-sources` for real datasets not prepared yet (main process only)."""
    linting = "--lint" in sys.argv  # linting builds no jobs and must not need credentials
    missing = [d for d in REAL if not Path(f"data/prepared/{d}/meta.json").is_file()]
    if not missing or linting or not workflow.is_main_process:
        return
    pairs = []
    for d in missing:
        entry = config["datasets"][d]
        pin = f"#sha256={entry['sha256']}" if entry.get("sha256") else ""
        pairs.append(f"--dataset={d}={entry['source']}{pin}")
    done = subprocess.run(["sagan", "check-sources", *pairs], capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr.strip() or done.stdout.strip()).removeprefix("sagan check-sources: error: ")
        print(f"Cannot start experiment '{config['name']}': {reason}", file=sys.stderr)
        sys.exit(1)


check_sources()


wildcard_constraints:
    dataset="|".join(re.escape(d) for d in DATASETS),
    method="|".join(REGISTERED),
    ar=r"0_u|[0-9.]+",
    variant="|".join(VARIANTS),
    seed=r"[0-9]+",
