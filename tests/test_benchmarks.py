"""benchmarks/gpu_check.sh --dry: every step of the GPU check runs on CPU at a tiny size (the same
script and benchmarks/authors_step.py), so that the check cannot rot before a GPU is lent."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_writes_one_result_per_step(tmp_path):
    out = tmp_path / "results.jsonl"
    subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry", "--out", str(out)], check=True
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r.get("error") for r in rows] == [None] * len(rows)
    assert [r["label"] for r in rows] == ["fp32", "bf16", "authors-fp32", "compile", "shared-2", "shared-2"]
    by = {r["label"]: r for r in rows}
    assert (
        by["bf16"]["amp"] == "bf16"
        and by["compile"]["compile"]
        and by["authors-fp32"]["variant"] == "authors"
    )
    assert sorted(r["seed"] for r in rows if r["label"] == "shared-2") == [1, 2]  # two runs at once
    for r in rows:
        assert r["device"] == "cpu" and r["batch"] == 4
        assert len(r["iteration_s"]) >= 3 and math.isfinite(r["s_per_it"]) and r["peak_rss_GiB"] > 0
