"""The DCGAN networks (Radford, Metz & Chintala 2015): an unconditional baseline.

Generator: ``z`` -> a transposed convolution to a small ``h0 x w0`` map, then stride-2 transposed
convolutions that double it up to the image size, BatchNorm + ReLU between, ``tanh`` at the end.
Discriminator: stride-2 convolutions with LeakyReLU(0.2) (BatchNorm on all but the first), then
one convolution over the last map to a single logit. Weights are drawn from N(0, 0.02). Kernels are
4x4 by default (pytorch/examples; cheaper) or 5x5 (the paper's code and DCGAN-tensorflow).

Sizes need not be powers of two nor square: :func:`plan_sizes` picks the number of stride-2
stages and the map size at every stage (``ceil`` halving from the image size, as TensorFlow's
"SAME" padding does), and each (transposed) convolution gets the padding and ``output_padding``
that land exactly on the next size, so 96 starts from 6x6 and 64x74 from 4x5 with no crop or resize.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch
from torch import nn

KERNELS = (4, 5)
MIN_START = 4  # the smallest side of the first feature map (DCGAN's 4x4)
MAX_MULT = 8  # widths go up to 8 x ngf / ndf, as in the paper's 64 px nets


@dataclasses.dataclass(frozen=True)
class SizePlan:
    """Feature-map sizes from the first map (index 0) to the image (index ``stages``)."""

    heights: tuple[int, ...]
    widths: tuple[int, ...]

    @property
    def stages(self) -> int:
        return len(self.heights) - 1

    @property
    def start(self) -> tuple[int, int]:
        return self.heights[0], self.widths[0]


def plan_sizes(height: int, width: int, min_start: int = MIN_START) -> SizePlan:
    """The most stride-2 stages whose first map still has a smaller side >= ``min_start``."""
    if min(height, width) < 2 * min_start:
        raise ValueError(f"image size {height}x{width} is too small: each side must be >= {2 * min_start}")
    stages = 1
    while min(math.ceil(height / 2 ** (stages + 1)), math.ceil(width / 2 ** (stages + 1))) >= min_start:
        stages += 1
    hs, ws = [height], [width]
    for _ in range(stages):
        hs.append(math.ceil(hs[-1] / 2))
        ws.append(math.ceil(ws[-1] / 2))
    return SizePlan(tuple(reversed(hs)), tuple(reversed(ws)))


def widths(base: int, stages: int) -> list[int]:
    """Channel widths of the maps at stage 0 (the smallest map) .. stages - 1 (the largest)."""
    return [base * min(MAX_MULT, 2 ** (stages - 1 - i)) for i in range(stages)]


def up_padding(n: int, target: int, kernel: int) -> tuple[int, int]:
    """(padding, output_padding) of a stride-2 transposed convolution from ``n`` to ``target``.

    Its output is (n - 1) * 2 - 2 * padding + kernel + output_padding, output_padding in {0, 1}.
    """
    r = 2 * n - 2 + kernel - target  # = 2 * padding - output_padding
    pad, out_pad = (r // 2, 0) if r % 2 == 0 else ((r + 1) // 2, 1)
    if pad < 0:
        raise ValueError(f"cannot go from {n} to {target} with kernel {kernel}")
    return pad, out_pad


def down_padding(n: int, target: int, kernel: int) -> int:
    """The padding of a stride-2 convolution from ``n`` to ``target``: (n + 2p - k) // 2 + 1."""
    for pad in range(kernel):
        if (n + 2 * pad - kernel) // 2 + 1 == target:
            return pad
    raise ValueError(f"cannot go from {n} to {target} with kernel {kernel}")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # normalises each sample over (C, H, W): safe with a gradient penalty
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


class Generator(nn.Module):
    def __init__(self, z_dim: int = 100, channels: int = 3, height: int = 64, width: int = 64, ngf: int = 64,
                 kernel: int = 4):
        super().__init__()
        self.z_dim, self.channels, self.height, self.width = z_dim, channels, height, width
        plan = plan_sizes(height, width)
        self.plan = plan
        chans = widths(ngf, plan.stages)
        layers: list[nn.Module] = [
            # project and reshape: a transposed convolution from 1x1 to the first map
            nn.ConvTranspose2d(z_dim, chans[0], kernel_size=plan.start, stride=1, padding=0, bias=False),
            nn.BatchNorm2d(chans[0]),
            nn.ReLU(True),
        ]
        outs = chans[1:] + [channels]
        for i in range(plan.stages):
            ph, oph = up_padding(plan.heights[i], plan.heights[i + 1], kernel)
            pw, opw = up_padding(plan.widths[i], plan.widths[i + 1], kernel)
            last = i == plan.stages - 1
            layers.append(nn.ConvTranspose2d(chans[i], outs[i], kernel, stride=2, padding=(ph, pw),
                                             output_padding=(oph, opw), bias=last))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(outs[i]), nn.ReLU(True)]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], self.z_dim, 1, 1))


class Discriminator(nn.Module):
    """Returns one logit per image (no sigmoid: the losses work on logits)."""

    def __init__(self, channels: int = 3, height: int = 64, width: int = 64, ndf: int = 64, norm: str = "batch",
                 kernel: int = 4):
        super().__init__()
        plan = plan_sizes(height, width)
        self.plan = plan
        chans = list(reversed(widths(ndf, plan.stages)))  # ndf, 2 ndf, ... at ever smaller maps
        layers: list[nn.Module] = []
        c_in = channels
        hs, ws = plan.heights[::-1], plan.widths[::-1]  # the plan's sizes, image first
        for i, c in enumerate(chans):
            normed = i > 0 and norm != "none"
            pad = (down_padding(hs[i], hs[i + 1], kernel), down_padding(ws[i], ws[i + 1], kernel))
            layers.append(nn.Conv2d(c_in, c, kernel, stride=2, padding=pad, bias=not normed))
            if normed:
                layers.append(_norm(norm, c))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in = c
        layers.append(nn.Conv2d(c_in, 1, kernel_size=plan.start, stride=1, padding=0))
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(x.shape[0])


def generator(cfg) -> Generator:
    """The generator a DCGAN run's config (:class:`~stackgan.dcgan_config.DCGANConfig`) describes,
    for inference (the trainer builds the same one)."""
    h, w = cfg.size
    return Generator(z_dim=cfg.z_dim, channels=cfg.channels, height=h, width=w, ngf=cfg.ngf, kernel=cfg.kernel_size)


def make_z(seeds: Sequence[int], z_dim: int, dist: str = "uniform",
           device: str | torch.device = "cpu", truncation: float = 1.0) -> torch.Tensor:
    """One latent vector per seed, drawn on the CPU so that a seed gives the same ``z`` on any device.

    ``dist`` is ``uniform`` (U[-1, 1], the paper's choice) or ``normal``. ``truncation`` < 1 pulls
    every ``z`` towards the distribution's mean (0) by that factor.
    """
    out = torch.empty(len(seeds), z_dim)
    for i, s in enumerate(seeds):
        g = torch.Generator().manual_seed(int(s))
        if dist == "uniform":
            out[i] = torch.rand(z_dim, generator=g) * 2 - 1
        elif dist == "normal":
            out[i] = torch.randn(z_dim, generator=g)
        else:
            raise ValueError(f"unknown z distribution {dist!r}")
    return (out * truncation).to(device)


def sample_z(n: int, z_dim: int, dist: str, device: torch.device | str) -> torch.Tensor:
    """A fresh batch of latents from the global RNG (training)."""
    if dist == "uniform":
        return torch.rand(n, z_dim, device=device) * 2 - 1
    return torch.randn(n, z_dim, device=device)
