"""`train.compile`: Brainomaly's generator compiled with inductor (the real path) trains the same
function as eager, rounded differently; its checkpoints are eager's, so the eager evaluator reads them
and either mode resumes the other's run. SAGAN's generator (a minute of inductor compiling, even
tiny) is traced as inductor gets it, to show that its random gates stay eager's."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from sagan.errors import ConfigError
from sagan.evaluate import evaluate_run
from sagan.runtime import build_method, compile_networks, read_checkpoint, resolve_config
from sagan.trainer import train
from tests.test_trainer import SMALL


def config(tiny, compiled: bool, iterations: int = 4):
    sets = {"data.path": str(tiny), "train.iterations": iterations, "train.checkpoint_every": 2, **SMALL}
    sets["model.n_res"] = 1  # the fewest ops to compile (a cold compile is most of this file's time)
    return resolve_config("brainomaly", 0, "demo", None, {**sets, "train.compile": compiled})


def compiled_graphs() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def test_compiled_training_matches_eager_and_the_eager_evaluator_reads_it(tiny_dataset, tmp_path):
    before = compiled_graphs()
    train(tmp_path / "eager", config(tiny_dataset, False))
    assert compiled_graphs() == before  # eager stays eager
    train(tmp_path / "compiled", config(tiny_dataset, True))
    assert compiled_graphs() > before  # the generator's forward and backward were compiled

    eager, comp = (
        read_checkpoint(tmp_path / r / "checkpoints" / "last.pt")["model"] for r in ("eager", "compiled")
    )
    assert list(comp) == list(eager)  # no `_orig_mod.` prefix: a compiled run's checkpoint is eager's
    for name, value in eager.items():
        # 4 iterations (2 generator steps) from the same weights and batches; compiled kernels sum in
        # another order (the largest difference measured: 1.1e-5, a ninth of this tolerance)
        torch.testing.assert_close(comp[name], value, rtol=1e-3, atol=1e-4, msg=name)

    for r in ("eager", "compiled"):
        assert evaluate_run(tmp_path / r)["iteration"] == 4  # the evaluator runs eager
    scores = [pd.read_csv(tmp_path / r / "scores.csv")["score"] for r in ("eager", "compiled")]
    assert (scores[0] - scores[1]).abs().max() < 1e-4


def test_switching_compile_keeps_the_progress(tiny_dataset, tmp_path, caplog):
    # train.compile is not part of a run's identity (as train.threads): either mode resumes the other's
    # checkpoint (the same state_dict keys, loaded strictly)
    for first in (True, False):
        run = tmp_path / f"first-compiled-{first}"
        train(run, config(tiny_dataset, first))
        caplog.clear()
        caplog.set_level("INFO")
        train(run, config(tiny_dataset, not first))
        assert "resuming" in caplog.text and "from scratch" not in caplog.text
        assert "train.compile" not in read_checkpoint(run / "checkpoints" / "last.pt")["config"]


def test_sagan_compiled_draws_the_eager_gates():
    # the Bernoulli gate (Eq. 1) draws from the run's generator: dynamo leaves that call eager (a graph
    # break), so a compiled SAGAN consumes the same random stream as an eager one, draw for draw
    # (aot_eager: dynamo and AOT autograd as inductor gets them, without its C++ code generation)
    cfg = resolve_config("sagan", 0, "demo", None, SMALL)
    eager = build_method(cfg, torch.device("cpu"))
    comp = build_method(cfg, torch.device("cpu"))
    compile_networks(comp, backend="aot_eager")
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    outs, states = [], []
    for m in (eager, comp):
        rng = torch.Generator().manual_seed(0)
        outs.append(m.restore(x, rng, train=True))
        states.append(rng.get_state())
    assert not torch.equal(states[0], torch.Generator().manual_seed(0).get_state())  # gates were drawn
    assert torch.equal(states[0], states[1])
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=1e-5)


def test_compile_is_refused_for_a_method_with_nothing_to_compile():
    with pytest.raises(
        ConfigError, match="method ae has no network to compile.*brainomaly, healthygan, sagan"
    ):
        resolve_config("ae", 0, "demo", None, {"train.compile": True})
