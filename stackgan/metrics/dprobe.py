"""What has D learned? Activation maximisation of the discriminator's match score for a name.

Starting from noise, an image is optimised by gradient ascent on ``score_fn(image)`` (D's
conditional logit for the name). A faint total-variation penalty keeps it from being pure
high-frequency noise. If the result shows the dish's colours and layout, D keys on the right
things; adversarial static with a huge score suggests it is overfitting to texture.
"""

from __future__ import annotations

from typing import Callable

import torch


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def maximise_score(score_fn: Callable[[torch.Tensor], torch.Tensor], shape: tuple[int, ...], steps: int = 200,
                   lr: float = 0.05, tv_weight: float = 0.05, seed: int = 0,
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, list[float]]:
    """Returns (image in [-1, 1] of ``shape`` [N, C, H, W], score per step averaged over the batch).

    ``score_fn`` maps images [N, C, H, W] in [-1, 1] to scores [N] (higher = "real and matching").
    The parameters of whatever model ``score_fn`` wraps are not touched.
    """
    g = torch.Generator().manual_seed(seed)
    param = (torch.randn(shape, generator=g) * 0.5).to(device).requires_grad_(True)
    opt = torch.optim.Adam([param], lr=lr)
    history: list[float] = []
    for _ in range(steps):
        img = torch.tanh(param)
        score = score_fn(img).reshape(-1)
        loss = -score.mean() + tv_weight * total_variation(img)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(score.mean().detach()))
    with torch.no_grad():
        final = torch.tanh(param)
        history.append(float(score_fn(final).reshape(-1).mean()))
    return final.detach().cpu(), history
