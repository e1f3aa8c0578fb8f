import pytest
import torch
import torch.nn.functional as F

from stackgan.metrics.spectrum import luma, radial_spectrum, spectrum_gap
from conftest import rect_scenes  # noqa: E402


def _scenes(n, size=64, seed=0):
    return rect_scenes(n, size, seed, rects=12)


def test_luma_weights_and_shapes():
    x = torch.zeros(2, 3, 4, 4)
    x[:, 1] = 1.0
    assert torch.allclose(luma(x), torch.full((2, 4, 4), 0.587))
    assert torch.equal(luma(x[:, :1]), x[:, 0])
    with pytest.raises(ValueError, match="expected pictures"):
        luma(torch.zeros(2, 2, 4, 4))


def test_the_rings_run_from_low_to_high_frequency():
    n = 64
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    slow = torch.cos(2 * torch.pi * 2 * xx / n).expand(4, 1, n, n)  # 2 cycles: the first rings
    fast = torch.cos(2 * torch.pi * 28 * yy / n).expand(4, 1, n, n)  # 28 of Nyquist's 32: the last rings
    s, f = radial_spectrum(slow, 16), radial_spectrum(fast, 16)
    assert s.shape == f.shape == (16,)
    assert int(s.argmax()) <= 1 and int(f.argmax()) >= 13
    # the spectrum is of the set's mean power: the order of the pictures and chunking change nothing
    mixed = torch.cat([slow, fast])
    assert torch.allclose(radial_spectrum(mixed, 16, chunk=3), (s + f) / 2, rtol=1e-4, atol=1e-6)


def test_a_set_against_itself_and_against_another_draw():
    a, b = _scenes(48, seed=0), _scenes(48, seed=1)
    same = spectrum_gap(a, a)
    assert same["distance"] == 0.0 and same["fine"] == 0.0 and len(same["bands"]) == 16
    assert (same["size"], same["n_a"], same["n_b"]) == (64, 48, 48)
    other = spectrum_gap(b, a)
    assert other["distance"] < 0.1 and abs(other["fine"]) < 0.1  # two draws of one kind of picture


def test_blur_reads_below_zero_and_texture_above():
    photos, pictures = _scenes(48, seed=0), _scenes(48, seed=1)
    blurred = F.interpolate(F.avg_pool2d(pictures, 2), scale_factor=2, mode="bilinear")
    g = torch.Generator().manual_seed(2)
    textured = pictures + 0.15 * torch.randn(pictures.shape, generator=g)  # strokes of pixel noise
    base = spectrum_gap(pictures, photos)
    blur, tex = spectrum_gap(blurred, photos), spectrum_gap(textured, photos)
    assert blur["fine"] < -1.5 < base["fine"] - 1.0  # under a thirtieth of the fine power after a 2x blur (-2.1)
    assert tex["fine"] > 0.25 > base["fine"] + 0.2  # twice the fine power with the noise (+0.31; two draws -0.07)
    assert blur["distance"] > 10 * base["distance"] and tex["distance"] > 2 * base["distance"]
    # the low rings are hardly touched by either: the gap is in the fine half
    assert abs(blur["bands"][0]) < 0.1 and abs(tex["bands"][0]) < 0.1
    # a precomputed spectrum of the photos gives the same numbers
    assert spectrum_gap(blurred, photos, photos_spectrum=radial_spectrum(photos)) == blur


def test_refusals():
    with pytest.raises(ValueError, match="square pictures only"):
        radial_spectrum(torch.zeros(2, 3, 16, 32))
    with pytest.raises(ValueError, match="bands must be between 1 and 8"):
        radial_spectrum(torch.zeros(2, 3, 16, 16), bands=9)
    with pytest.raises(ValueError, match="against photos of"):
        spectrum_gap(torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 32, 32))
