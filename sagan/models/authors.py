"""The authors' parameter names (GitHub zzr728/SAGAN, `model.py`) mapped to this project's generator.

`authors_state_dict` renames a state dict of their generator (e.g. loaded from their `{iter}-G.ckpt`)
so that `SAGANGenerator(network="authors").load_state_dict` accepts it. Their InstanceNorm running
statistics are dropped: their norms always use instance statistics (the authors never call eval()).
Only names are mapped here; no code of theirs is used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

# (their module path, ours): {k} is the number in their name minus one (their levels count from 1),
# {r} the number minus three (their residual blocks follow the fusion conv, IN and ReLU in `bn2`)
_RULES: list[tuple[str, str]] = [
    (r"layer1\.", "stem."),
    (r"enc_layer(\d)\.", "down.{k}."),
    (r"p_bn(\d)\.0\.", "fuse.{k}.conv."),
    (r"bn2\.0\.", "fuse.2.conv."),
    (r"bn2\.(\d+)\.main\.", "bottleneck.{r}.body."),
    (r"gate(\d)\.W_gate\.", "levels.{k}.gate.c1."),  # on the decoder feature (gating signal)
    (r"gate(\d)\.W_x\.", "levels.{k}.gate.c2."),  # on the skip
    (r"gate(\d)\.psi\.", "levels.{k}.gate.c3."),
    (r"dec_bn(\d)\.main\.", "levels.{k}.block.project."),
    (r"dec_bn(\d)\.sc\.", "levels.{k}.block.refine."),
    (r"dec_layer(\d)\.", "levels.{k}.up."),
    (r"up_conv(\d)\.", "lift.{k}."),
    (r"bn3\.main\.", "merge.project."),
    (r"bn3\.sc\.", "merge.refine."),
    (r"conv\.", "to_map."),
]
_UNUSED = ("running_mean", "running_var", "num_batches_tracked")


def authors_name(name: str) -> str:
    """Our parameter name for one of theirs, e.g. 'dec_bn2.sc.0.weight' -> 'levels.1.block.refine.0.weight'."""
    name = name.removeprefix("G.")
    for pattern, ours in _RULES:
        m = re.match(pattern, name)
        if m:
            n = int(m[1]) if m.groups() else 0
            return ours.format(k=n - 1, r=n - 3) + name[m.end() :]
    raise KeyError(f"no rule maps the authors' parameter {name!r}")


def authors_state_dict(theirs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Their generator's state dict (names with or without 'G.') under our names, running stats dropped."""
    return {authors_name(k): torch.as_tensor(v) for k, v in theirs.items() if not k.endswith(_UNUSED)}
