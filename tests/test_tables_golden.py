"""The rendered tables of two fixed fake experiments, byte for byte (tests/golden/tables/).

A deliberate change of the tables' content or layout regenerates the files and shows up in review as a
diff of the golden files:
    PYTHONPATH=$PWD python -m tests.test_tables_golden --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sagan.report.tables import build_tables, metrics_summary, render_all
from tests.run_fakes import make_experiment

GOLDEN = Path(__file__).parent / "golden" / "tables"
# name -> make_experiment calls into one folder: the full run matrix, test-oracle selection, ablations
# and anomaly ratios on two datasets (Tables 3 and 4 gain a Dataset column), one seed with Tables 3
# and 4 empty, and the baselines
EXPERIMENTS = {
    "full": [{}],
    "oracle": [{"datasets": ("vindr", "rsna"), "seeds": (0, 1), "selection": "test-oracle"}],
    "two_datasets": [
        {
            "datasets": ("synth-vindr", "synth-rsna"),
            "seeds": (0, 1),
            "table3": "synth-vindr",
            "table4": "synth-rsna",
        },
        {"datasets": ("synth-rsna",), "seeds": (0, 1), "table3": "synth-rsna", "table4": "synth-vindr"},
    ],
    "small": [{"datasets": ("synth-rsna",), "seeds": (0,), "table3": None, "table4": None}],
    # baselines with other papers' published values (AE4AD, DDAD) on the real datasets' names, DDAD's
    # intra score as its own normal-only row, and LAG without pixel labels (n/a in table_loc)
    "baselines": [{"methods": ("ae", "memae", "ddad", "sagan"), "seeds": (0, 1), "table3": None}],
    # the demo preset on synthetic sets: each row's budget (200) beside its method's bench budget;
    # f-AnoGAN's row (200 of 5600, under a tenth) is not ranked, the AE's (200 of 2000) is
    "demo_budgets": [
        {"datasets": ("synth-rsna", "synth-lag"), "methods": ("ae", "fanogan", "sagan"), "seeds": (0, 1),
         "table3": None, "table4": None, "preset": "demo"}
    ],
}  # fmt: skip


def rendered(root: Path, name: str) -> dict[str, str]:
    for kwargs in EXPERIMENTS[name]:
        make_experiment(root / name, **kwargs)
    tables = build_tables(root / name)
    files = render_all(tables)
    files["metrics.json"] = json.dumps(metrics_summary(tables), indent=2, sort_keys=True) + "\n"
    return files


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_rendered_tables_match_the_golden_files(name, tmp_path):
    files = rendered(tmp_path, name)
    assert sorted(files) == sorted(p.name for p in (GOLDEN / name).iterdir())
    for fname, text in files.items():
        assert text == (GOLDEN / name / fname).read_text(), f"{name}/{fname} differs from the golden file"


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name in EXPERIMENTS:
            (GOLDEN / name).mkdir(parents=True, exist_ok=True)
            for fname, text in rendered(Path(tmp), name).items():
                (GOLDEN / name / fname).write_text(text)
                print(f"wrote {GOLDEN / name / fname}")
