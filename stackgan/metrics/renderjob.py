"""One rendering job of the attribute reader's render sets, torch-free, so that the worker
processes of :func:`stackgan.metrics.reader.render_combos` start quickly (numpy and PIL only)."""

from __future__ import annotations

import numpy as np


def render_combo(job: tuple) -> np.ndarray:
    """``(combo, seed, count, draw_size, image_size)`` -> ``count`` renders of one combination
    ``(base, topping or None, modifier or None)``, uint8 ``[count, S, S, 3]``: picture ``i`` is
    drawn with the menu set's own generator ``image_rng(seed, name, i)`` at ``draw_size`` px,
    then resized to ``image_size`` px as the data loader resizes photos."""
    from PIL import Image

    from stackgan.menu.make import image_rng
    from stackgan.menu.parts import compose_name
    from stackgan.menu.render import render_dish

    combo, seed, count, draw_size, image_size = job
    name = compose_name(*combo)
    out = np.empty((count, image_size, image_size, 3), np.uint8)
    for i in range(count):
        img = render_dish(*combo, image_rng(seed, name, i), draw_size).convert("RGB")
        if draw_size != image_size:
            img = img.resize((image_size, image_size), Image.LANCZOS, reducing_gap=3.0)
        out[i] = np.asarray(img)
    return out
