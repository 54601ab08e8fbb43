"""The paper's experiment design, defined once: the main anomaly ratio, the Table 2 method groups and
the Table 3 variants. The workflow, the tables, the figures and the tests import them from here.

No torch, no pandas: `sagan tables` and Snakemake's parsing of the workflow read this module.
"""

from __future__ import annotations

from typing import NamedTuple

# Every table except Table 4 is at the paper's anomaly ratio ("all experiments are conducted under
# AR = 60%").
MAIN_AR = "0.6"

# Table 2 categories, in the paper's order; each method declares its own (`Method.group`).
NORMAL_ONLY = "normal only"
SEMI_SUPERVISED = "normal + unlabelled"  # the methods that train on the unlabelled set too
GROUPS = (NORMAL_ONLY, SEMI_SUPERVISED)


def ar_tag(value: object) -> str:
    """Canonical text of an anomaly ratio: 0.6 -> '0.6', 1.0 -> '1', None or '0_u' -> '0_u'."""
    if value is None or str(value).lower() in ("0_u", "none"):
        return "0_u"
    return f"{float(value):g}"


class Table3Row(NamedTuple):
    """One row of Table 3 (the ablation): which method, with which of SAGAN's two modules."""

    key: str  # key of the row in sagan/reference/paper_values.yaml
    label: str
    method: str
    use_acm: bool | None  # None: the method has no such option (its default model)
    use_arrm: bool | None

    @property
    def variant(self) -> str:
        """Name of the run's variant folder in the workflow; "default" = the method as configured."""
        if self.use_acm is None or (self.use_acm and self.use_arrm):
            return "default"
        return f"acm{int(self.use_acm)}-arrm{int(self.use_arrm)}"

    @property
    def options(self) -> dict[str, bool]:
        """`sagan train --set` options of the variant (none for the default model)."""
        if self.variant == "default":
            return {}
        return {"model.use_acm": bool(self.use_acm), "model.use_arrm": bool(self.use_arrm)}


TABLE3_ROWS = [
    Table3Row("baseline", "Baseline (Brainomaly)", "brainomaly", None, None),
    Table3Row("plain", "SAGAN w/o ACM, ARRM", "sagan", False, False),  # the baseline structure
    Table3Row("acm", "+ACM", "sagan", True, False),
    Table3Row("arrm", "+ARRM", "sagan", False, True),
    Table3Row("full", "+ACM and ARRM", "sagan", True, True),
]

# variant folder name -> its `--set` options, for every variant Table 3 trains
VARIANTS: dict[str, dict[str, bool]] = {row.variant: row.options for row in TABLE3_ROWS}
