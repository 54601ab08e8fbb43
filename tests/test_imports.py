"""The package's import structure: floors (a module never imports one above it), no import cycle,
every module importable as the first one of the package, and the data and report commands without
torch.

The cycle check reads the import statements (`sagan.fingerprint.module_imports`), so an import
inside a function, used to dodge a cycle, counts as what it is; the fresh-interpreter check then
imports each module for real, as the first `sagan` module, which catches what reading cannot (an
import that fails at run time).
"""

from __future__ import annotations

import subprocess
import sys

from sagan.cli import HANDLERS
from sagan.fingerprint import PACKAGE, module_imports
from tests.run_fakes import make_experiment

# The floors of the architecture (brief, "Target architecture"), lowest first; a module's floor is
# that of its longest listed prefix.
FLOORS = {
    "sagan": 1, "sagan.errors": 1, "sagan.atomic": 1, "sagan.experiments": 1,
    "sagan.config": 2,
    "sagan.models": 3, "sagan.losses": 3, "sagan.fpi": 3, "sagan.data": 3, "sagan.stats": 3,
    "sagan.localization": 3,
    "sagan.methods": 4,
    "sagan.scoring": 5, "sagan.runtime": 5, "sagan.fingerprint": 5,
    "sagan.trainer": 6, "sagan.evaluate": 6, "sagan.report": 6, "sagan.cli": 6,
    "sagan.run": 7,
}  # fmt: skip


def sagan_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def floor(module: str) -> int:
    prefixes = [p for p in FLOORS if module == p or module.startswith(p + ".")]
    assert prefixes, f"module {module} has no floor: add it to FLOORS in tests/test_imports.py"
    return FLOORS[max(prefixes, key=len)]


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph, as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert import_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_among_sagan_modules():
    graph = {m: module_imports(m) - {m} for m in sagan_modules()}
    assert import_cycle(graph) is None, " -> ".join(import_cycle(graph))


def test_no_module_imports_a_higher_floor():
    upward = [
        f"{m} (floor {floor(m)}) imports {d} (floor {floor(d)})"
        for m in sagan_modules()
        for d in module_imports(m)
        if floor(d) > floor(m)
    ]
    assert not upward, "\n".join(upward)


def test_trainer_and_evaluator_never_import_each_other():
    assert "sagan.evaluate" not in module_imports("sagan.trainer")
    assert "sagan.trainer" not in module_imports("sagan.evaluate")


FIRST_IMPORT = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "sagan" or m.startswith("sagan.")]:
        del sys.modules[loaded]  # each module is the first of the package to be imported
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(f"{name}: {traceback.format_exc(limit=-2)}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_as_the_first_of_the_package():
    done = subprocess.run(
        [sys.executable, "-c", FIRST_IMPORT, *sagan_modules()], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr


NO_TORCH = ["synth", "download", "check-sources", "prepare", "splits", "tables", "check-tables",
            "compare-paper", "figures", "fingerprint"]  # fmt: skip


def test_data_and_report_commands_do_not_import_torch():
    modules = sorted({HANDLERS[c].split(":")[0] for c in NO_TORCH})
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\nprint('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stdout + done.stderr


def test_sagan_tables_runs_without_importing_torch(tmp_path):
    results = make_experiment(tmp_path / "results", seeds=(0, 1))
    code = (
        "import sys\nfrom sagan.cli import main\n"
        f"rc = main(['tables', '--results', {str(results)!r}, '--out', {str(tmp_path / 'tables')!r}])\n"
        "print(rc, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split()[-2:] == ["0", "False"], done.stdout + done.stderr
    assert (tmp_path / "tables" / "table2.csv").is_file()
