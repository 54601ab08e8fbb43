"""A small masked autoencoder (MAE, He et al., CVPR 2022) for 1-channel images, and AMAE's anomaly head.

MAE: the image is cut into non-overlapping p x p patches (tokens); a ViT encoder sees only the visible
tokens, a lighter ViT decoder gets the encoded visible tokens plus a shared learned mask token at every
masked position and predicts the pixels of every patch; the loss is the mean squared error on the
masked patches only. Positions are fixed 2D sine-cosine embeddings (as in MAE); there is no class
token.

Sizes here are chosen for 64 px (patch 8 -> 64 tokens) and the demo's 32 px (patch 4 -> 64 tokens);
AMAE itself starts from ImageNet's ViT-B/16 MAE at 224 px (see docs/methods.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, L, patch*patch*C), tokens in row-major order."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, h, w, p, p, C)
    return x.reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(tokens: torch.Tensor, patch: int, channels: int = 1) -> torch.Tensor:
    """(B, L, patch*patch*C) -> (B, C, H, W): the exact inverse of `patchify` (L a square)."""
    b, n, _ = tokens.shape
    side = math.isqrt(n)
    x = tokens.reshape(b, side, side, patch, patch, channels)
    x = x.permute(0, 5, 1, 3, 2, 4)  # (B, C, h, p, w, p)
    return x.reshape(b, channels, side * patch, side * patch)


def sincos_position_embedding(dim: int, side: int) -> torch.Tensor:
    """(side*side, dim) fixed 2D sine-cosine positions: half the channels encode the row, half the column."""
    if dim % 4:
        raise ValueError(f"the embedding width must be divisible by 4, got {dim}")
    freqs = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))  # (dim/4,)
    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.reshape(-1, 1).double() * freqs  # (L, dim/4)
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # (L, dim/2)

    return torch.cat([encode(rows), encode(cols)], dim=1).float()  # (L, dim)


def random_keep(batch: int, tokens: int, mask_ratio: float, rng: torch.Generator, device) -> torch.Tensor:
    """(B, K) indices of the visible tokens: a uniformly random subset of K = L * (1 - ratio) per image."""
    keep = max(1, int(tokens * (1 - mask_ratio)))
    noise = torch.rand(batch, tokens, generator=rng, device=device)  # (B, L)
    return noise.argsort(dim=1)[:, :keep]


def masked_of(keep: torch.Tensor, tokens: int) -> torch.Tensor:
    """(B, L) float mask: 1 at masked tokens, 0 at the visible ones listed in `keep` (B, K)."""
    mask = torch.ones(keep.shape[0], tokens, device=keep.device)
    return mask.scatter(1, keep, 0.0)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, d/heads)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)) with a 4x hidden width."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MaskedAutoencoder(nn.Module):
    """ViT encoder on the visible patches + light ViT decoder that predicts the pixels of all patches."""

    def __init__(
        self,
        image_size: int,
        patch: int,
        dim: int,
        depth: int,
        heads: int,
        decoder_dim: int,
        decoder_depth: int,
        decoder_heads: int,
    ):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image size {image_size} is not divisible by the patch size {patch}")
        self.patch, side = patch, image_size // patch
        self.tokens = side * side
        self.embed = nn.Linear(patch * patch, dim)
        self.register_buffer("pos", sincos_position_embedding(dim, side)[None], persistent=False)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.decoder_embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.register_buffer(
            "decoder_pos", sincos_position_embedding(decoder_dim, side)[None], persistent=False
        )
        self.decoder_blocks = nn.ModuleList(Block(decoder_dim, decoder_heads) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.head = nn.Linear(decoder_dim, patch * patch)
        self.apply(_init)
        nn.init.normal_(self.mask_token, std=0.02)

    def encode(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Encoded tokens (B, K, dim) of the visible patches `keep` (B, K); all L patches if None."""
        x = self.embed(patchify(images, self.patch)) + self.pos  # (B, L, dim)
        if keep is not None:
            x = x.gather(1, keep[..., None].expand(-1, -1, x.shape[-1]))  # (B, K, dim)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def decode(self, latent: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Predicted pixels of every patch (B, L, p*p) from the encoded visible tokens (B, K, dim)."""
        y = self.decoder_embed(latent)  # (B, K, dd)
        b, _, dd = y.shape
        full = self.mask_token.expand(b, self.tokens, dd).to(y.dtype)  # (B, L, dd)
        full = full.scatter(1, keep[..., None].expand(-1, -1, dd), y) + self.decoder_pos
        for block in self.decoder_blocks:
            full = block(full)
        return self.head(self.decoder_norm(full))  # (B, L, p*p)

    def forward(self, images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W), visible indices (B, K) -> predicted patches (B, L, p*p)."""
        return self.decode(self.encode(images, keep), keep)

    def masked_loss(self, images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """MAE loss: mean squared pixel error over the masked patches only, per image (B,)."""
        pred = self(images, keep)  # (B, L, p*p)
        err = ((pred - patchify(images, self.patch)) ** 2).mean(-1)  # (B, L)
        mask = masked_of(keep, self.tokens)  # (B, L)
        return (err * mask).sum(1) / mask.sum(1)


class AnomalyHead(nn.Module):
    """AMAE's lightweight classifier on frozen MAE tokens: a one-hidden-layer MLP scores every token and
    the image logit is the highest token logit (multiple-instance max pooling: a synthetic anomaly is
    local, and the mean over tokens dilutes it)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens).squeeze(-1).amax(1)  # (B, L, dim) -> (B,) logits


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
