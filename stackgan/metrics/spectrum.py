"""The power spectrum of pictures against photos: blur and grain, in numbers.

A blurred picture lacks power at the fine frequencies; a grainy one has too much there; a whole-picture FID
on shrunken copies sees neither. As in the spectral studies of GAN pictures (Durall et al., CVPR 2020;
Schwarz et al., NeurIPS 2021), each set's mean power spectrum is taken on the luma of every picture (its
mean removed, a Hann window against the edges' leakage), averaged over rings of equal width from the lowest
frequency to Nyquist, and two sets are compared ring by ring as log10 power ratios: 0 where they match, +0.1
for 1.26 times the power, -1 for a tenth of it. Blind to phase, it does not see where the edges are: pictures
that put the photos' amount of edge in the wrong places (the menu's painterly look) read near 0 (README,
stop 53).
"""

from __future__ import annotations

import torch

BANDS = 16


def luma(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] (or [N, 1, H, W]) in [-1, 1] -> [N, H, W] luma (kornia's ITU-R BT.601 weights, as the
    augmenter's saturation uses)."""
    from kornia.color import rgb_to_grayscale

    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected pictures [N, 1 or 3, H, W], got {tuple(images.shape)}")
    x = images.float()
    return (x if x.shape[1] == 1 else rgb_to_grayscale(x))[:, 0]


def radial_spectrum(images: torch.Tensor, bands: int = BANDS, chunk: int = 256) -> torch.Tensor:
    """The set's mean power in ``bands`` rings of equal width, from the lowest frequency to Nyquist
    (the corners beyond Nyquist fall in the last ring). Square pictures only."""
    h, w = images.shape[-2:]
    if h != w:
        raise ValueError(f"radial spectrum of square pictures only, got {h}x{w}")
    if bands < 1 or bands > h // 2:
        raise ValueError(f"bands must be between 1 and {h // 2} for {h} px pictures, got {bands}")
    window = torch.hann_window(h, periodic=False)
    window = window[:, None] * window[None, :]
    power = torch.zeros(h, w)
    for i in range(0, len(images), chunk):
        g = luma(images[i:i + chunk])
        g = (g - g.mean(dim=(1, 2), keepdim=True)) * window
        power += torch.fft.fft2(g).abs().square().sum(0)
    power = torch.fft.fftshift(power / max(len(images), 1))
    f = torch.arange(h) - h // 2
    radius = (f[:, None].square() + f[None, :].square()).float().sqrt() / (h / 2)
    ring = (radius * bands).long().clamp(max=bands - 1)
    return torch.zeros(bands).index_add_(0, ring.flatten(), power.flatten()) / torch.bincount(
        ring.flatten(), minlength=bands).float()


def spectrum_gap(pictures: torch.Tensor, photos: torch.Tensor, bands: int = BANDS,
                 photos_spectrum: torch.Tensor | None = None) -> dict:
    """``pictures`` against ``photos`` (the same size), ring by ring: ``bands`` (log10 power ratios, low to
    high frequency), ``distance`` (their mean absolute value) and ``fine`` (their mean over the upper half
    of the rings: above 0, more fine texture than the photos; below, blur)."""
    if pictures.shape[-2:] != photos.shape[-2:]:
        raise ValueError(f"pictures of {tuple(pictures.shape[-2:])} px against photos of {tuple(photos.shape[-2:])}")
    ref = radial_spectrum(photos, bands) if photos_spectrum is None else photos_spectrum
    ratio = (radial_spectrum(pictures, bands) / ref.clamp_min(1e-12)).clamp_min(1e-12).log10()
    return {"bands": [round(v, 4) for v in ratio.tolist()], "distance": float(ratio.abs().mean()),
            "fine": float(ratio[bands // 2:].mean()), "size": int(pictures.shape[-1]), "n_a": int(len(pictures)),
            "n_b": int(len(photos))}
