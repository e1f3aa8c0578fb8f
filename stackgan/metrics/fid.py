"""Distribution distances between two feature sets: FID (Fréchet distance) and KID (polynomial MMD).

The features come from whatever network the caller picks. The evaluation uses the penultimate
layer of the in-domain classifier (:mod:`stackgan.metrics.classifier`), which is *not*
Inception-FID: its values are comparable only with each other, on the same data and classifier.
:func:`inception_features` gives the standard 2048-d pool features from a local torchvision
``inception_v3`` state dict (nothing is downloaded).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from stackgan.errors import CheckpointError


def _stats(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = feats.double()
    mu = x.mean(0)
    xc = x - mu
    cov = xc.T @ xc / max(len(x) - 1, 1)
    return mu, cov


def _sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """FID between feature sets ``a`` [N, D] and ``b`` [M, D] (Gaussian fit of each).

    ``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)``, in float64 with a
    symmetric eigen-decomposition, so it is stable for the rank-deficient covariances of small sets.
    """
    _check(a, b, 2)
    mu_a, s_a = _stats(a)
    mu_b, s_b = _stats(b)
    root_a = _sqrtm_psd(s_a)
    inner = root_a @ s_b @ root_a
    tr_covmean = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0).sqrt().sum()
    fid = (mu_a - mu_b).pow(2).sum() + torch.trace(s_a) + torch.trace(s_b) - 2 * tr_covmean
    return max(float(fid), 0.0)


def kernel_inception_distance(a: torch.Tensor, b: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID: unbiased MMD^2 with the cubic polynomial kernel ``(x.y / d + 1)^3``, averaged over
    random subsets of ``min(subset_size, N // 2, M // 2)`` samples (half the smaller set at most, so
    that the subsets differ and the spread means something). Returns (mean, std over subsets)."""
    _check(a, b, 4)
    a, b = a.double(), b.double()
    d = a.shape[1]
    m = max(2, min(subset_size, len(a) // 2, len(b) // 2))
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=g)[:m]]
        y = b[torch.randperm(len(b), generator=g)[:m]]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
        syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        vals.append(float(sxx + syy - 2 * kxy.mean()))
    t = torch.tensor(vals, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if len(vals) > 1 else 0.0


def _check(a: torch.Tensor, b: torch.Tensor, min_n: int) -> None:
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be [N, D] with the same D, got {tuple(a.shape)} and {tuple(b.shape)}")
    if len(a) < min_n or len(b) < min_n:
        raise ValueError(f"need at least {min_n} samples in each set, got {len(a)} and {len(b)}")


# -- standard Inception features from a local weights file ------------------------------------
def load_inception(path: str | os.PathLike, device: torch.device | str = "cpu") -> torch.nn.Module:
    """torchvision ``inception_v3`` with the state dict in ``path`` (.pth/.pt or .safetensors),
    its classifier replaced by the identity so that it returns the 2048-d pool features."""
    from torchvision.models import inception_v3

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"--inception: weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
    except Exception as exc:
        raise CheckpointError(f"--inception: cannot read {path}: {exc}") from None
    aux = any(k.startswith("AuxLogits.") for k in state)
    net = inception_v3(weights=None, aux_logits=aux, init_weights=False, transform_input=False)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"--inception: {path} is not a torchvision inception_v3 state dict: "
                              f"{str(exc).splitlines()[0]}") from None
    net.fc = torch.nn.Identity()
    return net.eval().to(device)


_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@torch.no_grad()
def inception_features(net: torch.nn.Module, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """2048-d pool features of images (uint8 or [-1, 1]) resized to 299 px, ImageNet-normalised."""
    from stackgan.metrics.features import batched, prepare

    device = next(net.parameters()).device

    def fn(x: torch.Tensor) -> torch.Tensor:
        x = prepare(x, 299)
        x = ((x + 1) / 2 - _MEAN.to(x.device)) / _STD.to(x.device)
        return net(x)

    return batched(fn, images, batch_size, device)
