"""DiffAugment (Zhao et al. 2020) with kornia, plus the ADA-style probability controller and the elastic
bend of stage II's ``--stage2-paired-warp`` (``elastic_warp``).

Differentiable augmentation applied to *every* image the discriminator sees (real, wrong and
fake in the D step, fakes in the G step), so that D cannot memorise a small photo set while G
still gets gradients through the augmentation.

Images are ``[-1, 1]`` tensors ``[B, 3, H, W]``. Policies (comma separated):

- ``color``: brightness ``+U(-0.5, 0.5)`` (on the ``[-1, 1]`` scale, i.e. ±0.25 after the
  conversion to ``[0, 1]``), saturation ``×U(0, 2)`` around the per-pixel gray value and
  contrast ``×U(0.5, 1.5)`` around the image's mean gray value. These run on ``[0, 1]`` images
  with kornia's brightness op (``clip_output=False``) and kornia's gray conversion, and are
  never clamped: clamping would zero the gradient of every saturated pixel.
- ``translation``: an integer shift of up to 1/8 of the size in x and y, zero padded
  (``kornia.geometry.transform.translate``, nearest).
- ``cutout``: one square with half the side set to zero (``kornia.augmentation.RandomErasing``).

Translation and cutout run on the ``[-1, 1]`` images, so their zero fill is mid-gray, as in
the original. Every sample draws its own parameters from torch's global RNG (so a seeded run
is reproducible). With ``p < 1`` (ADA) each op is applied to each sample with probability ``p``.
"""

from __future__ import annotations

import torch
from torch import nn

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """``"color,translation"`` -> ``("color", "translation")``; ``"none"``/``""`` -> ``()``."""
    from stackgan.errors import ConfigError

    if policy is None:
        return ()
    parts = [p.strip().lower() for p in str(policy).split(",") if p.strip()]
    if parts in ([], ["none"]):
        return ()
    bad = [p for p in parts if p not in POLICIES]
    if bad:
        raise ConfigError(f"unknown DiffAugment policy {', '.join(bad)!s}: use 'none' or a comma "
                          f"separated subset of {','.join(POLICIES)}")
    if len(set(parts)) != len(parts):
        raise ConfigError(f"DiffAugment policy {policy!r} names an op twice")
    return tuple(parts)


class DiffAugment(nn.Module):
    """Differentiable augmentation of ``[-1, 1]`` images with per-sample random parameters.

    ``DiffAugment("color,translation,cutout")``; ``DiffAugment("none")`` is the identity.
    ``p`` (a float attribute, settable by :class:`AdaController`) is the per-sample, per-op
    probability of applying an op; 1.0 is plain DiffAugment.
    """

    def __init__(self, policy: str = "color,translation,cutout", p: float = 1.0):
        super().__init__()
        self.policy = parse_policy(policy)
        self.p = float(p)
        self._erase = None
        if "cutout" in self.policy:
            import kornia.augmentation as K

            # area 1/4 with aspect 1 -> a square with half the side; p=1, gating is done here.
            self._erase = K.RandomErasing(scale=(0.25, 0.25), ratio=(1.0, 1.0), value=0.0, p=1.0)

    def extra_repr(self) -> str:
        return f"policy={','.join(self.policy) or 'none'}, p={self.p:.3f}"

    @property
    def enabled(self) -> bool:
        return bool(self.policy) and self.p > 0

    def _gate(self, b: int, device: torch.device) -> torch.Tensor | None:
        """Per-sample bool mask of samples that get the op, or None when all do."""
        if self.p >= 1.0:
            return None
        return torch.rand(b, device=device) < self.p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        for op in self.policy:
            x = getattr(self, f"_{op}")(x)
        return x

    # -- ops -----------------------------------------------------------------------------------
    def _color(self, x: torch.Tensor) -> torch.Tensor:
        from kornia.color import rgb_to_grayscale
        from kornia.enhance import adjust_brightness

        b, dev = x.shape[0], x.device
        gate = self._gate(b, dev)
        bright = torch.rand(b, device=dev, dtype=x.dtype) - 0.5        # on the [-1, 1] scale
        sat = torch.rand(b, 1, 1, 1, device=dev, dtype=x.dtype) * 2.0
        con = torch.rand(b, 1, 1, 1, device=dev, dtype=x.dtype) + 0.5
        if gate is not None:
            g = gate.to(x.dtype)
            bright = bright * g
            sat = torch.lerp(torch.ones_like(sat), sat, g.view(-1, 1, 1, 1))
            con = torch.lerp(torch.ones_like(con), con, g.view(-1, 1, 1, 1))
        y = (x + 1) * 0.5                                               # [-1, 1] -> [0, 1]
        y = adjust_brightness(y, bright * 0.5, clip_output=False)
        if y.shape[1] == 3:
            gray = rgb_to_grayscale(y)
            y = gray + (y - gray) * sat
            mean = rgb_to_grayscale(y).mean(dim=(1, 2, 3), keepdim=True)
        else:
            mean = y.mean(dim=(1, 2, 3), keepdim=True)
        y = mean + (y - mean) * con
        return y * 2 - 1                                                # back to [-1, 1]

    def _translation(self, x: torch.Tensor) -> torch.Tensor:
        from kornia.geometry.transform import translate

        b, _, h, w = x.shape
        sx, sy = w // 8, h // 8
        if sx == 0 and sy == 0:
            return x
        dx = torch.randint(-sx, sx + 1, (b,), device=x.device)
        dy = torch.randint(-sy, sy + 1, (b,), device=x.device)
        shift = torch.stack([dx, dy], dim=1).to(x.dtype)
        gate = self._gate(b, x.device)
        if gate is not None:
            shift = shift * gate.to(x.dtype)[:, None]
        return translate(x, shift, mode="nearest", padding_mode="zeros", align_corners=True)

    def _cutout(self, x: torch.Tensor) -> torch.Tensor:
        y = self._erase(x)
        gate = self._gate(x.shape[0], x.device)
        if gate is not None:
            y = torch.where(gate.view(-1, 1, 1, 1), y, x)
        return y


class AdaController:
    """Adaptive augmentation probability, as in StyleGAN2-ADA.

    Accumulates ``sign(D(real))`` (the overfitting heuristic r_t) and every ``interval`` steps
    moves ``augment.p`` up when r_t exceeds ``target`` and down otherwise, at a speed that
    could take p from 0 to 1 in ``speed_imgs`` real images.
    """

    def __init__(self, augment: DiffAugment, target: float = 0.6, interval: int = 4,
                 speed_imgs: int = 100_000, p_init: float = 0.0, p_max: float = 1.0):
        self.augment = augment
        self.target = float(target)
        self.interval = int(interval)
        self.speed_imgs = int(speed_imgs)
        self.p_max = float(p_max)
        self.augment.p = float(p_init)
        self._sum = 0.0
        self._n = 0
        self._steps = 0
        self.rt = float("nan")

    def update(self, d_real_logits: torch.Tensor) -> float:
        """Feed D's logits on real images of one step; returns the current p."""
        s = torch.sign(d_real_logits.detach().float())
        self._sum += float(s.sum())
        self._n += s.numel()
        self._steps += 1
        if self._steps % self.interval == 0 and self._n:
            self.rt = self._sum / self._n
            adjust = (1.0 if self.rt > self.target else -1.0) * self._n / self.speed_imgs
            self.augment.p = float(min(max(self.augment.p + adjust, 0.0), self.p_max))
            self._sum, self._n = 0.0, 0
        return self.augment.p

    def state_dict(self) -> dict:
        return {"p": self.augment.p, "sum": self._sum, "n": self._n, "steps": self._steps, "rt": self.rt}

    def load_state_dict(self, state: dict) -> None:
        self.augment.p = float(state["p"])
        self._sum, self._n = float(state["sum"]), int(state["n"])
        self._steps, self.rt = int(state["steps"]), float(state["rt"])


def elastic_warp(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """``x`` ``[B, 3, S, S]`` bent by a random smooth displacement field (kornia's elastic transform: uniform
    noise smoothed by a Gaussian of S/32 px, times ``alpha``, borders repeated), a new field per sample from
    torch's global RNG. Stage II's ``--stage2-paired-warp``: stage-I-size copies of real photos bent so that
    their rims wobble and their toppings smear a little, as stage I draws them (at 64 px, ``alpha`` 0.25
    moves edges by about a pixel and blends a topping's pieces; 0.5 tears them). Computed in float32."""
    if alpha < 0:
        raise ValueError(f"elastic_warp: alpha must be >= 0, got {alpha}")
    if alpha == 0:
        return x
    import kornia.augmentation as K

    sigma = x.shape[-1] / 32
    k = 2 * round(2 * sigma) + 1  # odd, about four sigma across
    warp = K.RandomElasticTransform(kernel_size=(k, k), sigma=(sigma, sigma), alpha=(alpha, alpha), p=1.0,
                                    padding_mode="border")
    return warp(x.float()).to(x.dtype)
