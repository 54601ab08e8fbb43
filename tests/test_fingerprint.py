"""Code fingerprints of the workflow stages (`sagan.fingerprint`): what each stage's code covers, that a
change reruns exactly the stages that run the changed file, that adding a method is one new file, and
that the static list covers what training really imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sagan import fingerprint
from sagan.cli import HANDLERS
from sagan.fingerprint import DATA_FILES, STAGES, closure, method_modules, stage_files, stage_hash
from sagan.methods import get_method, method_names


def rel(paths: list[Path]) -> set[str]:
    return {p.relative_to(fingerprint.PACKAGE).as_posix() for p in paths}


def test_each_stage_is_the_module_of_its_command():
    assert {stage: HANDLERS[stage].split(":")[0] for stage in STAGES} == STAGES


def test_data_files_are_read_by_the_module_they_belong_to():
    for module, patterns in DATA_FILES.items():
        source = fingerprint.module_file(module).read_text()
        for pattern in patterns:
            folder = pattern.split("/")[0]
            assert f"{folder}/" in source or f"sagan.{folder}" in source, (module, pattern)
            assert list(fingerprint.PACKAGE.glob(pattern)), f"{pattern} matches no file"


def test_training_code_covers_the_training_path_and_nothing_else():
    files = rel(stage_files("train", [get_method("sagan").__module__]))
    assert {"trainer.py", "runtime.py", "scoring.py", "config.py", "methods/sagan.py", "methods/gan.py",
            "fpi.py", "losses.py", "models/generator.py", "data/loading.py"} <= files  # fmt: skip
    assert not files & {"evaluate.py", "cli.py", "methods/ae.py", "methods/brainomaly.py", "report/tables.py"}
    assert "methods/ae.py" in rel(stage_files("train", [get_method("ae").__module__]))
    assert not rel(stage_files("figures")) & {"trainer.py", "config.py", "methods/__init__.py"}


def test_the_checkpoint_and_the_workflow_use_the_same_training_fingerprint():
    from sagan.runtime import code_fingerprint

    for name in method_names():
        assert code_fingerprint(name) == stage_hash("train", [get_method(name).__module__])


TRAIN_AND_LIST = """
import sys
from sagan.cli import main
main(["train", "--data", sys.argv[1], "--method", sys.argv[2], "--out", sys.argv[3], "--preset", "demo",
      "--set", "train.iterations=2", "--set", "data.image_size=32", "--set", "train.batch_size=4",
      "--set", "eval.selection=test-oracle", "--set", "eval.select_every=1"])
print(" ".join(sorted(m for m in sys.modules if m == "sagan" or m.startswith("sagan."))))
"""


def test_the_static_training_code_covers_every_module_a_real_training_imports(tiny_dataset, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_AND_LIST, str(tiny_dataset), "sagan", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(done.stdout.split())
    mine = closure([STAGES["train"], get_method("sagan").__module__])
    others = closure(
        m for m in method_modules() if m != get_method("sagan").__module__
    )  # the registry's scan
    assert "sagan.scoring" in loaded and "sagan.methods.sagan" in loaded
    assert loaded - others - {"sagan.cli"} <= mine, loaded - others - mine


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of the package that `sagan.fingerprint` reads instead of the real one."""
    root = tmp_path / "copy"
    shutil.copytree(fingerprint.PACKAGE, root / "sagan", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "ROOT", root)
    monkeypatch.setattr(fingerprint, "PACKAGE", root / "sagan")
    return root / "sagan"


def all_hashes() -> dict[str, str]:
    out = {}
    for stage in STAGES:
        if stage in fingerprint.METHOD_STAGES:
            out.update({f"{stage}:{m.rsplit('.', 1)[1]}": stage_hash(stage, [m]) for m in method_modules()})
        else:
            out[stage] = stage_hash(stage)
    return out


GAN = {f"{s}:{m}" for s in ("train", "evaluate", "run") for m in ("sagan", "brainomaly")}
METHOD_MODULES = {m.rsplit(".", 1)[1] for m in method_modules()}  # every module of sagan/methods


@pytest.mark.parametrize(
    ("path", "changed"),
    [
        ("report/figures.py", {"figures"}),
        ("reference/paper_values.yaml", {"tables"}),
        ("data/synthetic/chest.py", {"synth"}),
        ("data/archives.py", {"synth", "prepare"}),
        ("methods/ae.py", {"train:ae", "evaluate:ae", "run:ae"}),
        ("models/generator.py", GAN),
        ("evaluate.py", {f"{s}:{m}" for s in ("evaluate", "run") for m in METHOD_MODULES}),
        ("trainer.py", {f"{s}:{m}" for s in ("train", "run") for m in METHOD_MODULES}),
        ("run.py", {f"run:{m}" for m in METHOD_MODULES}),
        ("scoring.py", {f"{s}:{m}" for s in ("train", "evaluate", "run") for m in METHOD_MODULES}),
    ],
)  # fmt: skip
def test_a_code_change_changes_exactly_the_stages_that_run_it(package_copy, path, changed):
    before = all_hashes()
    with open(package_copy / path, "a") as fh:
        fh.write("\n# a change\n")
    after = all_hashes()
    assert {k for k in before if before[k] != after[k]} == changed


def documented_method() -> str:
    """The complete example method of docs/methods.md ("Adding a method")."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "methods.md").read_text()
    return text.split("```python\n", 1)[1].split("```", 1)[0]


def test_adding_a_method_is_one_new_file(package_copy, tiny_dataset, tmp_path):
    before = all_hashes()
    (package_copy / "methods" / "mean_image.py").write_text(documented_method())
    after = all_hashes()
    assert {k: after[k] for k in before} == before  # no other stage or method changed
    assert {"train:mean_image", "evaluate:mean_image"} <= set(after)
    env = {"PYTHONPATH": str(package_copy.parent), "PATH": "/usr/bin:/bin"}

    def sagan(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "sagan.cli", *args], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    assert "mean_image" in sagan("methods")
    run = tmp_path / "run"
    sets = ["--set", "train.iterations=4", "--set", "data.image_size=32", "--set", "train.batch_size=4"]
    sagan("train", "--data", str(tiny_dataset), "--method", "mean_image", "--out", str(run), *sets)
    assert "auc" in sagan("evaluate", str(run))
