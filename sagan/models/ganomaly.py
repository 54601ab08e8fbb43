"""GANomaly networks (Akcay et al., ACCV 2018; layout of the official samet-akcay/ganomaly
`lib/networks.py`): DCGAN encoder and decoder for any image size divisible by 16.

- Encoder: 4x4 stride-2 conv to `width` + LeakyReLU(0.2), then 4x4 stride-2 convs doubling the width
  (BN + LeakyReLU) down to 4x4, then a 4x4 valid conv to `out_dim` (z, or the critic logit).
- Decoder: the mirror image with transposed convs, BN + ReLU, tanh output.
- Generator: encoder -> decoder -> second encoder: x -> z -> x_hat -> z_hat (Eq. 1 of the paper).
- Discriminator: the encoder with out_dim 1; its last 4x4 feature map is the feature-matching space.
"""

from __future__ import annotations

import torch
from torch import nn


def n_downs(image_size: int) -> int:
    """Stride-2 convs that take the image to 4x4."""
    return (image_size // 4).bit_length() - 1


class DCGANEncoder(nn.Module):
    def __init__(self, image_size: int, out_dim: int, width: int = 64):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
        c = width
        for _ in range(n_downs(image_size) - 1):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2)]
            c *= 2
        self.features = nn.Sequential(*layers)  # (B, C, 4, 4)
        self.head = nn.Conv2d(c, out_dim, 4, 1, 0, bias=False)  # (B, out_dim, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).flatten(1)  # (B, out_dim)


class DCGANDecoder(nn.Module):
    def __init__(self, image_size: int, latent_dim: int, width: int = 64):
        super().__init__()
        c = width * 2 ** (n_downs(image_size) - 1)  # mirror of the encoder's deepest width
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, c, 4, 1, 0, bias=False)]
        layers += [nn.BatchNorm2d(c), nn.ReLU()]  # (B, C, 4, 4)
        for _ in range(n_downs(image_size) - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU()]
            c //= 2
        layers += [nn.ConvTranspose2d(c, 1, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z[:, :, None, None])  # (B, 1, S, S)


class GanomalyGenerator(nn.Module):
    def __init__(self, image_size: int = 64, latent_dim: int = 100, width: int = 64):
        super().__init__()
        self.encoder1 = DCGANEncoder(image_size, latent_dim, width)
        self.decoder = DCGANDecoder(image_size, latent_dim, width)
        self.encoder2 = DCGANEncoder(image_size, latent_dim, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.encoder1(x)  # (B, nz)
        x_hat = self.decoder(z)  # (B, 1, S, S)
        return x_hat, z, self.encoder2(x_hat)  # z_hat: (B, nz)


class GanomalyDiscriminator(nn.Module):
    def __init__(self, image_size: int = 64, width: int = 64):
        super().__init__()
        self.net = DCGANEncoder(image_size, 1, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the logit (B,) and the feature map (B, C, 4, 4)."""
        f = self.net.features(x)
        return self.net.head(f).flatten(), f


def dcgan_init(module: nn.Module, rng: torch.Generator | None = None) -> None:
    """The official initialisation: conv weights N(0, 0.02), BN scale N(1, 0.02) and shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02, generator=rng)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02, generator=rng)
            nn.init.zeros_(m.bias)
