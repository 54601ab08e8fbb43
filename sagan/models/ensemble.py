"""K autoencoders of one architecture on the same input, computed as one grouped network (DDAD).

`ensemble_forward(nets, x)` is `torch.stack([net(x) for net in nets], 1)` for K `AutoEncoder`s of the
same shape, with one convolution per layer instead of K: the first conv's K kernels are concatenated
(every network reads the same image), the later convs and transposed convs run with groups = K, the
batch norms over the K networks' channels side by side (a batch norm is per channel, so this is each
network's own), and the dense layers as one batched matrix product. The parameters stay the K
networks' own (their state dicts, optimisers and initial values are unchanged): they are
concatenated on the fly, so each network gets exactly its own gradient, and in training mode each
network's batch-norm running statistics are updated as its own forward would. Equal to the per-network
forward in real arithmetic (float32 sums run in another order; tests/test_baselines_rec.py compares
both in float64). A demo DDAD iteration is 1.27x faster on one CPU thread (fewer, larger ops;
benchmarks/RESULTS.md, "2026-12-02").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sagan.models.autoencoder import AutoEncoder


def _cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(tensors) if len(tensors) > 1 else tensors[0]


def _batch_norm(bns: list[nn.modules.batchnorm._BatchNorm], x: torch.Tensor) -> torch.Tensor:
    """Each network's batch norm on its own channels of x (the K networks' channels side by side)."""
    b0 = bns[0]
    w, b = _cat([m.weight for m in bns]), _cat([m.bias for m in bns])
    mean, var = _cat([m.running_mean for m in bns]), _cat([m.running_var for m in bns])
    if not b0.training:
        return F.batch_norm(x, mean, var, w, b, False, 0.0, b0.eps)
    out = F.batch_norm(x, mean, var, w, b, True, b0.momentum, b0.eps)  # updates mean, var in place
    with torch.no_grad():
        for m, mu, v in zip(bns, mean.chunk(len(bns)), var.chunk(len(bns))):
            m.running_mean.copy_(mu)
            m.running_var.copy_(v)
            m.num_batches_tracked.add_(1)
    return out


def _dense(stages: list[nn.Sequential], h: torch.Tensor) -> torch.Tensor:
    """Linear -> BatchNorm1d -> ReLU -> Linear of each network on its own rows: h (K, B, d_in)."""
    k, n, _ = h.shape
    w1 = torch.stack([s[0].weight for s in stages]).transpose(1, 2)  # (K, d_in, hidden)
    h = torch.baddbmm(torch.stack([s[0].bias for s in stages])[:, None], h, w1)  # (K, B, hidden)
    h = _batch_norm([s[1] for s in stages], h.transpose(0, 1).reshape(n, -1))  # (B, K * hidden)
    h = torch.relu(h).view(n, k, -1).transpose(0, 1)  # (K, B, hidden)
    w2 = torch.stack([s[3].weight for s in stages]).transpose(1, 2)  # (K, hidden, d_out)
    return torch.baddbmm(torch.stack([s[3].bias for s in stages])[:, None], h, w2)  # (K, B, d_out)


def ensemble_forward(nets: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """(B, K, 1, H, W): every network's reconstruction of x (B, 1, H, W)."""
    if not all(isinstance(n, AutoEncoder) for n in nets) or len({_shape(n) for n in nets}) != 1:
        return torch.stack([net(x) for net in nets], dim=1)  # other modules: one forward each
    k, n, a0 = len(nets), len(x), nets[0]
    h = x
    for i in range(len(a0.encoder)):  # (conv, BN, ReLU) stages; the first reads the image itself
        conv = a0.encoder[i][0]
        weight = _cat([net.encoder[i][0].weight for net in nets])
        h = F.conv2d(h, weight, None, conv.stride, conv.padding, groups=1 if i == 0 else k)
        h = torch.relu(_batch_norm([net.encoder[i][1] for net in nets], h))
    z = _dense([net.to_latent for net in nets], h.view(n, k, -1).transpose(0, 1))  # (K, B, latent)
    h = _dense([net.from_latent for net in nets], z)  # (K, B, C * s * s)
    h = h.transpose(0, 1).reshape(n, k * a0.channels, a0.side, a0.side)
    for i, stage in enumerate(a0.decoder):
        conv = stage[0] if isinstance(stage, nn.Sequential) else stage
        parts = [net.decoder[i][0] if isinstance(stage, nn.Sequential) else net.decoder[i] for net in nets]
        h = F.conv_transpose2d(h, _cat([c.weight for c in parts]), None, conv.stride, conv.padding, groups=k)
        if isinstance(stage, nn.Sequential):  # (transposed conv, BN, ReLU); the last conv is linear
            h = torch.relu(_batch_norm([net.decoder[i][1] for net in nets], h))
    return h.view(n, k, 1, *h.shape[-2:])


def _shape(net: AutoEncoder) -> tuple:
    return tuple((name, tuple(p.shape)) for name, p in net.named_parameters())
