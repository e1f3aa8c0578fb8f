"""StackGAN networks (Zhang et al., ICCV 2017): conditioning augmentation, stage-I and stage-II.

Networks only: no losses beyond the KL term of the conditioning augmentation, no training.

- :class:`CondAugment`: sentence vector -> FC -> (mu, log sigma^2); c = mu + sigma * eps. The split
  comes straight from the linear layer (no ReLU before it, which would force log sigma^2 >= 0).
  ``stochastic=False`` is the no-CA ablation: c = mu.
- :class:`Stage1G`: [z; c] -> FC -> 4x4x(8 ngf) -> up-blocks -> ``image_size`` (16/32/64) RGB, tanh.
  ``g_cond="fusion"`` also feeds [z; c] to a conditional BatchNorm in every up-block (DF-GAN-like).
- :class:`Stage1D` / :class:`Stage2D`: a conv stack down to 4x4, then a conditional logit (image
  features joined with a spatially tiled text code, or with ``d_cond="projection"`` an inner
  product of the pooled features with a projection of the code) and an unconditional logit.
- :class:`Stage2G`: encodes the (frozen) stage-I picture to 1/4 of its side, joins a tiled c from its
  own CA, residual blocks, up-blocks to ``image_size * scale`` (scale 2 or 4).
- ``stage1_generator`` / ``stage2_generator`` / ``discriminator`` build them from a run's config.

Widths are free (``ngf``, ``ndf``), so the same code builds slim CPU models and the paper's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stackgan.models.vision import FrozenFeatures, VisionHeads
from stackgan.stackgan_config import (  # noqa: E402,F401 (one schema, no copies)
    D_CONDS, D_NORMS, G_CONDS, G_UPSAMPLES, PART_HEADS, STAGE1_SIZES, STAGE2_INPUT_POOLS)

STAGE2_SCALES = (2, 4)
NOISE_SEED_OFFSET = 7_919  # a seed's noise maps come from seed + this, apart from its z's stream
STAGE2_NOISE_SEED_OFFSET = 2 * NOISE_SEED_OFFSET  # stage II's maps: a stream apart from stage I's


def _log2_int(n: int, what: str) -> int:
    k = int(round(math.log2(n)))
    if 2**k != n:
        raise ValueError(f"{what} must be a power of two, got {n}")
    return k


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=False)


def upsample2(mode: str = "nearest") -> nn.Upsample:
    """x2 upsampling of an up-block: ``nearest`` (the paper's) or ``bilinear`` (--g-upsample)."""
    if mode not in G_UPSAMPLES:
        raise ValueError(f"upsample mode must be one of {G_UPSAMPLES}, got {mode!r}")
    return nn.Upsample(scale_factor=2, mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))


def up_block(cin: int, cout: int, depth: int = 1, upsample: str = "nearest") -> nn.Sequential:
    """x2 upsample (nearest by default) + 3x3 conv + BN + ReLU (``depth`` - 1 more conv + BN + ReLU at the
    new size)."""
    layers = [upsample2(upsample), conv3x3(cin, cout), nn.BatchNorm2d(cout), nn.ReLU(True)]
    for _ in range(depth - 1):
        layers += [conv3x3(cout, cout), nn.BatchNorm2d(cout), nn.ReLU(True)]
    return nn.Sequential(*layers)


class CondBatchNorm2d(nn.Module):
    """BatchNorm without its own affine; the scale and shift come from a condition vector
    (conditional BN): ``bn(x) * (1 + gamma(cond)) + beta(cond)``. With the DCGAN init the linear
    starts near zero, so the block starts as a plain BatchNorm."""

    def __init__(self, ch: int, cond_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(ch, affine=False)
        self.affine = nn.Linear(cond_dim, 2 * ch)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(cond.to(x.dtype)).chunk(2, dim=1)
        return self.bn(x) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]


def add_noise(h: torch.Tensor, strength: nn.Parameter | None, gain: float, noise: torch.Tensor | None
              ) -> torch.Tensor:
    """StyleGAN's noise input: ``gain * strength`` (per channel) times a [n, 1, s, s] map of Gaussian noise
    (drawn anew where ``noise`` is None) added to ``h``; ``h`` unchanged without a strength."""
    if strength is None:
        return h
    if noise is None:
        noise = torch.randn(h.shape[0], 1, h.shape[2], h.shape[3], device=h.device)
    return h + ((gain * strength)[None, :, None, None] * noise.to(h.device)).to(h.dtype)


class FusedConv(nn.Module):
    """A further layer of a fused up-block at its new size: 3x3 conv + conditional BN (+ noise) + ReLU."""

    def __init__(self, ch: int, cond_dim: int, noise: bool = False, noise_gain: float = 1.0):
        super().__init__()
        self.conv = conv3x3(ch, ch)
        self.norm = CondBatchNorm2d(ch, cond_dim)
        self.noise_strength = nn.Parameter(torch.zeros(ch)) if noise else None
        self.noise_gain = float(noise_gain)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return F.relu(add_noise(self.norm(self.conv(x), cond), self.noise_strength, self.noise_gain, noise))


class FusedUpBlock(nn.Module):
    """Nearest x2 upsample + 3x3 conv + conditional BN + ReLU: the text (and noise) modulate every
    resolution, as in DF-GAN's fusion blocks, instead of entering only at the first layer.
    ``noise``: StyleGAN's noise input (Karras et al. 2019): a map of per-pixel Gaussian noise, scaled by
    a learnt strength per channel (zero at the start), joins the normalised features before the ReLU;
    ``noise_gain`` multiplies the stored strength (an equalised learning rate: under Adam the strength
    moves ``noise_gain`` times as fast as G's other weights). ``depth`` > 1: as many convolutions at the
    new size (:class:`FusedConv`, each with its own noise input), two as in StyleGAN's, DF-GAN's and
    FastGAN's generators; the block's noise map then has one channel per convolution. ``upsample``: the x2
    upsampling's mode (:func:`upsample2`)."""

    def __init__(self, cin: int, cout: int, cond_dim: int, noise: bool = False, noise_gain: float = 1.0,
                 depth: int = 1, upsample: str = "nearest"):
        super().__init__()
        self.conv = nn.Sequential(upsample2(upsample), conv3x3(cin, cout))
        self.norm = CondBatchNorm2d(cout, cond_dim)
        self.noise_strength = nn.Parameter(torch.zeros(cout)) if noise else None
        self.noise_gain = float(noise_gain)
        self.more = nn.ModuleList([FusedConv(cout, cond_dim, noise, noise_gain) for _ in range(depth - 1)])

    def forward(self, x: torch.Tensor, cond: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        def layer_noise(k: int) -> torch.Tensor | None:
            return None if noise is None else noise[:, k:k + 1]

        h = F.relu(add_noise(self.norm(self.conv(x), cond), self.noise_strength, self.noise_gain, layer_noise(0)))
        for k, layer in enumerate(self.more, start=1):
            h = layer(h, cond, layer_noise(k))
        return h


def make_ups(chans: list[int], cond_dim: int = 0, extra_in: list[int] | None = None, noise: bool = False,
             noise_gain: float = 1.0, depth: int = 1, upsample: str = "nearest") -> nn.Module:
    """Up-blocks from ``chans[0]`` to ``chans[-1]`` channels: plain (``cond_dim`` 0, an
    ``nn.Sequential`` as in the paper) or fused (an ``nn.ModuleList`` of :class:`FusedUpBlock`, with
    noise inputs if ``noise``), ``depth`` convolutions each, doubling the size by ``upsample``.
    ``extra_in[i]``: channels of a skip joined to block i's output before block i + 1 (:func:`run_ups`)."""
    extra = list(extra_in or [0] * (len(chans) - 1))
    ins = [chans[0]] + [c + e for c, e in zip(chans[1:-1], extra)]
    pairs = list(zip(ins, chans[1:]))
    if cond_dim:
        return nn.ModuleList([FusedUpBlock(a, b, cond_dim, noise, noise_gain, depth, upsample) for a, b in pairs])
    return nn.Sequential(*[up_block(a, b, depth, upsample) for a, b in pairs])


def match_memory_format(x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """``x`` channels_last when ``module``'s first 4-d weight is (a model converted with
    ``.to(memory_format=torch.channels_last)`` for bf16), so that every layer after it runs in
    that format; unchanged otherwise."""
    for w in module.parameters():
        if w.dim() == 4:
            if w.shape[1] > 1 and w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous():
                return x.contiguous(memory_format=torch.channels_last)
            return x
    return x


def run_ups(ups: nn.Module, x: torch.Tensor, cond: torch.Tensor, skips: list[torch.Tensor] | None = None,
            noise: list[torch.Tensor] | None = None) -> torch.Tensor:
    """The up path; ``skips`` (coarsest first) are joined to the first blocks' outputs, in order;
    ``noise``: one map per block for blocks with noise inputs (drawn anew where not given)."""
    skips = list(skips or [])
    fused = isinstance(ups, nn.ModuleList)
    for i, block in enumerate(ups):
        x = block(x, cond, noise[i] if noise else None) if fused else block(x)
        if skips:
            x = torch.cat([x, skips.pop(0).to(x.dtype)], dim=1)
    return x


def seeded_noise_maps(sides: list[int], seeds: list[int], offset: int, depth: int = 1) -> list[torch.Tensor] | None:
    """Noise inputs' maps, one [n, depth, s, s] map per side in ``sides`` (a channel per convolution of
    the block), picture i's from a CPU generator seeded ``seeds[i] + offset`` alone (so a seed draws the
    same maps whatever the batch); None if no sides."""
    if not sides:
        return None
    per_seed = []
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed) + offset)
        per_seed.append([torch.randn(1, depth, s, s, generator=g) for s in sides])
    return [torch.cat(maps) for maps in zip(*per_seed)]


def random_noise_maps(sides: list[int], n: int, generator: torch.Generator, depth: int = 1
                      ) -> list[torch.Tensor] | None:
    """Noise inputs' maps for ``n`` pictures drawn from ``generator`` (not the global RNG); None if no sides."""
    if not sides:
        return None
    return [torch.randn(n, depth, s, s, generator=generator) for s in sides]


def down_block(cin: int, cout: int, bn: bool = True) -> nn.Sequential:
    """4x4 stride-2 conv (+ BN) + LeakyReLU(0.2)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2, True))
    return nn.Sequential(*layers)


def spectral_normalise(*modules: nn.Module | None) -> None:
    """Every convolution and linear inside ``modules`` divided by its largest singular value (Miyato et al.
    2018; one power iteration per training forward), through ``torch.nn.utils.parametrizations``."""
    for module in modules:
        for m in [] if module is None else list(module.modules()):
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.utils.parametrizations.spectral_norm(m)


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
    the same transform). With ``part_dim`` the last ``part_dim`` values are a parts code
    (:mod:`stackgan.text.parts`), not standardised but scaled by ``part_scale`` so that it weighs
    as much as the sentence vector.
    """

    def __init__(self, emb_dim: int, c_dim: int = 128, stochastic: bool = True, part_dim: int = 0):
        super().__init__()
        if not 0 <= part_dim < emb_dim:
            raise ValueError(f"part_dim must be in [0, {emb_dim}), got {part_dim}")
        self.emb_dim, self.c_dim, self.stochastic, self.part_dim = emb_dim, c_dim, stochastic, part_dim
        # without CA (the ablation) the FC gives mu alone and c = mu
        self.fc = nn.Linear(emb_dim, 2 * c_dim if stochastic else c_dim)
        self.register_buffer("emb_shift", torch.zeros(emb_dim))
        self.register_buffer("emb_scale", torch.ones(()))
        if part_dim:
            self.register_buffer("part_scale", torch.ones(()))

    @property
    def text_dim(self) -> int:
        """Size of the sentence-vector block (the whole input without parts)."""
        return self.emb_dim - self.part_dim

    @torch.no_grad()
    def set_normalization(self, train_emb: torch.Tensor) -> None:
        """Centre on the training names' mean vector and scale to unit spread per dimension; a parts
        code is scaled to the standardised sentence vectors' length."""
        e = train_emb.detach().float().to(self.emb_shift.device)[:, :self.text_dim]
        mean = e.mean(0)
        spread = (e - mean).pow(2).mean().sqrt()
        self.emb_shift.zero_()
        self.emb_shift[:self.text_dim].copy_(mean)
        self.emb_scale.fill_(1.0 / float(spread) if float(spread) > 1e-8 else 1.0)
        if self.part_dim:
            code_len = train_emb.detach().float()[:, self.text_dim:].norm(dim=1).mean()
            self.part_scale.fill_(math.sqrt(self.text_dim) / float(code_len) if float(code_len) > 0 else 1.0)

    def standardise(self, emb: torch.Tensor) -> torch.Tensor:
        x = (emb - self.emb_shift.to(emb.dtype)) * self.emb_scale.to(emb.dtype)
        if self.part_dim:
            t = self.text_dim
            x = torch.cat([x[:, :t], emb[:, t:] * self.part_scale.to(emb.dtype)], dim=1)
        return x

    def encode(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mu, log sigma^2); log sigma^2 is None without CA."""
        x = self.standardise(emb)
        if not self.stochastic:
            return self.fc(x), None
        mu, logvar = self.fc(x).chunk(2, dim=1)
        return mu, logvar

    def forward(self, emb: torch.Tensor, eps: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        mu, logvar = self.encode(emb)
        if logvar is None:
            return mu, mu, None
        if eps is None:
            eps = torch.randn_like(mu)
        c = mu + torch.exp(0.5 * logvar) * eps.to(mu.dtype)
        return c, mu, logvar


def _up_channels(start: int, n: int, floor: int = 4) -> list[int]:
    chans = [start]
    for _ in range(n):
        chans.append(max(chans[-1] // 2, floor))
    return chans


class SkipExcitation(nn.Module):
    """FastGAN's skip-layer excitation (Liu et al., ICLR 2021): a low-resolution feature map, pooled to
    4x4, gates the channels of a feature map 8x larger: ``high * sigmoid(f(low))``. The coarse layout
    reaches the fine layers directly, which is what lets FastGAN train on 100 pictures."""

    def __init__(self, cin_low: int, ch_high: int):
        super().__init__()
        self.net = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Conv2d(cin_low, ch_high, 4, bias=False),
                                 nn.LeakyReLU(0.1, True), nn.Conv2d(ch_high, ch_high, 1, bias=False), nn.Sigmoid())

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return high * self.net(low)


class PartMaps(nn.Module):
    """``--part-layer``: a learnt feature map per value of every part, [part_dim] -> [ch, side, side]: the parts
    code (one-hot per part, zeros where a part is unknown) picks and sums its values' maps. Added to G's
    features of that side, a part is drawn from the same features in the same place whatever the other
    parts are, which the conditional BatchNorm (a scale and shift of whole channels) cannot place."""

    def __init__(self, part_dim: int, ch: int, side: int):
        super().__init__()
        self.ch, self.side = ch, side
        self.maps = nn.Linear(part_dim, ch * side * side, bias=False)

    def forward(self, parts: torch.Tensor) -> torch.Tensor:
        return self.maps(parts).view(-1, self.ch, self.side, self.side)


class Stage1G(nn.Module):
    """Stage-I generator: (z, text embedding) -> low-resolution picture in [-1, 1]."""

    SLE_SPAN = 3  # a skip-layer excitation gates the feature map 3 up-blocks (8x the size) above its source

    def __init__(self, emb_dim: int, c_dim: int = 128, z_dim: int = 100, ngf: int = 64, image_size: int = 64,
                 g_cond: str = "input", ca: bool = True, sle: bool = False, part_dim: int = 0,
                 part_layer: int = 0, noise: bool = False, noise_gain: float = 1.0, depth: int = 1,
                 upsample: str = "nearest"):
        super().__init__()
        if image_size not in STAGE1_SIZES:
            raise ValueError(f"stage-I image size must be one of {STAGE1_SIZES}, got {image_size}")
        if g_cond not in G_CONDS:
            raise ValueError(f"g_cond must be one of {G_CONDS}, got {g_cond!r}")
        if noise and g_cond != "fusion":
            raise ValueError("noise inputs join G's fused up-blocks: they need g_cond fusion")
        if depth < 1:
            raise ValueError(f"depth (convolutions per up-block) must be at least 1, got {depth}")
        self.emb_dim, self.c_dim, self.z_dim, self.ngf, self.image_size = emb_dim, c_dim, z_dim, ngf, image_size
        self.depth = depth
        self.g_cond = g_cond
        self.ca = CondAugment(emb_dim, c_dim, stochastic=ca, part_dim=part_dim)
        n_up = _log2_int(image_size, "image size") - 2
        chans = _up_channels(ngf * 8, n_up)
        self.fc = nn.Sequential(nn.Linear(z_dim + c_dim, chans[0] * 16, bias=False),
                                nn.BatchNorm1d(chans[0] * 16), nn.ReLU(True))
        self.ups = make_ups(chans, z_dim + c_dim if g_cond == "fusion" else 0, noise=noise,
                            noise_gain=noise_gain, depth=depth, upsample=upsample)
        self.noise_sides = [4 * 2**j for j in range(1, len(chans))] if noise else []
        self.to_rgb = nn.Sequential(conv3x3(chans[-1], 3), nn.Tanh())
        # feature map j (0: the 4x4 input, j: after up-block j) gated by map j - SLE_SPAN, where there is one
        self.sle = nn.ModuleDict({str(j): SkipExcitation(chans[j - self.SLE_SPAN], chans[j])
                                  for j in range(self.SLE_SPAN, len(chans))}) if sle else None
        # --part-layer: the parts' maps join the output of up-block j (side 4 * 2^j)
        self.part_at, self.part_maps = 0, None
        if part_layer:
            if not part_dim:
                raise ValueError("part_layer needs a parts code (part_dim > 0)")
            self.part_at = _log2_int(part_layer, "part layer") - 2
            if not 1 <= self.part_at < len(chans) - 1:
                raise ValueError(f"part_layer must be between 8 and half the image size, got {part_layer}")
            self.part_maps = PartMaps(part_dim, chans[self.part_at], part_layer)

    def draw_noise(self, seeds: list[int]) -> list[torch.Tensor] | None:
        """The noise inputs' maps of one picture per seed (one [n, depth, s, s] map per up-block, a channel per
        convolution, from a CPU generator per seed), so a seed draws the same picture every time; None without
        noise inputs."""
        return seeded_noise_maps(self.noise_sides, seeds, NOISE_SEED_OFFSET, self.depth)

    def random_noise(self, n: int, generator: torch.Generator) -> list[torch.Tensor] | None:
        """The noise inputs' maps of ``n`` pictures from ``generator``; None without noise inputs."""
        return random_noise_maps(self.noise_sides, n, generator, self.depth)

    def forward(self, z: torch.Tensor, emb: torch.Tensor, eps: torch.Tensor | None = None,
                noise: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (images [B, 3, S, S], mu, logvar). ``noise``: the noise inputs' maps
        (:meth:`draw_noise`); drawn anew from the global generator where not given."""
        c, mu, logvar = self.ca(emb, eps)
        zc = torch.cat([z, c.to(z.dtype)], dim=1)
        h = match_memory_format(self.fc(zc).view(z.shape[0], -1, 4, 4), self.ups)
        if self.sle is None and self.part_maps is None:
            return self.to_rgb(run_ups(self.ups, h, zc, noise=noise)), mu, logvar
        feats = [h]
        for j, block in enumerate(self.ups, start=1):
            h = (block(h, zc, noise[j - 1] if noise else None) if isinstance(self.ups, nn.ModuleList)
                 else block(h))
            if j == self.part_at:
                h = h + self.part_maps(emb[:, self.ca.text_dim:]).to(h.dtype)
            if self.sle is not None and str(j) in self.sle:
                h = self.sle[str(j)](feats[j - self.SLE_SPAN], h)
            feats.append(h)
        return self.to_rgb(h), mu, logvar


class ProjectionLogits(nn.Module):
    """A projection discriminator's conditional logit (Miyato & Koyama 2018), for a text code:
    ``w . phi + <V c, phi>``, with ``phi`` the 4x4 features summed over space. The match between
    picture and name is an inner product, a stronger signal than features concatenated with c."""

    def __init__(self, feat_ch: int, c_dim: int):
        super().__init__()
        self.c_dim = c_dim
        self.linear = nn.Linear(feat_ch, 1)
        self.embed = nn.Linear(c_dim, feat_ch, bias=False)

    def forward(self, feats: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if c is None:
            raise ValueError("conditional logits need a text code")
        phi = feats.sum(dim=(2, 3))
        return self.linear(phi).view(-1) + (self.embed(c.to(phi.dtype)) * phi).sum(dim=1)

    def name_logits(self, feats: torch.Tensor, c_all: torch.Tensor) -> torch.Tensor:
        """[B, N]: the conditional logit of every picture with each of N text codes, less the part that
        does not depend on the name (``w . phi``); a softmax over them asks which name the picture shows."""
        phi = feats.sum(dim=(2, 3))
        return phi @ self.embed(c_all.to(phi.dtype)).t()


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


class MinibatchStd(nn.Module):
    """StyleGAN's minibatch standard deviation (Karras et al., 2018): the pictures are split into groups of
    ``group`` (the largest divisor of the batch up to it), and each picture's features gain one channel, the
    standard deviation of every feature over its group, averaged. A generator that draws every picture alike
    (one table, one bowl, whatever z) gives fakes a smaller value than real photos, which D can then see."""

    def __init__(self, group: int):
        super().__init__()
        if group < 2:
            raise ValueError(f"minibatch std needs groups of at least 2, got {group}")
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        g = max(d for d in range(1, min(self.group, b) + 1) if b % d == 0)
        y = x.float().view(g, b // g, *x.shape[1:])  # picture j * (b // g) + k is member j of group k
        std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3)).repeat(g)  # [b]: its group's
        return torch.cat([x, std.to(x.dtype).view(b, 1, 1, 1).expand(b, 1, *x.shape[2:])], dim=1)


class _DBase(nn.Module):
    """Shared head: ``features(img)``, ``cond(feats, c)``, ``uncond(feats)``."""

    encode: nn.Module
    feat_ch: int
    batch_std: MinibatchStd | None  # set by each subclass (an nn.Module attribute: no class default)

    def _heads(self, c_dim: int, d_cond: str = "concat", part_dim: int = 0, part_head: str = "pooled",
               part_twin: bool = False) -> None:
        if d_cond not in D_CONDS:
            raise ValueError(f"d_cond must be one of {D_CONDS}, got {d_cond!r}")
        if part_head not in PART_HEADS:
            raise ValueError(f"part_head must be one of {PART_HEADS}, got {part_head!r}")
        self.cond_head = ProjectionLogits(self.feat_ch, c_dim) if d_cond == "projection" else CondLogits(self.feat_ch, c_dim)
        self.uncond_head = CondLogits(self.feat_ch, 0)
        # --part-loss: logits of every value of every part of the name (one softmax per part, see the loss);
        # pooled: a linear read of the averaged features; spatial: a read of each place (a 1x1 convolution)
        self.part_head_kind = part_head
        if part_twin and not part_dim:
            raise ValueError("part_twin needs a parts head (part_dim > 0)")
        make = (lambda: nn.Conv2d(self.feat_ch, part_dim, 1)) if part_head == "spatial" else (
            lambda: nn.Linear(self.feat_ch, part_dim))
        self.part_head = make() if part_dim else None
        # --part-twin: the same read, trained on G's pictures (TAC-GAN's twin classifier)
        self.twin_head = make() if part_twin else None

    def part_logits(self, feats: torch.Tensor, twin: bool = False) -> torch.Tensor:
        """[B, part_dim]: the parts the pictures show, read from the 4x4 features: from their spatial mean
        (pooled), or at each place and pooled by a soft maximum, log-mean-exp (spatial), so that one place
        that shows a value is enough to read it. ``twin``: by the head trained on G's pictures (--part-twin)."""
        head = self.twin_head if twin else self.part_head
        if head is None:
            raise ValueError("this discriminator has no " + ("twin parts head (--part-twin)" if twin
                                                               else "parts head (--part-loss 0)"))
        if self.part_head_kind == "spatial":
            per_place = head(feats.float()).flatten(2)  # [B, part_dim, H*W]
            return torch.logsumexp(per_place, dim=2) - math.log(per_place.shape[2])
        return head(feats.float().mean(dim=(2, 3)))

    def features(self, img: torch.Tensor) -> torch.Tensor:
        feats = self.encode(img)
        return feats if self.batch_std is None else self.batch_std(feats)

    def features_with_maps(self, img: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """:meth:`features`, and every map of the down path, largest first (what --d-recon decodes)."""
        maps, x = [], img
        for layer in self.encode:
            x = layer(x)
            maps.append(x)
        return (x if self.batch_std is None else self.batch_std(x)), maps

    def cond(self, feats: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.cond_head(feats, c)

    def uncond(self, feats: torch.Tensor) -> torch.Tensor:
        return self.uncond_head(feats)

    def forward(self, img: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features(img)
        return self.cond(feats, c), self.uncond(feats)


def quarter_of(x: torch.Tensor, quarter: int) -> torch.Tensor:
    """Quarter ``quarter`` (0-3: top left, top right, bottom left, bottom right) of square maps or pictures."""
    h = x.shape[-1] // 2
    r, c = divmod(quarter, 2)
    return x[..., r * h:(r + 1) * h, c * h:(c + 1) * h]


def decoder(cin: int, n_up: int) -> nn.Sequential:
    """A small decoder of D's features (FastGAN's self-supervised D): ``n_up`` up-blocks halving the channels
    (down to 16), then a 3x3 convolution to RGB and tanh."""
    chans = [cin] + [max(cin // 2**(i + 1), 16) for i in range(n_up)]
    layers: list[nn.Module] = [up_block(a, b) for a, b in zip(chans[:-1], chans[1:])]
    return nn.Sequential(*layers, nn.Conv2d(chans[-1], 3, 3, 1, 1), nn.Tanh())


class Stage1D(_DBase):
    """Stage-I discriminator: conv stack from ``image_size`` down to 4x4 (ndf, 2ndf, ... channels).

    ``recon`` (--d-recon): FastGAN's self-supervised D (Liu et al. 2021): two decoders redraw the picture D
    was shown from its features, the whole picture at half size from the 8x8 map, and one quarter of it at
    full size from that quarter of the 16x16 map, so D must keep the shapes and the fine detail, not only
    what tells real from fake today.

    ``patch`` (--d-patch): one more, unconditional verdict per place of the 16x16 map (PatchGAN), so D judges
    the local look of every patch besides the whole picture.

    ``norm`` (--d-norm): ``batch``, DCGAN's BatchNorm after every convolution but the first, or ``spectral``,
    no BatchNorm and every convolution and linear of the down path and the verdict heads spectrally
    normalised (SNGAN; the projection discriminator's own setting), or ``spectral-trunk``, the same on the down
    path (and the patch head) only, so the verdict heads, the name's projection among them, are not held to
    a unit gain. The parts heads and the decoders keep their plain layers.

    ``vision`` (--d-vision): verdict heads on a frozen ImageNet-trained network's maps of the picture
    (:mod:`stackgan.models.vision`; Vision-aided GAN, Projected GAN), beside D's own; the network reads the
    picture enlarged to ``vision_size`` when given (--d-vision-size)."""

    def __init__(self, c_dim: int = 128, ndf: int = 64, image_size: int = 64, d_cond: str = "concat",
                 part_dim: int = 0, part_head: str = "pooled", part_twin: bool = False, mbstd: int = 0,
                 recon: bool = False, patch: bool = False, norm: str = "batch", vision: bool = False,
                 vision_size: int | None = None):
        super().__init__()
        if image_size not in STAGE1_SIZES:
            raise ValueError(f"stage-I image size must be one of {STAGE1_SIZES}, got {image_size}")
        if norm not in D_NORMS:
            raise ValueError(f"norm must be one of {D_NORMS}, got {norm!r}")
        self.image_size = image_size
        n_down = _log2_int(image_size, "image size") - 2
        chans = [ndf * 2**i for i in range(n_down)]
        layers = [down_block(3, chans[0], bn=False)]
        layers += [down_block(a, b, bn=norm == "batch") for a, b in zip(chans[:-1], chans[1:])]
        self.encode = nn.Sequential(*layers)
        self.batch_std = MinibatchStd(mbstd) if mbstd else None
        self.feat_ch = chans[-1] + (1 if mbstd else 0)
        self._heads(c_dim, d_cond, part_dim, part_head, part_twin)
        if recon and image_size < 32:
            raise ValueError(f"recon decodes D's 16x16 map: stage-I pictures of 32 or 64 px, got {image_size}")
        n_up = _log2_int(image_size, "image size") - 4  # 8x8 -> half size; a quarter of 16x16 -> half size
        self.recon_whole = decoder(chans[-2], n_up) if recon else None
        self.recon_part = decoder(chans[-3], n_up) if recon else None
        if patch and image_size < 32:
            raise ValueError(f"patch reads D's 16x16 map: stage-I pictures of 32 or 64 px, got {image_size}")
        # --d-patch: a verdict per place of the 16x16 map (PatchGAN, Isola et al. 2017), each seeing ~18 px
        self.patch_head = nn.Conv2d(chans[-3], 1, 3, 1, 1) if patch else None
        if norm != "batch":
            heads = (self.cond_head, self.uncond_head) if norm == "spectral" else ()
            spectral_normalise(self.encode, self.patch_head, *heads)
        # --d-vision: the frozen network is a plain attribute (not in the state dict nor the optimiser)
        self.vision_heads = VisionHeads(c_dim, vision_size or image_size) if vision else None
        self.vision_net = FrozenFeatures(vision_size) if vision else None

    def vision_features(self, img: torch.Tensor) -> list[torch.Tensor]:
        """The vision heads' features of ``img``: the frozen network's maps (strides 4, 8, 16), each through its
        head's convolutions; ``self.vision_heads(feats, c)`` gives the logits."""
        if self.vision_heads is None or self.vision_net is None:
            raise ValueError("this discriminator has no vision heads (--d-vision 0)")
        return self.vision_heads.features(self.vision_net(img))

    def patch_logits(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """[B, 1, 16, 16]: real-or-fake logits of every place of the down path's 16x16 map (``maps`` from
        :meth:`features_with_maps`), each place judging a patch of about 18 px: rims, pieces, table grain."""
        if self.patch_head is None:
            raise ValueError("this discriminator has no patch head (--d-patch 0)")
        return self.patch_head(maps[-3])

    def reconstruct(self, maps: list[torch.Tensor], quarter: int) -> tuple[torch.Tensor, torch.Tensor]:
        """From the down path's ``maps`` (:meth:`features_with_maps`): (the whole picture redrawn at half
        size, quarter ``quarter`` (0-3: top left, top right, bottom left, bottom right) redrawn at full size)."""
        if self.recon_whole is None or self.recon_part is None:
            raise ValueError("this discriminator has no decoders (--d-recon 0)")
        return self.recon_whole(maps[-2]), self.recon_part(quarter_of(maps[-3], quarter))


class Stage2G(nn.Module):
    """Stage-II generator: (stage-I picture, text embedding) -> picture ``scale`` times larger.

    ``residual=True`` draws a correction to the bilinearly upsampled stage-I picture instead of a
    new picture: ``tanh(atanh(up(I)) + delta)``. With ``delta`` near 0 at the start, stage II begins
    as a plain upsample of stage I and only has to learn the detail, which a small budget can do;
    the paper's ``residual=False`` draws every pixel anew.
    ``noise``: StyleGAN's noise inputs in the fused up-blocks, as in :class:`Stage1G`.
    ``input_pool``: the stage-I picture is read average-pooled by this factor and enlarged back (:meth:`seen`),
    so what stage I draws below that scale does not reach the redraw."""

    def __init__(self, emb_dim: int, c_dim: int = 128, ngf: int = 64, image_size: int = 64, scale: int = 4,
                 r_num: int = 2, g_cond: str = "input", ca: bool = True, residual: bool = False,
                 skips: bool = False, part_dim: int = 0, noise: bool = False, noise_gain: float = 1.0,
                 input_pool: int = 1):
        super().__init__()
        if image_size not in STAGE1_SIZES:
            raise ValueError(f"stage-I image size must be one of {STAGE1_SIZES}, got {image_size}")
        if scale not in STAGE2_SCALES:
            raise ValueError(f"stage-II scale must be one of {STAGE2_SCALES}, got {scale}")
        if g_cond not in G_CONDS:
            raise ValueError(f"g_cond must be one of {G_CONDS}, got {g_cond!r}")
        if noise and g_cond != "fusion":
            raise ValueError("noise inputs join G's fused up-blocks: they need g_cond fusion")
        if input_pool not in STAGE2_INPUT_POOLS:
            raise ValueError(f"input_pool must be one of {STAGE2_INPUT_POOLS}, got {input_pool}")
        self.emb_dim, self.c_dim, self.ngf, self.g_cond, self.residual_out = emb_dim, c_dim, ngf, g_cond, residual
        self.input_pool = input_pool
        self.image_size, self.scale, self.out_size = image_size, scale, image_size * scale
        self.ca = CondAugment(emb_dim, c_dim, stochastic=ca, part_dim=part_dim)
        self.skips = skips
        self.encoder = nn.Sequential(  # S -> S/4, 4 ngf channels
            conv3x3(3, ngf), nn.ReLU(True),  # S, ngf (index 1: the S skip)
            nn.Conv2d(ngf, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),  # S/2 (index 4)
            nn.Conv2d(ngf * 2, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True))
        self.joint = nn.Sequential(conv3x3(ngf * 4 + c_dim, ngf * 4), nn.BatchNorm2d(ngf * 4), nn.ReLU(True))
        self.residual = nn.Sequential(*[ResBlock(ngf * 4) for _ in range(r_num)])
        n_up = 2 + _log2_int(scale, "scale")
        chans = _up_channels(ngf * 4, n_up)
        # skips: the encoder's S/2 and S feature maps join the up path where it reaches their size (a U-Net),
        # so the detail is drawn where stage I put each edge instead of from the S/4 map alone
        extra = [ngf * 2, ngf] + [0] * (n_up - 2) if skips else [0] * n_up
        self.ups = make_ups(chans, c_dim if g_cond == "fusion" else 0, extra_in=extra[:n_up], noise=noise,
                            noise_gain=noise_gain)
        self.noise_sides = [image_size // 4 * 2**j for j in range(1, n_up + 1)] if noise else []
        # the same key (to_rgb.0) either way; the residual form applies its own tanh
        self.to_rgb = nn.Sequential(conv3x3(chans[-1], 3)) if residual else nn.Sequential(conv3x3(chans[-1], 3),
                                                                                           nn.Tanh())

    def draw_noise(self, seeds: list[int]) -> list[torch.Tensor] | None:
        """The noise inputs' maps of one picture per seed (a stream apart from stage I's); None without them."""
        return seeded_noise_maps(self.noise_sides, seeds, STAGE2_NOISE_SEED_OFFSET)

    def random_noise(self, n: int, generator: torch.Generator) -> list[torch.Tensor] | None:
        """The noise inputs' maps of ``n`` pictures from ``generator``; None without noise inputs."""
        return random_noise_maps(self.noise_sides, n, generator)

    def seen(self, stage1_img: torch.Tensor) -> torch.Tensor:
        """The stage-I picture as stage II reads it: as drawn, or with ``input_pool`` above 1 average-pooled by
        it and enlarged back to its size bilinearly (the same size, so the encoder is the same network)."""
        if self.input_pool == 1:
            return stage1_img
        low = F.avg_pool2d(stage1_img, self.input_pool)
        return F.interpolate(low, scale_factor=self.input_pool, mode="bilinear", align_corners=False)

    def forward(self, stage1_img: torch.Tensor, emb: torch.Tensor, eps: torch.Tensor | None = None,
                noise: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (images [B, 3, S*scale, S*scale], mu, logvar). ``stage1_img`` gets no gradient.
        ``noise``: the noise inputs' maps (:meth:`draw_noise`); drawn anew where not given."""
        low = self.seen(stage1_img.detach())
        skips = []
        h = low
        for i, layer in enumerate(self.encoder):
            h = layer(h)
            if self.skips and i in (1, 4):
                skips.insert(0, h)  # S/2 first, then S: the order the up path reaches them
        c, mu, logvar = self.ca(emb, eps)
        tiled = c.to(h.dtype)[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])
        h = self.residual(self.joint(torch.cat([h, tiled], dim=1)))
        out = self.to_rgb(run_ups(self.ups, h, c, skips, noise=noise))
        if self.residual_out:
            up = F.interpolate(low.to(out.dtype), scale_factor=self.scale, mode="bilinear", align_corners=False)
            out = torch.tanh(torch.atanh(up.clamp(-0.999, 0.999)) + out)
        return out, mu, logvar


class Stage2D(_DBase):
    """Stage-II discriminator at ``size``: conv stack to 4x4 (channels capped at 32 ndf), then 3x3
    convs back down to 8 ndf, as in the paper."""

    def __init__(self, c_dim: int = 128, ndf: int = 64, size: int = 256, d_cond: str = "concat", part_dim: int = 0,
                 part_head: str = "pooled", part_twin: bool = False, mbstd: int = 0):
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
        self.batch_std = MinibatchStd(mbstd) if mbstd else None
        self.feat_ch = ch + (1 if mbstd else 0)
        self._heads(c_dim, d_cond, part_dim, part_head, part_twin)


# -- builders from a run's configuration (any object with the StackGANConfig fields) ---------------
def stage1_generator(cfg) -> Stage1G:
    return Stage1G(cfg.emb_dim, cfg.c_dim, cfg.z_dim, cfg.ngf, cfg.image_size, cfg.g_cond, cfg.ca,
                   sle=getattr(cfg, "sle", False), part_dim=getattr(cfg, "part_dim", 0),
                   part_layer=getattr(cfg, "part_layer", 0), noise=getattr(cfg, "g_noise", False),
                   noise_gain=getattr(cfg, "g_noise_gain", 1.0), depth=getattr(cfg, "g_depth", 1),
                   upsample=getattr(cfg, "g_upsample", "nearest"))


def stage2_generator(cfg) -> Stage2G:
    return Stage2G(cfg.emb_dim, cfg.c_dim, cfg.ngf, cfg.image_size, cfg.stage2_scale, cfg.r_num, cfg.g_cond, cfg.ca,
                   cfg.stage2_residual, getattr(cfg, "stage2_skips", False), getattr(cfg, "part_dim", 0),
                   noise=getattr(cfg, "g_noise", False), noise_gain=getattr(cfg, "g_noise_gain", 1.0),
                   input_pool=getattr(cfg, "stage2_input_pool", 1))


def discriminator(cfg) -> _DBase:
    """The discriminator of ``cfg.stage`` (stage I at ``image_size``, stage II at its output size)."""
    part_dim = getattr(cfg, "part_dim", 0) if getattr(cfg, "part_loss", 0.0) > 0 else 0
    head, twin = getattr(cfg, "part_head", "pooled"), bool(part_dim and getattr(cfg, "part_twin", False))
    mbstd = getattr(cfg, "mbstd", 0)
    if cfg.stage == 1:
        return Stage1D(cfg.c_dim, cfg.ndf, cfg.image_size, cfg.d_cond, part_dim, head, twin, mbstd,
                       recon=getattr(cfg, "d_recon", 0.0) > 0, patch=getattr(cfg, "d_patch", 0.0) > 0,
                       norm=getattr(cfg, "d_norm", "batch"), vision=getattr(cfg, "d_vision", 0.0) > 0,
                       vision_size=getattr(cfg, "d_vision_size", 0) or None)
    return Stage2D(cfg.c_dim, cfg.ndf, cfg.out_size, cfg.d_cond, part_dim, head, twin, mbstd)
