"""The defaults a run gets with the paper preset are the paper's stated values (method.md)."""

import torch

from sagan.methods import get_method
from sagan.runtime import resolve_config


def test_sagan_paper_preset_is_the_papers_setting():
    cfg = resolve_config("sagan", preset="paper")
    m = cfg.model
    assert cfg.train.batch_size == 64  # "batch size ... 64"
    assert cfg.train.iterations == 100_000  # "The maximum epoch is set to 100000"
    assert cfg.data.image_size == 64
    assert (m.lr_g, m.lr_d, m.beta1, m.beta2) == (5e-5, 5e-5, 0.5, 0.999)  # Adam, "5e-5"
    assert m.n_critic == 2  # "the generator once for every two weight updates of the discriminator"
    assert (m.lambda_gp, m.lambda_id, m.lambda_rec) == (10.0, 1.0, 1.0)
    assert m.gate_p == 0.95 and m.gate_at_test is False  # Eq. 1, the authors' p; the gate off at test
    assert m.n_patches == 2 and m.use_acm and m.use_arrm  # N = 2: four patches, full model
    assert (m.conv_dim, m.n_res, m.d_conv_dim, m.d_repeat_num) == (64, 6, 64, 6)  # authors' sizes
    assert cfg.eval.selection == "last"

    # the optimisers the method builds from that configuration
    method = get_method("sagan")(m, cfg.data.image_size, cfg.train.iterations)
    opts = method.optimizers() if callable(method.optimizers) else method.optimizers
    assert set(opts) == {"g", "d"}
    for name, net in (("g", method.G), ("d", method.D)):
        opt = opts[name]
        assert type(opt) is torch.optim.Adam
        group = opt.param_groups[0]
        assert (group["lr"], group["betas"], group["weight_decay"]) == (5e-5, (0.5, 0.999), 0)
        assert {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for p in net.parameters()}
