"""Which code each workflow stage runs, and its fingerprint (no torch: Snakemake and DVC read this).

A stage's code is the module of the `sagan` command it runs, every `sagan` module that module
imports, followed through its import statements (read, not executed; imports inside functions
count too), and the package data files those modules read. A method's training and evaluation
also run the method's own module and what it imports. So the list is derived, never kept by hand:
a new module joins the stages that import it, and a new method changes no other method's code.

Used by the checkpoint identity (`sagan.runtime`: a checkpoint is resumed only by the same training
code), by the Snakemake rules (a job reruns when its code changes) and by DVC (`sagan fingerprint`
writes one file per stage, the stages' dependencies).
"""

from __future__ import annotations

import ast
import hashlib
import pkgutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sagan.atomic import write_atomic

PACKAGE = Path(__file__).resolve().parent  # the `sagan` package folder
ROOT = PACKAGE.parent

# workflow stage (a `sagan` command run by a Snakemake rule) -> the module that implements it
STAGES = {
    "synth": "sagan.data.synthetic",
    "prepare": "sagan.data.ingest",
    "splits": "sagan.data.splits",
    "train": "sagan.trainer",
    "evaluate": "sagan.evaluate",
    "run": "sagan.run",  # train + evaluate in one process: the workflow's job per run
    "tables": "sagan.report.tables",
    "figures": "sagan.report.figures",
}
METHOD_STAGES = ("train", "evaluate", "run")  # these also run the method's module

# package data read by a module (paths relative to the package): part of every stage importing it
DATA_FILES = {
    "sagan.data.splits": ("splits/*.json",),
    "sagan.report.tables": ("reference/paper_values.yaml",),
    "sagan.report.other_papers": ("reference/other_papers.yaml",),
}


def module_file(name: str) -> Path | None:
    """The source file of a `sagan` module or package, None if there is none."""
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_imports(name: str) -> set[str]:
    """The `sagan` modules that module `name` imports, anywhere in its source."""
    path = module_file(name)
    package = name if path is not None and path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:  # `from pkg import module` imports a module, else a name
                sub = f"{base}.{alias.name}"
                found.add(sub if module_file(sub) is not None else base)
    return {m for m in found if m.split(".")[0] == "sagan" and module_file(m) is not None}


def closure(modules: Iterable[str]) -> set[str]:
    """The modules and everything they import, with the packages that contain them."""
    todo, seen = list(modules), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        todo += [*module_imports(name), *parents]
    return seen


def stage_files(stage: str, method_modules: Iterable[str] = ()) -> list[Path]:
    """Every source and data file a stage runs (`method_modules`: the methods of a method stage)."""
    modules = closure([STAGES[stage], *(method_modules if stage in METHOD_STAGES else ())])
    files = {module_file(m) for m in modules}
    for module in modules:
        for pattern in DATA_FILES.get(module, ()):
            files.update(PACKAGE.glob(pattern))
    return sorted(files)


def code_hash(files: Iterable[Path]) -> str:
    """sha256 over the files' paths (relative to the package) and contents, 16 hex digits."""
    digest = hashlib.sha256()
    for path in sorted(files):
        for part in (path.relative_to(PACKAGE).as_posix().encode(), path.read_bytes()):
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)
    return digest.hexdigest()[:16]


def stage_hash(stage: str, method_modules: Iterable[str] = ()) -> str:
    return code_hash(stage_files(stage, method_modules))


def method_modules() -> list[str]:
    """Every module of the `sagan.methods` package, found by listing it (nothing is imported)."""
    return sorted(f"sagan.methods.{m.name}" for m in pkgutil.iter_modules([str(PACKAGE / "methods")]))


def cli_fingerprint(args: Any) -> int:
    """`sagan fingerprint --out DIR`: one file per stage holding its code hash (all methods), for DVC."""
    for stage in STAGES:
        write_atomic(Path(args.out) / stage, stage_hash(stage, method_modules()) + "\n")
    return 0
