# Shared definitions: the run matrix derived from the config, paths, code fingerprints, report
# entries, target functions and the source check.
#
# One run = (dataset, method, anomaly ratio, variant, seed) and lives in
#   results/<name>/runs/<dataset>/<method>/ar<AR>/<variant>/seed<S>/
# The matrix is the union of what the tables need, so a run shared by several tables (SAGAN at
# AR 0.6 with default options: Tables 2, 3 and 4) is trained once.

import json
import re
import shlex
import sys
from functools import cache
from pathlib import Path

from sagan.data.download import DEMO_HINT, check_sources
from sagan.errors import SaganError
from sagan.experiments import MAIN_AR, VARIANTS, ar_tag  # one definition for workflow, tables, tests
from sagan.fingerprint import stage_hash
from sagan.methods import get_method, method_names
from sagan.runtime import resolve_config

RESULTS = f"results/{config['name']}"
ROW = f"{RESULTS}/runs/{{dataset}}/{{method}}/ar{{ar}}/{{variant}}"  # a table row's runs, one per seed
RUN = f"{ROW}/seed{{seed}}"
ROW_LOG = "{dataset}/{method}/ar{ar}/{variant}"
RUN_LOG = f"{ROW_LOG}/seed{{seed}}"
JOBS = config["resources"]  # threads and resources of the heavy jobs (run, prepare)

DATASETS = list(config["datasets"])
SYNTHETIC = [d for d in DATASETS if d.startswith("synth-")]
REAL = [d for d in DATASETS if d not in SYNTHETIC]
REGISTERED = method_names()
METHODS = REGISTERED if config["methods"] == "all" else list(config["methods"])
SEEDS = list(config["seeds"])
# one job per run (the default: runs in parallel, e.g. on a cluster), or one job per row that trains
# and evaluates its seeds one after the other in one process (saves two Python + torch starts a row)
SEEDS_IN_ONE_JOB = config.get("seeds_in_one_job", False)
# and with it, one job per method for its Table 2 rows: every dataset's row in one process (saves two
# more starts a method); Tables 3 and 4's other rows stay row jobs
DATASETS_IN_ONE_JOB = config.get("datasets_in_one_job", False)
TABLE3 = config.get("table3")
TABLE4 = config.get("table4")


def config_error(message):
    raise WorkflowError(f"config: {message}")


for _m in METHODS:
    if _m not in REGISTERED:
        config_error(f"unknown method {_m!r} in 'methods'; registered: {', '.join(REGISTERED)}")
if DATASETS_IN_ONE_JOB and not SEEDS_IN_ONE_JOB:
    config_error("datasets_in_one_job: true needs seeds_in_one_job: true (a method job runs every seed)")
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


def train_options(method, ar, variant):
    """`sagan train --set` options of one job: config overrides, anomaly ratio, variant options."""
    sets = dict(config["overrides"].get("all", {}))
    sets.update(config["overrides"].get(method, {}))
    sets["data.anomaly_ratio"] = ar
    sets.update(VARIANTS[variant])
    return sets


# Each job's options are resolved now by the code `sagan run` runs, so that an unknown key or a
# bad value under `overrides:` stops the dry run, named, instead of failing in every job.
_val_every = set()
for _method, _ar, _variant in sorted({key[1:4] for key in MATRIX}):
    try:
        _cfg = resolve_config(_method, 0, config["preset"], None, train_options(_method, _ar, _variant))
    except SaganError as err:
        config_error(f"overrides (method {_method}): {err}")
    _val_every.add(_cfg.eval.val_every > 0)

# Learning curves on the validation split (`eval.val_every`, set under `overrides:`): every run has a
# val_log.csv and each dataset a validation figure, or none; only the synthetic sets have the split.
VALIDATION = _val_every == {True}
if len(_val_every) > 1:
    config_error("eval.val_every is on for some runs only; set it under overrides.all (or nowhere)")
if VALIDATION and REAL:
    config_error(
        f"eval.val_every needs a labelled validation split, which {', '.join(REAL)} lack(s) (only the "
        "synthetic sets have one); remove eval.val_every from overrides"
    )


def set_args(method, ar, variant):
    """`--set` arguments of a job's runs."""
    sets = train_options(method, ar, variant)
    text = {k: json.dumps(v) if isinstance(v, bool) else str(v) for k, v in sets.items()}
    return " ".join(f"--set {shlex.quote(f'{k}={v}')}" for k, v in text.items())


def train_sets(wildcards):
    return set_args(wildcards.method, wildcards.ar, wildcards.variant)


def method_job_dirs(wildcards):
    """The run folders of a method job, with `{dataset}` and `{seed}` left for `sagan run`."""
    return RUN.format(dataset="{dataset}", method=wildcards.method, ar=ar_tag(MAIN_AR), variant="default", seed="{seed}")


def method_job_sets(wildcards):
    """`--set` options of a method job: those of its Table 2 rows (the same on every dataset)."""
    return set_args(wildcards.method, ar_tag(MAIN_AR), "default")


def job_budget(wildcards):
    """A run job's priority: its runs' budget in iterations, so that the longest jobs start first and
    none is left to run alone at the end (two cores, a few dozen jobs of unequal length)."""
    ar, variant = getattr(wildcards, "ar", ar_tag(MAIN_AR)), getattr(wildcards, "variant", "default")
    return budget(wildcards.method, ar, variant)


@cache
def budget(method, ar, variant):
    options = train_options(method, ar, variant)
    return resolve_config(method, 0, config["preset"], None, options).train.iterations


def ratios_of(dataset):
    """Anomaly ratios trained on a dataset (checked by `sagan splits` before any training)."""
    return sorted({float(k[2]) for k in MATRIX if k[0] == dataset and k[2] != "0_u"})


def run_dir(wildcards):
    """The run folder of a run job; of a row job (no seed wildcard), its runs' folders with `{seed}`
    left for `sagan run` to fill in."""
    return RUN.format(**{"seed": "{seed}", **dict(wildcards.items())})


def job_runtime(wildcards, attempt):
    """Minutes of a run job; a row job runs every seed, a method job every dataset's row."""
    runs = len(SEEDS) if SEEDS_IN_ONE_JOB else 1
    return JOBS["run"].get("runtime", 60) * runs * (len(DATASETS) if "dataset" not in wildcards.keys() else 1)


def run_files(name):
    return [f"{RUN.format(dataset=d, method=m, ar=a, variant=v, seed=s)}/{name}" for d, m, a, v, s in MATRIX]


def synth_option(wildcards, key, default):
    return config["datasets"][wildcards.dataset].get(key, default)


def source_args(wildcards):
    entry = config["datasets"][wildcards.dataset]
    args = f"--source {shlex.quote(entry['source'])}"
    if entry.get("sha256"):
        args += f" --sha256 {entry['sha256']}"
    return args


def job_resources(job):
    """Resources of a heavy job from the config (`threads` is its own directive)."""
    out = {k: v for k, v in JOBS[job].items() if k != "threads"}
    return {**out, "runtime": job_runtime} if job == "run" and "runtime" in out else out


# Each job carries the fingerprint of the code it runs (sagan/fingerprint.py) as a param, so that
# Snakemake reruns exactly the jobs whose code changed; a method's jobs do not depend on the other
# methods' modules. The train jobs' fingerprint is also the one their checkpoints carry.
@cache
def code(stage, method=None):
    return stage_hash(stage, [get_method(method).__module__] if method else [])


# --- outputs of the table and figure rules, and their report entries -------------------------
TABLES = [f"{RESULTS}/tables/{t}.{ext}" for t in ("table1", "table2", "table3", "table4", "table_loc") for ext in ("csv", "md", "tex")]
FIGURES = {
    "heatmaps": [f"{RESULTS}/figures/heatmaps_{d}.{e}" for d in DATASETS for e in ("png", "pdf")],
    "roc_pr": [f"{RESULTS}/figures/roc_pr_{d}.{e}" for d in DATASETS for e in ("png", "pdf")],
    "training": [f"{RESULTS}/figures/training_{d}.png" for d in DATASETS],
    "localization": [f"{RESULTS}/figures/localization_{d}.{e}" for d in DATASETS for e in ("png", "pdf")],
    "validation": [f"{RESULTS}/figures/validation_{d}.png" for d in DATASETS] if VALIDATION else [],
    "anomaly_ratio": [f"{RESULTS}/figures/anomaly_ratio.{e}" for e in ("png", "pdf")] if TABLE4 else [],
}
FIGURE_TITLES = {
    "heatmaps": "Heatmaps",
    "roc_pr": "ROC and PR curves",
    "training": "Training curves",
    "localization": "Localization",
    "validation": "Validation curves",
    "anomaly_ratio": "Anomaly ratio",
}


def report_entry(path, caption, category, subcategory=None):
    """A report entry for a table (CSV) or figure (PNG), captioned by workflow/report/<caption>.rst;
    other files (Markdown, LaTeX, PDF) are plain outputs."""
    if not path.endswith((".csv", ".png")):
        return path
    return report(path, caption=f"../report/{caption}.rst", category=category, subcategory=subcategory)


def table_outputs():
    return [report_entry(p, Path(p).stem, "Tables") for p in TABLES]


def figure_outputs():
    return [report_entry(f, kind, "Figures", FIGURE_TITLES[kind]) for kind, files in FIGURES.items() for f in files]


def all_targets():
    return TABLES + [f"{RESULTS}/metrics.json"] + [f for group in FIGURES.values() for f in group]


# --- sources: fail first, with one message, when real data cannot be fetched ----------------
def check_sources_or_stop():
    """Before any job runs: the sources of the real datasets not prepared yet must be usable."""
    specs = []
    for d in REAL:
        if not Path(f"data/prepared/{d}/meta.json").is_file():
            entry = config["datasets"][d]
            pin = f"#sha256={entry['sha256']}" if entry.get("sha256") else ""
            specs.append(f"{d}={entry['source']}{pin}")
    problems = check_sources(specs) if specs else []
    if problems:
        print(f"Cannot start experiment '{config['name']}': dataset sources not usable:", file=sys.stderr)
        print("  - " + "\n  - ".join(problems) + f"\nFix the above, or {DEMO_HINT}", file=sys.stderr)
        sys.exit(1)


wildcard_constraints:
    dataset="|".join(re.escape(d) for d in DATASETS),
    method="|".join(REGISTERED),
    ar=r"0_u|[0-9.]+",
    variant="|".join(VARIANTS),
    seed=r"[0-9]+",
