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
FID_INCEPTION_CLASSES = 1008  # the TF FID-Inception graph's classifier (pt_inception-2015-12-05-*.pth)
TORCHVISION_WEIGHTS = ("torchvision inception_v3 (ImageNet), not the FID-Inception weights: not comparable with "
                       "published FIDs")
FID_WEIGHTS = ("FID-Inception (the TF FID graph's weights, as pytorch-fid uses them): comparable with FIDs "
               "computed the same way, on these sample counts")


def fid_inception_architecture() -> torch.nn.Module:
    """The FID-Inception network without weights: torchvision's inception_v3 with the blocks the TF FID
    graph computes differently, as pytorch-fid builds it (its block classes, imported from it)."""
    from torchvision.models.inception import inception_v3

    try:
        from pytorch_fid import inception as pfi
    except ImportError:
        raise CheckpointError("--inception: these are FID-Inception weights (1008 classes); reading them needs "
                              "the pytorch-fid package (pip install pytorch-fid, or the project's fid extra)") from None
    net = inception_v3(weights=None, num_classes=FID_INCEPTION_CLASSES, aux_logits=False, init_weights=False,
                       transform_input=False)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    return net


def load_inception(path: str | os.PathLike, device: torch.device | str = "cpu") -> torch.nn.Module:
    """An Inception network with the state dict in ``path`` (.pth/.pt or .safetensors), its classifier
    replaced by the identity so that it returns the 2048-d pool features. Either torchvision's
    ``inception_v3`` weights, or the FID-Inception weights (``pt_inception-2015-12-05-*.pth``, told apart
    by their 1008-class classifier; needs pytorch-fid). ``net.weights_kind`` says which: ``torchvision``
    or ``fid``; :func:`inception_features` feeds each the input it was trained on."""
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
    fc = state.get("fc.weight") if isinstance(state, dict) else None
    if fc is not None and fc.shape[0] == FID_INCEPTION_CLASSES:
        net, kind, what = fid_inception_architecture(), "fid", "an FID-Inception"
    else:
        aux = any(k.startswith("AuxLogits.") for k in state)
        net = inception_v3(weights=None, aux_logits=aux, init_weights=False, transform_input=False)
        kind, what = "torchvision", "a torchvision inception_v3"
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"--inception: {path} is not {what} state dict: "
                              f"{str(exc).splitlines()[0]}") from None
    net.fc = torch.nn.Identity()
    net.weights_kind = kind
    return net.eval().to(device)


def weights_note(net: torch.nn.Module) -> str:
    """What a report says about the Inception weights used."""
    return FID_WEIGHTS if getattr(net, "weights_kind", "torchvision") == "fid" else TORCHVISION_WEIGHTS


_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@torch.no_grad()
def inception_features(net: torch.nn.Module, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """2048-d pool features of images (uint8 or [-1, 1]) resized to 299 px: ImageNet-normalised for
    torchvision's weights, in [-1, 1] for the FID-Inception weights (as pytorch-fid feeds them)."""
    from stackgan.metrics.features import batched, prepare

    device = next(net.parameters()).device
    fid = getattr(net, "weights_kind", "torchvision") == "fid"

    def fn(x: torch.Tensor) -> torch.Tensor:
        x = prepare(x, 299)
        if not fid:
            x = ((x + 1) / 2 - _MEAN.to(x.device)) / _STD.to(x.device)
        return net(x)

    return batched(fn, images, batch_size, device)
