"""A classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017): can a small CNN tell pictures from photos?

The FIDs compare feature statistics. The menu's painterly pictures carry the renders' amount of edge and grain,
put in the wrong places, and the FIDs place them nearer the renders than stage II's crisp redraws of renders
pooled to 64 px (README, stop 41). A probe trained to tell two sets apart sees any difference it can learn:
half of each set trains it, the other half scores it. Accuracy 0.5: it cannot tell them apart; 1.0: it always can.
Near 1 accuracy stops ranking two sets (stop 41: 0.97-0.99 for every painterly stage II), so the probe's held-out
cross-entropy (``log_loss``; ln 2 = 0.693 at chance, 0 when it is sure and right) and its ROC AUC come with it:
a probe that tells both sets apart is surer of one than of the other.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from stackgan.metrics.features import to_float


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
    steps: int = 500  # optimiser steps (batches); a probe given too few has learnt nothing and reads 0.5
    width: int = 16  # channels of the first layer, doubled at each stride
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0


def probe_net(size: int, width: int) -> nn.Sequential:
    """4x4 stride-2 convolutions with LeakyReLU down to 8 px (or less), averaged over space, one logit."""
    layers: list[nn.Module] = []
    cin, cout, side = 3, width, size
    while side > 8:
        layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2)]
        cin, cout, side = cout, cout * 2, side // 2
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1))


def _logits(net: nn.Module, x: torch.Tensor, batch: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([net(x[i:i + batch]).squeeze(1) for i in range(0, len(x), batch)])


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float(((logits > 0).float() == y).float().mean())


def roc_auc(scores: torch.Tensor, y: torch.Tensor) -> float:
    """The chance that a random positive (``y`` 1) scores above a random negative (ties count half)."""
    pos, neg = scores[y == 1], scores[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("the AUC needs both classes")
    d = pos[:, None] - neg[None, :]
    return float(((d > 0).float() + 0.5 * (d == 0).float()).mean())


def two_sample_test(real: torch.Tensor, fake: torch.Tensor, cfg: ProbeConfig = ProbeConfig()) -> dict:
    """Train a probe on half of ``real`` (label 1) and as many of ``fake`` (label 0), score it on the other
    halves. Pictures: uint8 or [-1, 1] floats [N, 3, S, S], both sets at one size. The global RNG is untouched."""
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"the two sets differ in shape: {tuple(real.shape[1:])} vs {tuple(fake.shape[1:])}")
    n = min(len(real), len(fake)) // 2
    if n < 2:
        raise ValueError(f"a two-sample test needs at least 4 pictures in each set, got {len(real)} and {len(fake)}")
    real, fake = to_float(real), to_float(fake)
    g = torch.Generator().manual_seed(cfg.seed)
    pr, pf = torch.randperm(len(real), generator=g), torch.randperm(len(fake), generator=g)
    halves = [torch.cat([real[pr[a:a + n]], fake[pf[a:a + n]]]) for a in (0, n)]
    y = torch.cat([torch.ones(n), torch.zeros(n)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = probe_net(real.shape[-1], cfg.width)
        opt = torch.optim.Adam(net.parameters(), cfg.lr)
        x, step = halves[0], 0
        while step < cfg.steps:  # epochs over the training halves, shuffled, cut at ``steps`` batches
            order = torch.randperm(len(x), generator=g)
            for i in range(0, len(order), cfg.batch_size):
                if step == cfg.steps:
                    break
                b = order[i:i + cfg.batch_size]
                xb = torch.where(torch.rand(len(b), 1, 1, 1, generator=g) < 0.5, x[b].flip(3), x[b])
                loss = F.binary_cross_entropy_with_logits(net(xb).squeeze(1), y[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
    test = _logits(net, halves[1], 256)
    return {"accuracy": _accuracy(test, y), "train_accuracy": _accuracy(_logits(net, halves[0], 256), y),
            "log_loss": float(F.binary_cross_entropy_with_logits(test, y)), "auc": roc_auc(test, y),
            "n_train": 2 * n, "n_test": 2 * n, "steps": cfg.steps, "size": int(real.shape[-1])}
