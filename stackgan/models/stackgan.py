"""StackGAN networks (Zhang et al., ICCV 2017): conditioning augmentation, stage-I and stage-II.

Networks only: no losses beyond the KL term of the conditioning augmentation, no training.

- :class:`CondAugment`: sentence vector -> FC -> (mu, log sigma^2); c = mu + sigma * eps. The split
  comes straight from the linear layer (no ReLU before it, which would force log sigma^2 >= 0).
- :class:`Stage1G`: [z; c] -> FC -> 4x4x(8 ngf) -> up-blocks -> ``image_size`` (16/32/64) RGB, tanh.
- :class:`Stage1D` / :class:`Stage2D`: a conv stack down to 4x4, then a conditional logit (image
  features joined with a spatially tiled text code) and an unconditional logit.
- :class:`Stage2G`: encodes the (frozen) stage-I picture to 1/4 of its side, joins a tiled c from its
  own CA, residual blocks, up-blocks to ``image_size * scale`` (scale 2 or 4).

Widths are free (``ngf``, ``ndf``), so the same code builds slim CPU models and the paper's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

STAGE1_SIZES = (16, 32, 64)
STAGE2_SCALES = (2, 4)


def _log2_int(n: int, what: str) -> int:
    k = int(round(math.log2(n)))
    if 2**k != n:
        raise ValueError(f"{what} must be a power of two, got {n}")
    return k


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=False)


def up_block(cin: int, cout: int) -> nn.Sequential:
    """Nearest x2 upsample + 3x3 conv + BN + ReLU."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(cin, cout),
                         nn.BatchNorm2d(cout), nn.ReLU(True))


def down_block(cin: int, cout: int, bn: bool = True) -> nn.Sequential:
    """4x4 stride-2 conv (+ BN) + LeakyReLU(0.2)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2, True))
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.block = nn.Sequential(conv3x3(ch, ch), nn.BatchNorm2d(ch), nn.ReLU(True),
                                   conv3x3(ch, ch), nn.BatchNorm2d(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.block(x))


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)), averaged over every element (batch and code dims)."""
    return 0.5 * torch.mean(mu.pow(2) + logvar.exp() - 1.0 - logvar)


class CondAugment(nn.Module):
    """Conditioning augmentation: text embedding [B, E] -> (c, mu, logvar), each [B, c_dim].

    Sentence vectors of dish names are all alike (cosines of 0.8-0.9 with e5): the input is first
    standardised with the training names' mean and spread (buffers ``emb_shift`` / ``emb_scale``,
    set by :meth:`set_normalization` and saved with the weights, so new names at inference get
    the same transform).
    """

    def __init__(self, emb_dim: int, c_dim: int = 128):
        super().__init__()
        self.emb_dim, self.c_dim = emb_dim, c_dim
        self.fc = nn.Linear(emb_dim, 2 * c_dim)
        self.register_buffer("emb_shift", torch.zeros(emb_dim))
        self.register_buffer("emb_scale", torch.ones(()))

    @torch.no_grad()
    def set_normalization(self, train_emb: torch.Tensor) -> None:
        """Centre on the training names' mean vector and scale to unit spread per dimension."""
        e = train_emb.detach().float().to(self.emb_shift.device)
        mean = e.mean(0)
        spread = (e - mean).pow(2).mean().sqrt()
        self.emb_shift.copy_(mean)
        self.emb_scale.fill_(1.0 / float(spread) if float(spread) > 1e-8 else 1.0)

    def encode(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (emb - self.emb_shift.to(emb.dtype)) * self.emb_scale.to(emb.dtype)
        mu, logvar = self.fc(x).chunk(2, dim=1)
        return mu, logvar

    def forward(self, emb: torch.Tensor, eps: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(emb)
        if eps is None:
            eps = torch.randn_like(mu)
        c = mu + torch.exp(0.5 * logvar) * eps.to(mu.dtype)
        return c, mu, logvar


def _up_channels(start: int, n: int, floor: int = 4) -> list[int]:
    chans = [start]
    for _ in range(n):
        chans.append(max(chans[-1] // 2, floor))
    return chans


class Stage1G(nn.Module):
    """Stage-I generator: (z, text embedding) -> low-resolution picture in [-1, 1]."""

    def __init__(self, emb_dim: int, c_dim: int = 128, z_dim: int = 100, ngf: int = 64, image_size: int = 64):
        super().__init__()
        if image_size not in STAGE1_SIZES:
            raise ValueError(f"stage-I image size must be one of {STAGE1_SIZES}, got {image_size}")
        self.emb_dim, self.c_dim, self.z_dim, self.ngf, self.image_size = emb_dim, c_dim, z_dim, ngf, image_size
        self.ca = CondAugment(emb_dim, c_dim)
        n_up = _log2_int(image_size, "image size") - 2
        chans = _up_channels(ngf * 8, n_up)
        self.fc = nn.Sequential(nn.Linear(z_dim + c_dim, chans[0] * 16, bias=False),
                                nn.BatchNorm1d(chans[0] * 16), nn.ReLU(True))
        self.ups = nn.Sequential(*[up_block(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.to_rgb = nn.Sequential(conv3x3(chans[-1], 3), nn.Tanh())

    def forward(self, z: torch.Tensor, emb: torch.Tensor, eps: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (images [B, 3, S, S], mu, logvar)."""
        c, mu, logvar = self.ca(emb, eps)
        h = self.fc(torch.cat([z, c.to(z.dtype)], dim=1)).view(z.shape[0], -1, 4, 4)
        return self.to_rgb(self.ups(h)), mu, logvar


class CondLogits(nn.Module):
    """4x4 image features (+ tiled text code) -> one logit per sample."""

    def __init__(self, feat_ch: int, c_dim: int = 0, hidden: int | None = None):
        super().__init__()
        self.c_dim = c_dim
        if c_dim:
            hidden = hidden or feat_ch
            self.net = nn.Sequential(conv3x3(feat_ch + c_dim, hidden), nn.BatchNorm2d(hidden),
                                     nn.LeakyReLU(0.2, True), nn.Conv2d(hidden, 1, 4, 4))
        else:
            self.net = nn.Conv2d(feat_ch, 1, 4, 4)

    def forward(self, feats: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.c_dim:
            if c is None:
                raise ValueError("conditional logits need a text code")
            tiled = c.to(feats.dtype)[:, :, None, None].expand(-1, -1, feats.shape[2], feats.shape[3])
            feats = torch.cat([feats, tiled], dim=1)
        return self.net(feats).view(-1)


class _DBase(nn.Module):
    """Shared head: ``features(img)``, ``cond(feats, c)``, ``uncond(feats)``."""

    encode: nn.Module
    feat_ch: int

    def _heads(self, c_dim: int) -> None:
        self.cond_head = CondLogits(self.feat_ch, c_dim)
        self.uncond_head = CondLogits(self.feat_ch, 0)

    def features(self, img: torch.Tensor) -> torch.Tensor:
        return self.encode(img)

    def cond(self, feats: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.cond_head(feats, c)

    def uncond(self, feats: torch.Tensor) -> torch.Tensor:
        return self.uncond_head(feats)

    def forward(self, img: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features(img)
        return self.cond(feats, c), self.uncond(feats)


class Stage1D(_DBase):
    """Stage-I discriminator: conv stack from ``image_size`` down to 4x4 (ndf, 2ndf, ... channels)."""

    def __init__(self, c_dim: int = 128, ndf: int = 64, image_size: int = 64):
        super().__init__()
        if image_size not in STAGE1_SIZES:
            raise ValueError(f"stage-I image size must be one of {STAGE1_SIZES}, got {image_size}")
        self.image_size = image_size
        n_down = _log2_int(image_size, "image size") - 2
        chans = [ndf * 2**i for i in range(n_down)]
        layers = [down_block(3, chans[0], bn=False)]
        layers += [down_block(a, b) for a, b in zip(chans[:-1], chans[1:])]
        self.encode = nn.Sequential(*layers)
        self.feat_ch = chans[-1]
        self._heads(c_dim)


class Stage2G(nn.Module):
    """Stage-II generator: (stage-I picture, text embedding) -> picture ``scale`` times larger."""

    def __init__(self, emb_dim: int, c_dim: int = 128, ngf: int = 64, image_size: int = 64, scale: int = 4,
                 r_num: int = 2):
        super().__init__()
        if image_size not in STAGE1_SIZES:
            raise ValueError(f"stage-I image size must be one of {STAGE1_SIZES}, got {image_size}")
        if scale not in STAGE2_SCALES:
            raise ValueError(f"stage-II scale must be one of {STAGE2_SCALES}, got {scale}")
        self.emb_dim, self.c_dim, self.ngf = emb_dim, c_dim, ngf
        self.image_size, self.scale, self.out_size = image_size, scale, image_size * scale
        self.ca = CondAugment(emb_dim, c_dim)
        self.encoder = nn.Sequential(  # S -> S/4, 4 ngf channels
            conv3x3(3, ngf), nn.ReLU(True),
            nn.Conv2d(ngf, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.Conv2d(ngf * 2, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True))
        self.joint = nn.Sequential(conv3x3(ngf * 4 + c_dim, ngf * 4), nn.BatchNorm2d(ngf * 4), nn.ReLU(True))
        self.residual = nn.Sequential(*[ResBlock(ngf * 4) for _ in range(r_num)])
        n_up = 2 + _log2_int(scale, "scale")
        chans = _up_channels(ngf * 4, n_up)
        self.ups = nn.Sequential(*[up_block(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.to_rgb = nn.Sequential(conv3x3(chans[-1], 3), nn.Tanh())

    def forward(self, stage1_img: torch.Tensor, emb: torch.Tensor, eps: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (images [B, 3, S*scale, S*scale], mu, logvar). ``stage1_img`` gets no gradient."""
        h = self.encoder(stage1_img.detach())
        c, mu, logvar = self.ca(emb, eps)
        tiled = c.to(h.dtype)[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])
        h = self.residual(self.joint(torch.cat([h, tiled], dim=1)))
        return self.to_rgb(self.ups(h)), mu, logvar


class Stage2D(_DBase):
    """Stage-II discriminator at ``size``: conv stack to 4x4 (channels capped at 32 ndf), then 3x3
    convs back down to 8 ndf, as in the paper."""

    def __init__(self, c_dim: int = 128, ndf: int = 64, size: int = 256):
        super().__init__()
        n_down = _log2_int(size, "stage-II size") - 2
        chans = [ndf * 2 ** min(i, 5) for i in range(n_down)]
        layers = [down_block(3, chans[0], bn=False)]
        layers += [down_block(a, b) for a, b in zip(chans[:-1], chans[1:])]
        ch = chans[-1]
        while ch > ndf * 8:
            layers += [conv3x3(ch, ch // 2), nn.BatchNorm2d(ch // 2), nn.LeakyReLU(0.2, True)]
            ch //= 2
        self.encode = nn.Sequential(*layers)
        self.size = size
        self.feat_ch = ch
        self._heads(c_dim)
