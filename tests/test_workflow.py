"""The Snakemake workflow and its DVC stages, run for real: lint, dry-run job counts of the demo and
paper configs, schema errors, the missing-sources message, and one end-to-end run of a reduced demo
through `dvc repro` (which calls the Snakemake targets), including a code change that reruns only
the figures and an added anomaly ratio that plans only its own run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sagan.config import PRESETS
from sagan.methods import method_names
from sagan.runtime import resolve_config

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"


def offline_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env.update(DVC_NO_ANALYTICS="1", **extra)
    return env


def snakemake(
    workdir: Path, *args: str, env: dict | None = None, snakefile: Path = SNAKEFILE, timeout: int = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["snakemake", "-s", str(snakefile), "-d", str(workdir), *args],
        cwd=workdir, env=env or offline_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run."""
    block = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def write_config(path: Path, base: Path, **changes) -> Path:
    config = yaml.safe_load(base.read_text())
    config.update(changes)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def expected_runs(n_methods: int, n_datasets: int = 3, n_seeds: int = 3, n_ratios: int = 7) -> int:
    # Table 2: every method on every dataset; Table 3 adds three SAGAN variants (Brainomaly and the
    # full SAGAN are Table 2's runs); Table 4 adds every ratio but the shared 0.6.
    return n_seeds * (n_methods * n_datasets + 3 + (n_ratios - 1))


def test_lint_is_clean():
    done = subprocess.run(
        ["snakemake", "--lint"], cwd=REPO, capture_output=True, text=True, env=offline_env()
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Lints for" not in done.stdout + done.stderr
    quiet = subprocess.run(
        ["snakemake", "--lint", "--quiet", "all"], cwd=REPO, capture_output=True, text=True, env=offline_env()
    )
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")


@pytest.mark.parametrize("name", ["demo", "ci", "bench"])
def test_synthetic_dry_run_job_counts(tmp_path, name):
    # the demo, CI's pipeline check and the benchmark run the same matrix at other budgets: one job per
    # method for its Table 2 rows (every dataset, 3 seeds, one process) and one job per other table row
    shown = snakemake(tmp_path, "-n", "-p", "--configfile", str(REPO / f"config/{name}.yaml"))
    assert shown.returncode == 0, shown.stderr
    # the demo trains Tables 1-2 only (config/demo.yaml says why); CI and the benchmark every table
    runs = expected_runs(len(method_names())) if name != "demo" else 3 * 3 * len(method_names())
    methods = len(method_names())
    rows = runs // 3 - 3 * methods  # the rows of Tables 3 and 4 that are not Table 2's
    expected = {"synth": 3, "splits": 3, "run_method": methods, "tables": 1, "figures": 1, "all": 1}
    expected |= {"run": rows} if rows else {}
    assert job_counts(shown.stdout) == {**expected, "total": 9 + methods + rows}
    commands = [line for line in shown.stdout.splitlines() if "sagan run " in line]
    assert len(commands) == methods + rows and all(
        "--seed 0 1 2 --out " in c and "/seed{seed}'" in c for c in commands
    )
    data = " ".join(f"data/prepared/{d}" for d in ("synth-rsna", "synth-vindr", "synth-lag"))
    method_jobs = [c for c in commands if f"--data {data} " in c]
    assert len(method_jobs) == methods and all("/runs/{dataset}/" in c for c in method_jobs)
    # the longest jobs first: a method job's priority is its runs' budget in iterations
    priority = dict(re.findall(r"wildcards: method=([\w-]+)\n\s+priority: (\d+)", shown.stdout))
    budgets = {m: resolve_config(m, 0, name, None, {}).train.iterations for m in method_names()}
    assert {m: int(p) for m, p in priority.items()} == budgets
    # every run logs its validation curve, and the figures include the validation curves
    assert f"--preset {name}" in shown.stdout and "--set eval.val_every=" in shown.stdout
    assert shown.stdout.count("val_log.csv") >= runs and "validation_synth-lag.png" in shown.stdout


def test_ci_script_runs_the_ci_configuration():
    # .ci/run's pipeline check is config/ci.yaml (dry-run above): every registered method, 3 seeds,
    # Tables 3 and 4, and the script's later steps read the results folder that config names
    script = (REPO / ".ci/run").read_text()
    assert "snakemake --cores 2 --configfile config/ci.yaml" in script
    config = yaml.safe_load((REPO / "config/ci.yaml").read_text())
    assert (config["preset"], config["methods"], len(config["seeds"])) == ("ci", "all", 3)
    assert config["table3"] and config["table4"]
    named = set(re.findall(r"results/(\w+)", script)) | set(re.findall(r"report@(\w+)", script))
    assert named == {config["name"]}


def test_synthetic_configs_share_their_datasets_and_presets_match_the_package():
    # one prepared copy of each synthetic set serves the demo, CI and the benchmark (data/prepared/,
    # DVC's data@synth-* stages read config/demo.yaml): their settings must be the same
    configs = {n: yaml.safe_load((REPO / f"config/{n}.yaml").read_text()) for n in ("demo", "ci", "bench")}
    assert len({yaml.safe_dump({k: c[k] for k in ("datasets", "image_size")}) for c in configs.values()}) == 1
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert schema["properties"]["preset"]["enum"] == list(PRESETS)
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for stage in ("runs", "tables", "figures", "report"):
        assert {"demo", "ci", "bench", "paper"} <= set(stages[stage]["foreach"]), stage


def test_paper_dry_run_job_counts_with_local_sources(tmp_path):
    datasets = {}
    for name in ("rsna", "vindr", "lag"):
        (tmp_path / "sources" / name).mkdir(parents=True)
        datasets[name] = {"source": str(tmp_path / "sources" / name)}
    config = write_config(tmp_path / "paper.yaml", REPO / "config/config.yaml", datasets=datasets)
    done = snakemake(tmp_path, "-n", "--configfile", str(config))
    assert done.returncode == 0, done.stderr
    runs = expected_runs(len(method_names()))
    assert job_counts(done.stdout) == {
        "download": 3, "prepare": 3, "splits": 3, "run": runs, "tables": 1, "figures": 1, "all": 1,
        "total": 12 + runs,
    }  # fmt: skip
    # one training job's command: paper preset, the variant's options, one call of the CLI
    target = "results/paper/runs/vindr/sagan/ar0.6/acm1-arrm0/seed2/config.yaml"
    shown = snakemake(tmp_path, target, "-n", "-p", "--cores", "8", "--configfile", str(config)).stdout
    command = next(line for line in shown.splitlines() if "sagan run" in line)
    assert "val_log.csv" not in shown  # the real datasets have no validation split
    assert "--method sagan --seed 2" in command and "--preset paper" in command
    assert "--set data.anomaly_ratio=0.6 --set model.use_acm=true --set model.use_arrm=false" in command
    assert (
        "--set train.threads=4" in command
        and "--out results/paper/runs/vindr/sagan/ar0.6/acm1-arrm0/seed2" in command
    )


def test_paper_without_credentials_stops_before_any_job(tmp_path):
    env = offline_env(KAGGLE_CONFIG_DIR=str(tmp_path / "no-kaggle"))
    done = snakemake(tmp_path, "--cores", "1", "--configfile", str(REPO / "config/config.yaml"), env=env)
    assert done.returncode != 0
    text = done.stderr + done.stdout
    assert "Cannot start experiment 'paper'" in text
    assert "Kaggle credentials" in text and "config/demo.yaml" in text
    assert "Traceback" not in text and "rule download:" not in text  # no job started
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"epochs": 5}, "epochs"),
        ({"preset": "fast"}, "fast"),
        ({"datasets": {"chexpert": {"source": "kaggle"}}}, "chexpert"),
        ({"seeds": [0, -1]}, "-1"),
        ({"overrides": {"all": {"iterations": 5}}}, "iterations"),
    ],
)
def test_schema_rejects_unknown_keys_and_bad_values(tmp_path, change, named):
    config = write_config(tmp_path / "bad.yaml", REPO / "config/demo.yaml", **change)
    done = snakemake(tmp_path, "-n", "--configfile", str(config))
    out = done.stdout + done.stderr
    assert done.returncode != 0
    first = out[: out.index("Failed validating")] if "Failed validating" in out else out
    assert "Error validating config file" in first and named in first


def test_validation_curves_on_real_data_fail_the_dry_run(tmp_path):
    datasets = {"rsna": {"source": str(tmp_path)}}
    config = write_config(tmp_path / "bad.yaml", REPO / "config/config.yaml", datasets=datasets, table3=None,
                          table4=None, overrides={"all": {"eval.val_every": 100}})  # fmt: skip
    done = snakemake(tmp_path, "-n", "--configfile", str(config))
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "eval.val_every needs a labelled validation split, which rsna lack" in out


def test_config_errors_beyond_the_schema(tmp_path):
    config = write_config(tmp_path / "bad.yaml", REPO / "config/demo.yaml", methods=["sagan", "nosuch"])
    done = snakemake(tmp_path, "-n", "--configfile", str(config))
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "unknown method 'nosuch'" in out and "registered" in out
    config = write_config(tmp_path / "bad.yaml", REPO / "config/demo.yaml", table3={"dataset": "synth-lag"},
                          datasets={"synth-rsna": {}})  # fmt: skip
    done = snakemake(tmp_path, "-n", "--configfile", str(config))
    assert (
        done.returncode != 0
        and "table3.dataset 'synth-lag' is not in 'datasets'" in done.stdout + done.stderr
    )


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"all": {"train.iterationz": 5}}, "unknown config key 'train.iterationz'"),
        ({"ae": {"model.lr_g": 1e-4}}, "overrides (method ae): unknown config key 'model.lr_g'"),
        ({"sagan": {"model.network": "fancy"}}, "model.network: 'fancy' is not allowed"),
        (
            {"sagan": {"eval.val_every": 5}},
            "eval.val_every is on for some runs only; set it under overrides.all",
        ),
        ({"all": {"eval.val_every": -1}}, "eval.val_every must be >= 0"),
    ],
)
def test_bad_training_overrides_fail_the_dry_run(tmp_path, overrides, named):
    # checked at parse time by the code `sagan run` uses, not in every run job
    config = write_config(tmp_path / "bad.yaml", REPO / "config/demo.yaml", overrides=overrides)
    done = snakemake(tmp_path, "-n", "--configfile", str(config))
    assert done.returncode != 0 and named in done.stdout + done.stderr


TINY = {
    "name": "demo",
    "preset": "demo",
    "image_size": 64,  # every key dvc.yaml reads as a param must be present
    "datasets": {"synth-rsna": {"seed": 0}, "synth-vindr": {"seed": 0}, "synth-lag": {"seed": 0}},
    "methods": ["sagan"],
    "seeds": [0],
    "seeds_in_one_job": True,  # as config/demo.yaml: a row job (`sagan run --seed 0 --out .../seed{seed}`)
    "datasets_in_one_job": True,  # and SAGAN's Table 2 rows in one method job (`sagan run --data A B C`)
    "table3": {"dataset": "synth-vindr"},
    "table4": {"dataset": "synth-rsna", "ratios": ["0_u", 0.6]},
    "overrides": {
        "all": {
            "train.iterations": 10,
            "train.log_every": 5,
            "train.checkpoint_every": 10,
            "eval.val_every": 5,
        }
    },
    "maps": 8,
    "resources": {"run": {"threads": 1, "gpu": 1}},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the repository whose config/demo.yaml is a reduced demo (1 seed, 10 iterations);
    its own sagan/ is imported (PYTHONPATH), so edits to it are real code changes."""
    root = tmp_path_factory.mktemp("project")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("Snakefile", "dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    for name in ("workflow", "config", "sagan"):
        shutil.copytree(REPO / name, root / name, ignore=ignore)
    (root / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc/config", root / ".dvc/config")
    (root / "config/demo.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    env = offline_env(PYTHONPATH=str(root))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["dvc", "config", "--local", "core.site_cache_dir", str(root / ".dvc-site")], cwd=root, env=env, check=True)  # fmt: skip
    return root, env


def dvc(project, *args, timeout=900) -> subprocess.CompletedProcess:
    root, env = project
    return subprocess.run(["dvc", *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_end_to_end_demo_through_dvc_and_snakemake(project):
    root, env = project
    done = dvc(project, "repro", "report@demo")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = root / "results/demo"

    t2 = pd.read_csv(results / "tables/table2.csv", keep_default_na=False)
    assert sorted(zip(t2["method"], t2["dataset"])) == [
        ("brainomaly", "synth-vindr"), ("sagan", "synth-lag"), ("sagan", "synth-rsna"), ("sagan", "synth-vindr"),
    ]  # fmt: skip
    assert set(t2["n_seeds"]) == {1} and set(t2["selection"]) == {"last"}
    t3 = pd.read_csv(results / "tables/table3.csv", keep_default_na=False)
    assert len(t3) == 5 and set(t3.loc[t3["variant"].str.contains("ACM"), "network"]) == {"paper"}
    t4 = pd.read_csv(results / "tables/table4.csv", keep_default_na=False, dtype=str)
    assert list(t4["ar"]) == ["0_u", "0.6"]
    assert (results / "metrics.json").is_file() and (results / "report.html").stat().st_size > 100_000
    loc = pd.read_csv(results / "tables/table_loc.csv")  # every synthetic set has exact masks
    assert sorted(zip(loc["method"], loc["dataset"])) == sorted(zip(t2["method"], t2["dataset"]))
    assert set(loc["ground_truth"]) == {"masks"} and loc["aupro_mean"].between(0, 100).all()
    for d in ("synth-rsna", "synth-vindr", "synth-lag"):
        assert (results / f"figures/heatmaps_{d}.pdf").is_file()
        assert (results / f"figures/localization_{d}.pdf").is_file()
        assert (results / f"figures/validation_{d}.png").is_file()
    # every run has its validation curve (eval.val_every = 5 of 10 iterations)
    val_logs = sorted((results / "runs").glob("**/val_log.csv"))
    # 8 runs: SAGAN on 3 sets (Table 2), Brainomaly and 3 SAGAN variants (Table 3), SAGAN at 0_u (Table 4)
    assert len(val_logs) == len(list((results / "runs").glob("**/metrics.json"))) == 8
    assert all(pd.read_csv(p)["iteration"].tolist() == [5, 10] for p in val_logs)
    assert (results / "figures/anomaly_ratio.png").is_file()
    # one method job (SAGAN's three Table 2 rows) and a row job for each other row of Tables 3 and 4
    assert sorted(p.relative_to(results / "logs/run").as_posix() for p in (results / "logs/run").rglob("*.log")) == [
        "sagan.log", "synth-rsna/sagan/ar0_u/default.log", "synth-vindr/brainomaly/ar0.6/default.log",
        "synth-vindr/sagan/ar0.6/acm0-arrm0.log", "synth-vindr/sagan/ar0.6/acm0-arrm1.log",
        "synth-vindr/sagan/ar0.6/acm1-arrm0.log",
    ]  # fmt: skip

    # everything is up to date for DVC and for Snakemake; committed tables match the runs
    assert "up to date" in dvc(project, "status", "report@demo").stdout
    # (Snakemake puts the Snakefile's folder first on sys.path: the copy's own sagan/ is used)
    dry = snakemake(root, "-n", "--configfile", "config/demo.yaml", env=env, snakefile=root / "Snakefile")
    assert "Nothing to be done" in dry.stdout, dry.stdout[-2000:]
    check = subprocess.run(
        ["sagan", "check-tables", "--results", str(results), "--tables", str(results / "tables")],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout
    assert "synth-rsna" in dvc(project, "metrics", "show").stdout
    # data and results are versioned: push them to a local-directory remote (no network)
    assert dvc(project, "remote", "add", "-d", "local", str(root.parent / "dvc-remote")).returncode == 0
    pushed = dvc(project, "push")
    assert pushed.returncode == 0 and any((root.parent / "dvc-remote").rglob("*")), (
        pushed.stdout + pushed.stderr
    )

    # a change to the figure code reruns the figures stage and job only, not training or tables; the
    # figures come out byte-identical, so DVC sees no reason to rebuild the report
    run_metrics = results / "runs/synth-rsna/sagan/ar0.6/default/seed0/metrics.json"
    before = {p: p.stat().st_mtime_ns for p in (run_metrics, results / "tables/table2.csv", results / "figures/roc_pr_synth-rsna.png")}  # fmt: skip
    figures_py = root / "sagan/report/figures.py"
    figures_py.write_text(figures_py.read_text() + "\n# a code change\n")
    again = dvc(project, "repro", "report@demo")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    # (the fingerprints stage reruns on any change to the package: it only writes the stage fingerprints)
    stages = re.findall(r"Running stage '([^']+)'", again.stdout)
    assert stages == ["fingerprints", "figures@demo"], again.stdout[-3000:]
    after = {p: p.stat().st_mtime_ns for p in before}
    assert [after[p] == before[p] for p in before] == [
        True,
        True,
        False,
    ]  # figures rewritten, runs and tables not

    # adding an anomaly ratio to Table 4 rewrites the dataset's split file (its ratio list is a param
    # of the splits job) but reruns none of the runs already there: only the new ratio's run is planned
    config = root / "config/demo.yaml"
    write_config(config, config, table4={"dataset": "synth-rsna", "ratios": ["0_u", 0.2, 0.6]})
    dry = snakemake(root, "-n", "--configfile", "config/demo.yaml", env=env, snakefile=root / "Snakefile")
    counts = job_counts(dry.stdout)
    assert counts["splits"] == 1 and counts["run"] == 1, dry.stdout[-3000:]
    new_run = "results/demo/runs/synth-rsna/sagan/ar0.2/default/seed0/metrics.json"
    assert new_run in dry.stdout, dry.stdout[-3000:]
