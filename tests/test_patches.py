import pytest
import torch
import torch.nn.functional as F

from stackgan.metrics.patches import coverage, knn_radii, patch_precision_recall, patch_vectors, photo_manifold
from conftest import rect_scenes  # noqa: E402


def _scenes(n, size=32, seed=0):
    return rect_scenes(n, size, seed, rects=6)


def _strokes(x, seed=0):
    """The same pictures with short diagonal streaks of another colour: marks the scenes never have."""
    g = torch.Generator().manual_seed(seed)
    x = x.clone()
    n, _, size, _ = x.shape
    for i in range(n):
        for _ in range(10):
            r, c = torch.randint(0, size - 6, (2,), generator=g).tolist()
            col = torch.rand(3, generator=g) * 2 - 1
            for t in range(6):
                x[i, :, r + t, c + t] = col
                x[i, :, r + t, min(c + t + 1, size - 1)] = col
    return x


def test_patch_vectors_cut_every_half_patch_and_draw_a_seeded_subset():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    every = patch_vectors(x, patch=4, n=10_000)
    assert every.shape == (2 * 3 * 3, 3 * 4 * 4)  # stride 2: 3 x 3 places in each of 2 pictures
    first = x[0, :, :4, :4].reshape(-1)
    assert any(torch.equal(row, first) for row in every)
    assert torch.equal(patch_vectors(x, 4, n=5, seed=3), patch_vectors(x, 4, n=5, seed=3))
    assert patch_vectors(x, 4, n=5, seed=3).shape == (5, 48)
    assert not torch.equal(patch_vectors(x, 4, n=5, seed=3), patch_vectors(x, 4, n=5, seed=4))
    with pytest.raises(ValueError, match="patch must be between 2 and the pictures' size 8"):
        patch_vectors(x, patch=16)
    with pytest.raises(ValueError, match="expected pictures"):
        patch_vectors(x[0])


def test_knn_radii_and_coverage_on_points_of_a_line():
    pts = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert knn_radii(pts, k=1, chunk=3).tolist() == [1.0, 1.0, 4.0, 16.0]  # squared distance to the nearest other
    assert knn_radii(pts, k=2).tolist() == [9.0, 4.0, 9.0, 36.0]
    query = torch.tensor([[0.5], [5.0], [30.0], [-2.0]])
    # balls: 0 +-1, 1 +-1, 3 +-2, 7 +-4: 0.5 and 5 inside, 30 and -2 outside
    assert coverage(query, pts, knn_radii(pts, k=1), chunk=3) == 0.5
    with pytest.raises(ValueError, match="k must be between 1 and 3 for 4 patches"):
        knn_radii(pts, k=4)


def test_strokes_lower_precision_and_blur_raises_it_while_lowering_recall():
    photos, pictures = _scenes(64, seed=0), _scenes(64, seed=1)
    ref = photo_manifold(photos, n=3000)
    base = patch_precision_recall(pictures, photos, n=3000, photo_patches=ref)
    assert base == patch_precision_recall(pictures, photos, n=3000)  # the manifold given or drawn: the same
    assert (base["patch"], base["size"], base["k"], base["n_a"], base["n_b"]) == (8, 32, 3, 3000, 3000)
    stroked = patch_precision_recall(_strokes(pictures), photos, n=3000, photo_patches=ref)
    blurred = patch_precision_recall(F.interpolate(F.avg_pool2d(pictures, 2), scale_factor=2, mode="bilinear"),
                                     photos, n=3000, photo_patches=ref)
    # another draw of the same kind of picture (random colours: a sparse manifold; 0.61 / 0.64 here)
    assert base["precision"] > 0.5 and base["recall"] > 0.5
    assert stroked["precision"] < base["precision"] - 0.2  # 0.25: patches the photos never have
    assert blurred["precision"] > base["precision"] + 0.1  # 0.81: smooth patches lie in any manifold
    assert blurred["recall"] < base["recall"] - 0.1  # 0.39: the sharp edges are missing
    with pytest.raises(ValueError, match="pictures of"):
        patch_precision_recall(pictures, photos[..., :16, :16])
    with pytest.raises(ValueError, match="not those of 4 px patches"):
        patch_precision_recall(pictures, photos, patch=4, photo_patches=ref)
