"""Drawing one cafeteria dish as a small photo (numpy + PIL, a few tens of ms at 256 px).

The scene is a bowl or plate on a plastic tray or a wooden table, seen from about 45 degrees:
circles become ellipses squashed by ``k = cos(tilt)``. Vessels get a body, a rim, an interior,
a soft shadow and a light direction; the food is drawn on the vessel's surface in "surface
coordinates" (a unit disk mapped onto an ellipse). Then the camera jitters (position, scale,
rotation), the light gets a gradient and a colour cast, the lens blurs slightly and the sensor
adds noise. Everything random comes from the ``numpy.random.Generator`` passed in, so a seed
gives the same picture.

Each part of a name has one visual signature (see ``stackgan.menu.parts.Part.looks``).
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from stackgan.menu.parts import BASES, MODIFIERS, TOPPINGS, _none

# ---------------------------------------------------------------------------------------------
# small helpers


@functools.lru_cache(maxsize=None)
def _c(h: str) -> np.ndarray:
    out = np.array([int(h[i:i + 2], 16) for i in (1, 3, 5)], np.float32) / 255.0
    out.setflags(write=False)
    return out


def _jit(rng: np.random.Generator, col, amount: float = 0.05, bright: float = 0.06) -> np.ndarray:
    """A colour with a little per-channel and brightness jitter."""
    out = np.asarray(col, np.float32) * (1 + rng.normal(0, amount, 3)) * (1 + rng.uniform(-bright, bright))
    return np.minimum(np.maximum(out, 0), 1).astype(np.float32)


def _mix(a, b, t: float) -> np.ndarray:
    return np.asarray(a, np.float32) * (1 - t) + np.asarray(b, np.float32) * t


@functools.lru_cache(maxsize=8)
def _grid(w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:w, 0:w].astype(np.float32)
    yy += 0.5
    xx += 0.5
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


@dataclass
class Region:
    """An ellipse on which food is drawn: surface point (u, v) in the unit disk -> pixel."""

    cx: float
    cy: float
    r: float  # horizontal radius in px
    k: float  # vertical squash

    def px(self, u: float, v: float) -> tuple[float, float]:
        return self.cx + u * self.r, self.cy + v * self.r * self.k

    def scaled(self, s: float, du: float = 0.0, dv: float = 0.0) -> "Region":
        x, y = self.px(du, dv)
        return Region(x, y, self.r * s, self.k)


class Layer:
    """A supersampled RGBA drawing surface; shapes are drawn opaque and composited premultiplied.

    It remembers the bounding box of what was drawn, so compositing only touches that window.
    """

    def __init__(self, w: int, ss: int = 2):
        self.ss = ss
        self.w = w
        self.im = Image.new("RGBA", (w * ss, w * ss), (0, 0, 0, 0))
        self.d = ImageDraw.Draw(self.im)
        self.box = [math.inf, math.inf, -math.inf, -math.inf]

    def _grow(self, x0, y0, x1, y1) -> None:
        b = self.box
        b[0], b[1], b[2], b[3] = min(b[0], x0), min(b[1], y0), max(b[2], x1), max(b[3], y1)

    @staticmethod
    def _ink(col) -> tuple[int, int, int, int]:
        r, g, b = col.tolist() if isinstance(col, np.ndarray) else col
        return (int(min(max(r, 0.0), 1.0) * 255 + 0.5), int(min(max(g, 0.0), 1.0) * 255 + 0.5),
                int(min(max(b, 0.0), 1.0) * 255 + 0.5), 255)

    def ellipse(self, cx, cy, rx, ry, col) -> None:
        s = self.ss
        rx, ry = max(rx, 0.3), max(ry, 0.3)
        self._grow(cx - rx, cy - ry, cx + rx, cy + ry)
        self.d.ellipse([(cx - rx) * s, (cy - ry) * s, (cx + rx) * s, (cy + ry) * s], fill=self._ink(col))

    def polygon(self, pts, col) -> None:
        s = self.ss
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        self._grow(min(xs), min(ys), max(xs), max(ys))
        self.d.polygon([(x * s, y * s) for x, y in pts], fill=self._ink(col))

    def line(self, pts, col, width: float) -> None:
        s = self.ss
        w = max(1, int(round(width * s)))
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        h = w / s
        self._grow(min(xs) - h, min(ys) - h, max(xs) + h, max(ys) + h)
        # no round joints (PIL draws them in Python, vertex by vertex): our paths bend gently
        self.d.line([(x * s, y * s) for x, y in pts], fill=self._ink(col), width=w)
        if w >= 3:  # round caps
            r = w / 2 / s
            for x, y in (pts[0], pts[-1]):
                self.ellipse(x, y, r, r, col)

    def window(self) -> tuple[int, int, int, int] | None:
        """The drawn bounding box in canvas pixels (x0, y0, x1, y1), or None if nothing was drawn."""
        b = self.box
        if b[0] == math.inf:
            return None
        x0, y0 = max(0, int(math.floor(b[0])) - 1), max(0, int(math.floor(b[1])) - 1)
        x1, y1 = min(self.w, int(math.ceil(b[2])) + 2), min(self.w, int(math.ceil(b[3])) + 2)
        if x0 >= x1 or y0 >= y1:
            return None
        return x0, y0, x1, y1

    def rgba(self, win) -> tuple[np.ndarray, np.ndarray]:
        x0, y0, x1, y1 = win
        s = self.ss
        im = self.im.crop((x0 * s, y0 * s, x1 * s, y1 * s))
        if s > 1:
            im = im.reduce(s)
        a = np.asarray(im, dtype=np.float32) * (1 / 255.0)
        return a[..., :3], a[..., 3]


# ---------------------------------------------------------------------------------------------
# the scene


class Scene:
    def __init__(self, size: int, rng: np.random.Generator):
        self.S = size
        self.W = int(round(size * 1.22))
        self.c = self.W / 2.0
        self.rng = rng
        self.img = np.zeros((self.W, self.W, 3), np.float32)
        self.yy, self.xx = _grid(self.W)
        self.k = float(rng.uniform(0.6, 0.78))  # cos(tilt): 0.6..0.78 ~ 37..53 degrees
        ang = rng.uniform(-math.pi * 0.85, -math.pi * 0.15)  # light from above, left to right
        self.lx, self.ly = math.cos(ang), math.sin(ang)
        self.ss = 2 if size >= 48 else 4

    # -- masks ------------------------------------------------------------------------------
    def ell(self, cx, cy, rx, ry, soft: float = 0.7) -> np.ndarray:
        """Anti-aliased ellipse coverage (full frame, computed in its bounding box)."""
        out = np.zeros((self.W, self.W), np.float32)
        pad = soft * 3 + 2
        x0, x1 = max(0, int(cx - rx - pad)), min(self.W, int(cx + rx + pad) + 1)
        y0, y1 = max(0, int(cy - ry - pad)), min(self.W, int(cy + ry + pad) + 1)
        if x0 >= x1 or y0 >= y1:
            return out
        xs = (self.xx[y0:y1, x0:x1] - cx) / rx
        ys = (self.yy[y0:y1, x0:x1] - cy) / ry
        r = np.sqrt(xs * xs + ys * ys) + 1e-6
        g = np.sqrt((xs / rx) ** 2 + (ys / ry) ** 2) / r + 1e-6
        sd = (r - 1) / g  # approximate signed distance in px
        out[y0:y1, x0:x1] = np.clip(0.5 - sd / (2 * soft), 0, 1)
        return out

    def rho(self, reg: Region) -> np.ndarray:
        """Normalised elliptic radius of every pixel in a region (1 on its edge)."""
        xs = (self.xx - reg.cx) / reg.r
        ys = (self.yy - reg.cy) / (reg.r * reg.k)
        return np.sqrt(xs * xs + ys * ys)

    def noise(self, cells: int, amp: float = 1.0) -> np.ndarray:
        """Smooth noise with about ``cells`` bumps across the frame, roughly in [-amp, amp]."""
        cells = max(2, int(cells))
        small = self.rng.standard_normal((cells, cells)).astype(np.float32)
        im = Image.fromarray(small, "F").resize((self.W, self.W), Image.BICUBIC)
        return np.asarray(im, np.float32) * (amp * 0.5)

    # -- painting ---------------------------------------------------------------------------
    @staticmethod
    def _win(mask: np.ndarray) -> tuple[slice, slice] | None:
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(mask.any(axis=0))
        return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)

    def paint(self, mask: np.ndarray, col) -> None:
        """Blend ``col`` into the canvas with coverage ``mask``.

        ``col`` is a colour, a full-frame image, or a function of the window
        ``(ys, xs, w)`` (pixel centre coordinates and slices) returning the colours there.
        """
        w = self._win(mask)
        if w is None:
            return
        if callable(col):
            col = col(self.yy[w], self.xx[w], w)
        col = np.asarray(col, np.float32)
        if col.ndim == 3 and col.shape[:2] == mask.shape:
            col = col[w]
        elif col.ndim == 2:
            col = col[..., None]
        m = mask[w][..., None]
        sub = self.img[w]
        d = col - sub
        d *= m
        sub += d

    def layer(self) -> Layer:
        return Layer(self.W, self.ss)

    def flush(self, layer: Layer, clip: np.ndarray | None = None, alpha: float = 1.0,
              tex: np.ndarray | None = None) -> None:
        win = layer.window()
        if win is None:
            return
        x0, y0, x1, y1 = win
        rgb, a = layer.rgba(win)
        w = (slice(y0, y1), slice(x0, x1))
        if clip is not None:
            c = clip[w]
            rgb = rgb * c[..., None]
            a = a * c
        if tex is not None:
            t = tex[w]
            rgb = rgb * (t[..., None] if t.ndim == 2 else t)
        if alpha != 1.0:
            rgb = rgb * alpha
            a = a * alpha
        sub = self.img[w]
        sub *= 1 - a[..., None]
        sub += rgb

    def shadow(self, cx, cy, rx, ry, strength: float = 0.45) -> None:
        s = self.S
        off = 0.03 * s
        m = self.ell(cx - self.lx * off, cy - self.ly * off * 0.6, rx, ry, soft=0.035 * s)
        self.img *= (1 - strength * m)[..., None]


# ---------------------------------------------------------------------------------------------
# backgrounds

_WOODS = ["#9C6B3E", "#85562F", "#B88A5A", "#6B4428", "#A57B4F"]
_TRAYS = ["#C8B596", "#7A4B36", "#5D7A5E", "#D08A78", "#8797AE", "#3A3836", "#E0D5C0", "#B4523E"]
_LAMINATE = ["#D9D6CF", "#C9C2B4", "#E6E2DA"]


def _wood(sc: Scene, mask: np.ndarray | None = None) -> None:
    rng, W = sc.rng, sc.W
    base = _jit(rng, _c(_WOODS[rng.integers(len(_WOODS))]), 0.04, 0.08)
    warp = sc.noise(4, 1.0) * 0.5 + sc.noise(11, 1.0) * 0.12
    period = rng.uniform(0.045, 0.07) * sc.S
    t = (sc.yy / period) + warp + sc.xx * rng.uniform(-0.01, 0.01)
    grain = 0.5 + 0.5 * np.sin(2 * np.pi * t)
    grain = grain ** 2
    streak = Image.fromarray(rng.standard_normal((W // 5, 5)).astype(np.float32), "F").resize((W, W), Image.BICUBIC)
    streak = np.asarray(streak) * 0.035
    shade = 0.9 - 0.12 * grain + streak
    # planks
    plank = rng.uniform(0.3, 0.45) * sc.S * sc.k
    ph = rng.uniform(0, plank)
    seam = np.abs(((sc.yy + ph) % plank) - plank / 2) > plank / 2 - 1.0
    shade = shade * np.where(seam, 0.6, 1.0)
    col = base[None, None, :] * shade[..., None]
    if mask is None:
        sc.img[...] = col
    else:
        sc.paint(mask, col)


def _laminate(sc: Scene) -> None:
    base = _jit(sc.rng, _c(_LAMINATE[sc.rng.integers(len(_LAMINATE))]), 0.02, 0.05)
    speck = sc.noise(sc.W // 6, 0.04) + sc.noise(8, 0.04)
    sc.img[...] = base[None, None, :] * (1 + speck[..., None])


def _tray(sc: Scene, hw: float, hh: float, col=None) -> None:
    """A plastic tray centred in the frame, ``hw`` x ``hh`` half-size (px, before perspective)."""
    rng = sc.rng
    col = _jit(rng, _c(_TRAYS[rng.integers(len(_TRAYS))]) if col is None else col, 0.03, 0.06)
    c = sc.c
    hh = hh * sc.k
    cy = c + rng.uniform(-0.03, 0.03) * sc.S
    cx = c + rng.uniform(-0.03, 0.03) * sc.S
    rad = 0.06 * sc.S
    # shadow on the table, then the lip, then the surface
    m_sh = _rrect_mask(sc, cx + 0.015 * sc.S, cy + 0.03 * sc.S, hw, hh + 0.02 * sc.S, rad, soft=0.02 * sc.S)
    sc.img *= (1 - 0.4 * m_sh)[..., None]
    m_out = _rrect_mask(sc, cx, cy, hw, hh, rad)
    m_in = _rrect_mask(sc, cx, cy + 0.006 * sc.S, hw - 0.025 * sc.S, hh - 0.03 * sc.S * sc.k, rad * 0.7)
    grad = 1.0 + 0.12 * ((sc.yy - cy) / (hh + 1))
    sc.paint(m_out, col[None, None, :] * np.clip(grad, 0.7, 1.2)[..., None] * 1.08)
    surf = 0.95 + sc.noise(sc.W // 10, 0.025) + 0.06 * (-(sc.xx - cx) / hw * sc.lx - (sc.yy - cy) / hh * sc.ly)
    sc.paint(m_in, col[None, None, :] * surf[..., None])
    # inner edge shadow line (the lip casts onto the surface)
    edge = np.clip(m_out - _rrect_mask(sc, cx, cy + 0.012 * sc.S, hw - 0.03 * sc.S, hh - 0.04 * sc.S * sc.k,
                                       rad * 0.6, soft=0.01 * sc.S), 0, 1) * m_in
    sc.img *= (1 - 0.25 * edge)[..., None]


def _rrect_mask(sc: Scene, cx, cy, hw, hh, rad, soft: float = 0.7) -> np.ndarray:
    dx = np.abs(sc.xx - cx) - (hw - rad)
    dy = np.abs(sc.yy - cy) - (hh - rad)
    outside = np.sqrt(np.maximum(dx, 0) ** 2 + np.maximum(dy, 0) ** 2)
    inside = np.minimum(np.maximum(dx, dy), 0)
    sd = outside + inside - rad
    return np.clip(0.5 - sd / (2 * soft), 0, 1)


def _background(sc: Scene, base: str) -> None:
    r = sc.rng.random()
    if base == "定食":
        _wood(sc) if r < 0.7 else _laminate(sc)
        _tray(sc, sc.S * sc.rng.uniform(0.56, 0.62), sc.S * sc.rng.uniform(0.6, 0.66))
    elif r < 0.5:
        _wood(sc) if sc.rng.random() < 0.7 else _laminate(sc)
        _tray(sc, sc.S * sc.rng.uniform(0.5, 0.62), sc.S * sc.rng.uniform(0.55, 0.7))
    elif r < 0.85:
        _wood(sc)
    else:
        _laminate(sc)


# ---------------------------------------------------------------------------------------------
# vessels

_BOWL_STYLES = {
    # ext, rim, interior, band
    "don": [("#F1EEE6", "#FAF8F2", "#F4F1EA", "#2F4F8F"), ("#5B3A26", "#7A5238", "#E9E1D0", None),
            ("#252221", "#3A2F2B", "#8E2B20", "#B8862E"), ("#E8E4DA", "#F6F3EC", "#F1EDE4", "#A8322A")],
    "ramen": [("#F3F1EB", "#FBFAF6", "#F6F4EE", "#C4302B"), ("#F1EFEA", "#FAF9F5", "#F4F2EC", "#1F2F5A"),
              ("#2A2625", "#3C3432", "#F0EDE6", "#C4302B")],
    "noodle": [("#2B2321", "#4A3A33", "#7E2A1E", None), ("#5A3826", "#7B5440", "#3A2A22", None),
               ("#3C2F2A", "#5B4A40", "#E7E1D6", "#9B7B3A"), ("#1F1D1C", "#35302D", "#8A2E22", "#C29A42")],
    "soup": [("#7A2218", "#93342A", "#5C1A12", None), ("#231E1C", "#3A302C", "#7B2218", None)],
    "rice": [("#F1EEE6", "#FAF8F2", "#F4F1EA", "#2F4F8F"), ("#E9E4DA", "#F6F3EC", "#F1EDE4", "#6B8E5A")],
}

_GLASS_TINT = _c("#BFE4F0")


def _bowl(sc: Scene, cx, cy, R, kind: str, glass: bool, depth: float = 0.45) -> tuple[Region, np.ndarray, float]:
    """Draw a bowl; return the inner region (rim level), the interior mask, and the side height."""
    rng, k = sc.rng, sc.k
    H = R * depth * math.sqrt(1 - k * k) * 1.4
    sc.shadow(cx, cy + H * 0.6, R * 0.98, k * R + H * 0.45)
    low = sc.ell(cx, cy, R, k * R + H, soft=0.7) * (sc.yy >= cy)
    foot = sc.ell(cx, cy + H, R * 0.5, k * R * 0.5)
    body = np.maximum(np.maximum(sc.ell(cx, cy, R, k * R), low), foot)
    t = 0.06 * R  # rim thickness
    Ri = R - t
    inner = sc.ell(cx, cy + t * 0.25, Ri, k * Ri)
    lx = sc.lx
    if glass:
        under = sc.img

        def glass_body(ys, xs, w):
            nx = np.clip((xs - cx) / R, -1, 1)
            col = under[w] * 0.62 + _GLASS_TINT * 0.42
            low = ys > cy
            spec = (np.exp(-((nx + lx * 0.62) / 0.05) ** 2) * 0.85 + np.exp(-((nx - lx * 0.8) / 0.03) ** 2) * 0.5
                    + np.clip(np.abs(nx) - 0.88, 0, 1) * 5) * low
            return col + (1 - col) * np.clip(spec, 0, 1)[..., None]

        sc.paint(body, glass_body)
        # the glass wall seen through the bowl (bottom edge) and a thick bright rim
        sc.paint(np.clip(sc.ell(cx, cy + H * 0.55, R * 0.8, k * R * 0.8 + H * 0.25) -
                         sc.ell(cx, cy + H * 0.55, R * 0.77, k * R * 0.77 + H * 0.25), 0, 1) * 0.5,
                 np.ones(3, np.float32))
        rim = np.clip(sc.ell(cx, cy, R, k * R) - inner, 0, 1)
        sc.paint(rim, np.array([0.97, 0.99, 1.0], np.float32))
        sc.paint(inner, lambda ys, xs, w: sc.img[w] * 0.55 + _GLASS_TINT * 0.47)
        return Region(cx, cy + t * 0.25, Ri, k), inner, H
    ext, rimc, intc, band = _BOWL_STYLES[kind][rng.integers(len(_BOWL_STYLES[kind]))]
    ext, rimc, intc = _jit(rng, _c(ext), 0.02, 0.04), _jit(rng, _c(rimc), 0.02, 0.04), _c(intc)
    bm = None
    if band is not None:
        bm = np.clip(sc.ell(cx, cy, R, k * R + H * 0.34) - sc.ell(cx, cy, R, k * R + H * 0.2), 0, 1)

    def body_col(ys, xs, w):
        nx = np.clip((xs - cx) / R, -1, 1)
        ny = np.clip((ys - cy) / (k * R + H), 0, 1)
        lit = (0.8 + 0.3 * nx * lx - 0.3 * ny * ny)[..., None]
        col = ext * lit
        if bm is not None:
            col = col + (_c(band) * lit - col) * (0.9 * bm[w] * (ys > cy))[..., None]
        spec = np.exp(-((nx + lx * 0.55) / 0.09) ** 2) * (ys > cy) * (1 - ny) * 0.55
        return col + (1 - col) * spec[..., None]

    sc.paint(body, body_col)
    rim = sc.ell(cx, cy, R, k * R)
    sc.paint(rim, rimc)
    sc.paint(inner, lambda ys, xs, w: intc * (0.7 + 0.3 * np.clip((ys - (cy - k * Ri)) / (2 * k * Ri), 0, 1))[..., None])
    return Region(cx, cy + t * 0.25, Ri, k), inner, H


def _plate(sc: Scene, cx, cy, R, aspect: float, glass: bool, well: float = 0.8) -> tuple[Region, np.ndarray]:
    """A plate (``aspect`` > 1: oval). Returns the well region and the whole plate top mask."""
    rng, k = sc.rng, sc.k
    rx, ry = R * aspect, R * k
    th = 0.05 * R * math.sqrt(1 - k * k) * 1.6
    sc.shadow(cx, cy + th, rx * 1.01, ry * 1.01, strength=0.4)
    under = sc.img
    edge = sc.ell(cx, cy + th, rx, ry)
    top = sc.ell(cx, cy, rx, ry)
    wellm = sc.ell(cx, cy + th * 0.3, rx * well, ry * well, soft=1.5)
    if glass:
        sc.paint(edge, lambda ys, xs, w: under[w] * 0.5 + _GLASS_TINT * 0.5)
        sc.paint(top, lambda ys, xs, w: under[w] * 0.6 + _GLASS_TINT * 0.4 + 0.05)
        ring = np.clip(top - sc.ell(cx, cy, rx * 0.97, ry * 0.97), 0, 1)
        sc.paint(ring, np.ones(3, np.float32) * 0.98)
        return Region(cx, cy + th * 0.3, R * well, k), top
    styles = [("#F5F4F0", None), ("#F2F0EA", "#2F4F8F"), ("#EFEDE7", "#9A3A2E"), ("#F4F2EC", "#3C6E58"),
              ("#E8E2D4", None)]
    base, line = styles[rng.integers(len(styles))]
    base = _jit(rng, _c(base), 0.01, 0.03)
    sc.paint(edge, base * 0.72)
    lx, ly = sc.lx, sc.ly
    line_m = None
    if line is not None:
        line_m = np.clip(sc.ell(cx, cy, rx * 0.93, ry * 0.93) - sc.ell(cx, cy, rx * 0.9, ry * 0.9), 0, 1) * 0.85

    def top_col(ys, xs, w):
        nx = (xs - cx) / rx
        ny = (ys - cy) / ry
        col = base * (0.97 + 0.06 * (nx * lx + ny * ly))[..., None]
        if line_m is not None:
            col = col + (_c(line) - col) * line_m[w][..., None]
        col = col * (1 - 0.06 * wellm[w])[..., None]  # the well is a touch darker
        spec = np.exp(-(((nx + lx * 0.5) / 0.25) ** 2 + ((ny + ly * 0.6) / 0.2) ** 2)) * 0.25
        return col + (1 - col) * spec[..., None]

    sc.paint(top, top_col)
    return Region(cx, cy + th * 0.3, R * well, k), top


# ---------------------------------------------------------------------------------------------
# food surfaces

_BROTH = {
    "うどん": "#D4AA62", "そば": "#3D200E", "醤油ラーメン": "#6A3012", "味噌ラーメン": "#C9843A",
    "塩ラーメン": "#E3C25E", "豚骨ラーメン": "#F3EFE6",
}
_HOT_RED = _c("#B01E0C")


def _rice(sc: Scene, reg: Region, clip: np.ndarray, heat: int, dome: float = 0.0) -> None:
    """White rice with grains; ``dome`` > 0 shades it as a mound."""
    rng = sc.rng
    base = _jit(rng, _c("#F1EDE4"), 0.01, 0.03)
    shade = np.ones((sc.W, sc.W), np.float32)
    w = sc._win(clip)
    if w is not None:
        xs = (sc.xx[w] - reg.cx) / reg.r
        ys = (sc.yy[w] - reg.cy) / (reg.r * reg.k)
        sh = 1.0 - 0.22 * np.clip(np.sqrt(xs * xs + ys * ys), 0, 1.3) ** 3
        if dome > 0:
            sh += dome * 0.18 * np.clip(-(xs * sc.lx + ys * sc.ly), -1, 1)
        shade[w] = sh
    sc.paint(clip, lambda ys, xs, w: base * shade[w][..., None])
    _grains(sc, "rice", max(0.075 * reg.r, 0.02 * sc.S), clip, shade, alpha=0.9)
    if heat == 2:
        sc.paint(clip * 0.55, _HOT_RED)


def _disk(rng: np.random.Generator, radius: float = 1.0) -> tuple[float, float]:
    r = radius * math.sqrt(rng.random())
    a = rng.uniform(0, 2 * math.pi)
    return r * math.cos(a), r * math.sin(a)


# Grain textures (rice, fried rice) are drawn once per canvas size and grain size from a fixed
# seed, then every picture uses them shifted and flipped at random: thousands of grains per
# picture at the cost of a few array operations.
_GRAIN_KINDS = {
    "rice": [(1.0, "#FBFAF6", 0.01, 0.03)],
    "chahan": [(0.62, "#E2BC6A", 0.05, 0.1), (0.18, "#F6D84A", 0.03, 0.05), (0.07, "#A06A3A", 0.05, 0.1),
               (0.07, "#3F7D2A", 0.05, 0.1), (0.06, "#D98A7A", 0.05, 0.05)],
}


@functools.lru_cache(maxsize=8)
def _grain_texture(kind: str, w: int, gl: int, squash: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(kind.encode()) + 7919 * gl + w)
    L = Layer(w, 2)
    n = int(w * w / (gl * gl) * 1.6)
    probs = np.array([p for p, *_ in _GRAIN_KINDS[kind]])
    choice = rng.choice(len(probs), size=n, p=probs / probs.sum())
    xs, ys = rng.uniform(-gl, w + gl, n), rng.uniform(-gl, w + gl, n)
    angs = rng.uniform(0, math.pi, n)
    shadow = _c("#D3CCBE") if kind == "rice" else _c("#8A6A3A")
    for x, y, a, ci in zip(xs.tolist(), ys.tolist(), angs.tolist(), choice.tolist()):
        _, col, amt, br = _GRAIN_KINDS[kind][ci]
        dx, dy = math.cos(a) * gl / 2, math.sin(a) * gl / 2 * squash
        L.line([(x - dx + 0.5, y - dy + 0.8), (x + dx + 0.5, y + dy + 0.8)], shadow, gl * 0.55)
        L.line([(x - dx, y - dy), (x + dx, y + dy)], _jit(rng, _c(col), amt, br), gl * 0.5)
    L.box = [0, 0, w, w]
    rgb, a = L.rgba((0, 0, w, w))
    rgb.setflags(write=False)
    a.setflags(write=False)
    return rgb, a


def _grains(sc: Scene, kind: str, gl: float, clip: np.ndarray, shade: np.ndarray | None = None,
            alpha: float = 1.0) -> None:
    """Composite a randomly shifted grain texture onto the canvas inside ``clip``."""
    rgb, a = _grain_texture(kind, sc.W, max(2, int(round(gl))), 0.7 if kind == "rice" else 1.0)
    rng = sc.rng
    dy, dx = (int(v) for v in rng.integers(0, sc.W, 2))
    flip = bool(rng.random() < 0.5)
    w = sc._win(clip)
    if w is None:
        return
    ys = (np.arange(w[0].start, w[0].stop) + dy) % sc.W
    xs = (np.arange(w[1].start, w[1].stop) + dx) % sc.W
    if flip:
        xs = sc.W - 1 - xs
    t_rgb, t_a = rgb[np.ix_(ys, xs)], a[np.ix_(ys, xs)]
    c = clip[w] * alpha
    if shade is not None:
        t_rgb = t_rgb * shade[w][..., None]
    sub = sc.img[w]
    sub *= (1 - t_a * c)[..., None]
    sub += t_rgb * c[..., None]


def _noodle_path(rng, reg: Region, length: float, wavy: float, spread: float, curl: float = 1.0):
    """One noodle in surface coordinates: an arc around a point near the centre (noodles lie
    folded round the bowl), a little irregular, optionally wavy; clipped to the broth."""
    ou, ov = _disk(rng, 0.35)
    rad = spread * math.sqrt(rng.uniform(0.08, 1.0))
    a0 = rng.uniform(0, 2 * math.pi)
    span = length / max(rad, 0.2) * rng.choice([-1, 1])
    n = 36 if wavy else 24
    phase = rng.uniform(0, 2 * math.pi)
    drift = rng.normal(0, 0.3 * curl)
    freq = rng.uniform(2.0, 5.0)
    pts = []
    for i in range(n + 1):
        t = i / n
        a = a0 + span * t
        r = rad * (1 + drift * math.sin(t * freq + phase))
        w = wavy * math.sin(phase + i * 1.5)
        u = ou + (r + w) * math.cos(a)
        v = ov + (r + w) * math.sin(a)
        if u * u + v * v > 0.9:
            if len(pts) > 3:
                break
            pts = []
            continue
        pts.append(reg.px(u, v))
    return pts


def _noodles(sc: Scene, reg: Region, clip, n: int, width: float, col, wavy: float, length: float,
             spread: float, curl: float = 1.0) -> None:
    rng = sc.rng
    L = sc.layer()
    w = width * reg.r
    dark = col * 0.62
    hi = np.clip(col * 1.12 + 0.08, 0, 1)
    ox, oy = sc.lx * w * 0.18, sc.ly * w * 0.18
    for _ in range(n):
        pts = _noodle_path(rng, reg, length * rng.uniform(0.7, 1.2), wavy, spread, curl)
        if len(pts) < 3:
            continue
        c = _jit(rng, col, 0.02, 0.05)
        L.line(pts, dark, w)
        L.line(pts, c, w * 0.72)
        L.line([(x + ox, y + oy) for x, y in pts], hi, w * 0.25)
    sc.flush(L, clip=clip)


def _soup(sc: Scene, base: str, reg: Region, clip: np.ndarray, heat: int, cold: bool, heap: bool) -> Region:
    """Broth and noodles. Returns the region where the toppings go."""
    rng = sc.rng
    broth = _jit(rng, _c(_BROTH[base]), 0.03, 0.05)
    if heat == 2:
        broth = _mix(broth, _HOT_RED, 0.75)
    if cold:
        broth = _mix(broth, sc.img[int(reg.cy), int(reg.cx)], 0.35)
    rho = sc.rho(reg)
    shade = 1.0 - 0.3 * np.clip(rho, 0, 1.2) ** 2 + sc.noise(6, 0.05)
    sc.paint(clip, broth[None, None, :] * shade[..., None])
    # a soft reflection of the light on the far side of the liquid
    refl = sc.ell(reg.cx + sc.lx * reg.r * 0.35, reg.cy + sc.ly * reg.r * reg.k * 0.45,
                  reg.r * 0.35, reg.r * reg.k * 0.16, soft=0.05 * reg.r)
    sc.paint(refl * clip * 0.22, np.ones(3, np.float32))
    ramen = base.endswith("ラーメン")
    if ramen:  # oil drops
        L = sc.layer()
        oil = np.clip(broth * 1.25 + np.array([0.12, 0.1, 0.0], np.float32), 0, 1)
        for _ in range(int(rng.integers(18, 34))):
            u, v = _disk(rng, 0.95)
            x, y = reg.px(u, v)
            r = reg.r * rng.uniform(0.012, 0.04)
            L.ellipse(x, y, r, r * reg.k, oil)
        sc.flush(L, clip=clip, alpha=0.7)
    spread = 0.62 if heap else 0.72
    if base == "うどん":
        _noodles(sc, reg, clip, int(rng.integers(16, 22)) * (2 if heap else 1), 0.13, _c("#F3ECDA"), 0.0, 1.3,
                 spread, curl=0.6)
    elif base == "そば":
        _noodles(sc, reg, clip, int(rng.integers(45, 60)) * (2 if heap else 1), 0.04, _c("#86705A"), 0.0, 1.4,
                 spread, curl=0.8)
    else:
        # ramen: the noodles gather in the middle, the broth shows all round
        _noodles(sc, reg, clip, int(rng.integers(30, 38)) * (2 if heap else 1), 0.062, _c("#EBD27E"), 0.022,
                 1.1, spread * 0.8, curl=0.9)
    # the broth covers the noodles here and there
    sink = np.clip(sc.noise(7, 3.0) - 0.4, 0, 1) * clip * (0.45 if ramen else 0.35)
    sc.paint(sink, broth)
    if heap:  # a second, higher layer of noodles
        up = Region(reg.cx, reg.cy - reg.r * reg.k * 0.12, reg.r * 0.7, reg.k)
        _noodles(sc, up, None, int(rng.integers(8, 12)), 0.085 if base == "うどん" else 0.04,
                 _c("#F3ECDA") if base == "うどん" else (_c("#86705A") if base == "そば" else _c("#EBD27E")),
                 0.0 if base in ("うどん", "そば") else 0.025, 1.0, 0.55)
        return Region(reg.cx, reg.cy - reg.r * reg.k * 0.15, reg.r * 0.8, reg.k)
    return reg.scaled(0.92)


def _bowl_dish(sc: Scene, base: str, topping, heat: int, heap: bool, cold: bool) -> tuple[Region, np.ndarray]:
    S, rng = sc.S, sc.rng
    R = S * rng.uniform(0.37, 0.41) * (1.1 if heap else 1.0)
    cx = sc.c + rng.uniform(-0.02, 0.02) * S
    cy = sc.c + rng.uniform(-0.06, -0.02) * S + (0.04 * S if heap and base == "丼" else 0.0)
    kind = "don" if base == "丼" else ("ramen" if base.endswith("ラーメン") else "noodle")
    inner, imask, H = _bowl(sc, cx, cy, R, kind, cold)
    drop = inner.r * 0.09 * math.sqrt(1 - sc.k ** 2)
    food = Region(inner.cx, inner.cy + drop, inner.r * 0.95, sc.k)
    fmask = sc.ell(food.cx, food.cy, food.r, food.r * food.k) * imask
    if base == "丼":
        if heap:
            h = inner.r * 0.42 * math.sqrt(1 - sc.k ** 2) * 1.4
            mound = sc.ell(inner.cx, inner.cy - h * 0.5, inner.r * 0.97, inner.r * sc.k + h * 0.5)
            fmask = np.maximum(fmask, mound * np.maximum(imask, (sc.yy < inner.cy).astype(np.float32)))
            food = Region(inner.cx, inner.cy - h * 0.55, inner.r * 0.9, sc.k)
            _rice(sc, food, fmask, heat, dome=1.0)
            return food.scaled(0.95), fmask
        _rice(sc, food, fmask, heat)
        return food.scaled(0.93), fmask
    top = _soup(sc, base, food, fmask, heat, cold, heap)
    return top, fmask


def _curry(sc: Scene, heat: int, heap: bool, cold: bool) -> tuple[Region, np.ndarray]:
    S, rng = sc.S, sc.rng
    R = S * rng.uniform(0.33, 0.36) * (1.12 if heap else 1.0)
    cx = sc.c + rng.uniform(-0.02, 0.02) * S
    cy = sc.c + rng.uniform(-0.03, 0.0) * S
    well, top = _plate(sc, cx, cy, R, 1.3, cold, well=0.82)
    k = sc.k
    # roux: right part of the well, irregular edge
    rx = well.r * 1.3
    roux_c = _jit(rng, _c("#84501F"), 0.04, 0.06)
    if heat == 2:
        roux_c = _mix(roux_c, _HOT_RED, 0.7)
    roux_m = sc.ell(cx + rx * 0.22, well.cy + well.r * k * 0.04, rx * 0.72, well.r * k * 0.9, soft=1.2)
    roux_m = np.clip(roux_m * (1 + sc.noise(9, 0.6)), 0, 1)
    rreg = Region(cx + rx * 0.3, well.cy, well.r * 0.8, k)
    shade = 1 - 0.25 * np.clip(sc.rho(rreg), 0, 1.3) ** 2 + sc.noise(10, 0.08)
    sc.paint(roux_m, roux_c[None, None, :] * shade[..., None])
    # chunks: potato, carrot, meat
    L = sc.layer()
    for _ in range(int(rng.integers(5, 9))):
        u, v = _disk(rng, 0.75)
        x, y = rreg.px(u * 0.9 + 0.1, v)
        col = _c(["#E1C472", "#E0782C", "#5C3218", "#D9B860"][rng.integers(4)])
        s = rreg.r * rng.uniform(0.09, 0.15)
        _blob(L, rng, x, y, s, s * 0.8, _jit(rng, col, 0.04, 0.06), 7, 0.25)
    sc.flush(L, clip=roux_m, alpha=0.95)
    # glossy spots on the roux
    L = sc.layer()
    for _ in range(int(rng.integers(10, 20))):
        u, v = _disk(rng, 0.85)
        x, y = rreg.px(u, v)
        r = rreg.r * rng.uniform(0.01, 0.03)
        L.ellipse(x, y, r * 1.6, r, np.array([1, 0.95, 0.88], np.float32))
    sc.flush(L, clip=roux_m, alpha=0.5)
    # rice mound on the left
    rice = Region(cx - rx * 0.36, well.cy - well.r * k * 0.05 - (0.04 * S if heap else 0), well.r * (0.62 if heap else 0.55), k)
    h = rice.r * (0.5 if heap else 0.3) * math.sqrt(1 - k * k) * 1.5
    rmask = sc.ell(rice.cx, rice.cy - h * 0.4, rice.r, rice.r * k + h * 0.4, soft=1.2)
    rmask = np.clip(rmask * (1 + sc.noise(12, 0.5)), 0, 1)
    _rice(sc, Region(rice.cx, rice.cy - h * 0.4, rice.r, k), rmask, 0, dome=1.0)
    if heat == 1 or heat == 2:
        pass  # flakes come later, over everything
    area = Region(cx - rx * 0.02, well.cy - well.r * k * 0.05, well.r * 0.85, k)
    return area, np.maximum(rmask, roux_m)


def _chahan(sc: Scene, heat: int, heap: bool, cold: bool) -> tuple[Region, np.ndarray]:
    S, rng = sc.S, sc.rng
    R = S * rng.uniform(0.36, 0.4) * (1.1 if heap else 1.0)
    cx = sc.c + rng.uniform(-0.02, 0.02) * S
    cy = sc.c + rng.uniform(0.0, 0.03) * S
    well, top = _plate(sc, cx, cy, R, 1.05, cold, well=0.78)
    k = sc.k
    dr = well.r * (0.82 if heap else 0.74)
    h = dr * (1.1 if heap else 0.6) * math.sqrt(1 - k * k) * 1.2
    dcy = well.cy - h * 0.45
    dome_m = sc.ell(cx, dcy, dr, dr * k + h * 0.5, soft=1.0)
    dome_m = np.clip(dome_m * (1 + sc.noise(14, 0.5)), 0, 1)
    # contact shadow under the dome
    sc.img *= (1 - 0.3 * sc.ell(cx + 0.02 * S, well.cy + dr * k * 0.1, dr * 1.04, dr * k, soft=0.03 * S))[..., None]
    base = _jit(rng, _c("#D6AA55"), 0.03, 0.05)
    if heat == 2:
        base = _mix(base, _HOT_RED, 0.6)
    xs = (sc.xx - cx) / dr
    ys = (sc.yy - dcy) / (dr * k + h * 0.5)
    shade = 1.0 + 0.25 * np.clip(-(xs * sc.lx + ys * sc.ly), -1, 1) - 0.3 * np.clip(xs * xs + ys * ys, 0, 1) ** 1.5
    sc.paint(dome_m, base[None, None, :] * shade[..., None])
    # grains of rice, egg, browned bits, green onion and ham
    _grains(sc, "chahan", max(0.06 * dr, 0.02 * S), dome_m, shade)
    if heat == 2:
        sc.paint(dome_m * 0.45, _HOT_RED)
    return Region(cx, dcy - (dr * k + h * 0.5) * 0.25, dr * 0.75, k * 0.85), dome_m


def _teishoku(sc: Scene, heat: int, heap: bool, cold: bool) -> tuple[Region, np.ndarray]:
    S, rng = sc.S, sc.rng
    k = sc.k
    c = sc.c
    # main plate at the back
    pR = S * rng.uniform(0.31, 0.33) * (1.08 if heap else 1.0)
    pcx, pcy = c + rng.uniform(-0.03, 0.03) * S, c - S * 0.1 * (k / 0.7)
    well, top = _plate(sc, pcx, pcy, pR, 1.22, cold, well=0.82)
    # shredded cabbage at the back of the plate
    L = sc.layer()
    cab = Region(pcx + well.r * 0.35, pcy - well.r * k * 0.25, well.r * 0.6, k)
    for _ in range(70):
        u, v = _disk(rng, 0.9)
        x, y = cab.px(u, v * 0.8)
        a = rng.uniform(-0.6, 0.6)
        ln = cab.r * rng.uniform(0.2, 0.4)
        col = _jit(rng, _c("#CDE2A0") if rng.random() < 0.7 else _c("#F2F4E0"), 0.03, 0.05)
        L.line([(x - math.cos(a) * ln / 2, y - math.sin(a) * ln / 2),
                (x + math.cos(a) * ln / 2, y + math.sin(a) * ln / 2)], col, cab.r * 0.04)
    sc.flush(L)
    main = Region(pcx - well.r * 0.12, pcy + well.r * k * 0.05, well.r * 0.85, k)
    # rice bowl front left, miso soup front right
    rR = S * rng.uniform(0.14, 0.155) * (1.12 if heap else 1.0)
    rcx, rcy = c - S * rng.uniform(0.24, 0.27), c + S * 0.23 * (k / 0.7)
    inner, imask, H = _bowl(sc, rcx, rcy, rR, "rice", cold, depth=0.75)
    rice = Region(inner.cx, inner.cy, inner.r * 0.95, k)
    rm = sc.ell(rice.cx, rice.cy, rice.r, rice.r * k) * imask
    if heap:
        h = inner.r * 0.32
        mound = sc.ell(inner.cx, inner.cy - h * 0.5, inner.r * 0.97, inner.r * k + h * 0.5)
        rm = np.maximum(rm, mound * np.maximum(imask, (sc.yy < inner.cy).astype(np.float32)))
        rice = Region(inner.cx, inner.cy - h * 0.5, inner.r * 0.95, k)
    _rice(sc, rice, rm, 0, dome=1.0 if heap else 0.0)
    sR = S * rng.uniform(0.13, 0.145)
    scx, scy = c + S * rng.uniform(0.24, 0.27), c + S * 0.23 * (k / 0.7)
    inner, imask, H = _bowl(sc, scx, scy, sR, "soup", cold, depth=0.7)
    miso = _jit(rng, _c("#B07A3E"), 0.04, 0.05)
    if heat == 2:
        miso = _mix(miso, _HOT_RED, 0.6)
    sreg = Region(inner.cx, inner.cy + inner.r * 0.05, inner.r * 0.95, k)
    sm = sc.ell(sreg.cx, sreg.cy, sreg.r, sreg.r * k) * imask
    sc.paint(sm, miso[None, None, :] * (1 - 0.25 * np.clip(sc.rho(sreg), 0, 1.2) ** 2)[..., None])
    L = sc.layer()
    for _ in range(int(rng.integers(3, 6))):  # tofu cubes
        u, v = _disk(rng, 0.6)
        x, y = sreg.px(u, v)
        s = sreg.r * 0.12
        L.polygon([(x - s, y - s * k), (x + s, y - s * k), (x + s, y + s * k), (x - s, y + s * k)], _c("#F4EFE2"))
    for _ in range(int(rng.integers(2, 4))):  # a little wakame
        u, v = _disk(rng, 0.6)
        x, y = sreg.px(u, v)
        _blob(L, rng, x, y, sreg.r * 0.14, sreg.r * 0.08, _c("#2C4A22"), 7, 0.35)
    sc.flush(L, clip=sm)
    return main, top


def _blob(L: Layer, rng, x, y, rx, ry, col, n: int = 9, jag: float = 0.2, rot: float | None = None) -> None:
    rot = rng.uniform(0, 2 * math.pi) if rot is None else rot
    pts = []
    for i in range(n):
        a = 2 * math.pi * i / n
        r = 1 + rng.uniform(-jag, jag)
        px, py = math.cos(a) * rx * r, math.sin(a) * ry * r
        pts.append((x + px * math.cos(rot) - py * math.sin(rot), y + px * math.sin(rot) + py * math.cos(rot)))
    L.polygon(pts, col)


# ---------------------------------------------------------------------------------------------
# toppings: each draws into ``reg`` (surface coordinates, unit disk); ``amt`` scales the amount


def _place(rng, n: int, radius: float, min_d: float) -> list[tuple[float, float]]:
    pts: list[tuple[float, float]] = []
    for _ in range(n * 20):
        if len(pts) == n:
            break
        u, v = _disk(rng, radius)
        if all((u - a) ** 2 + (v - b) ** 2 >= min_d ** 2 for a, b in pts):
            pts.append((u, v))
    return sorted(pts, key=lambda p: p[1])


def _rot_pts(pts, x, y, a, k):
    ca, sa = math.cos(a), math.sin(a)
    return [(x + px * ca - py * sa, y + (px * sa + py * ca) * k) for px, py in pts]


def _t_salmon(sc: Scene, reg: Region, amt: float) -> None:
    rng = sc.rng
    n = int(round(rng.integers(7, 10) * amt))
    L = sc.layer()
    a0 = rng.uniform(0, 2 * math.pi)
    slices = []
    for i in range(n):
        a = a0 + 2 * math.pi * i / n + rng.normal(0, 0.12)
        slices.append((a, math.sin(a)))
    for a, _ in sorted(slices, key=lambda s: s[1]):
        ln, wd = reg.r * 0.62, reg.r * 0.27
        cx, cy = reg.px(math.cos(a) * 0.45, math.sin(a) * 0.45)
        body = [(-ln / 2, -wd / 2), (ln / 2, -wd * 0.35), (ln / 2 + wd * 0.15, 0), (ln / 2, wd * 0.35),
                (-ln / 2, wd / 2), (-ln / 2 - wd * 0.2, 0)]
        col = _jit(rng, _c("#F27E45"), 0.04, 0.06)
        L.polygon(_rot_pts([(x + 1, y + 1.5) for x, y in body], cx, cy, a, reg.k), col * 0.65)
        L.polygon(_rot_pts(body, cx, cy, a, reg.k), col)
        for j in range(4):  # white fat stripes across the slice
            t = -ln / 2 + ln * (j + 0.6) / 4.2
            stripe = [(t, -wd * 0.46), (t + wd * 0.35, wd * 0.46)]
            L.line(_rot_pts(stripe, cx, cy, a, reg.k), _c("#FBE4D2"), reg.r * 0.035)
        hl = [(-ln * 0.3, -wd * 0.25), (ln * 0.3, -wd * 0.2)]
        L.line(_rot_pts(hl, cx, cy, a, reg.k), np.clip(col * 1.2 + 0.1, 0, 1), reg.r * 0.03)
    sc.flush(L)


def _fried_tex(sc: Scene, strength: float = 0.25) -> np.ndarray:
    return 1.0 + sc.noise(sc.W // 3, strength) + sc.noise(sc.W // 8, strength * 0.6)


def _t_katsu(sc: Scene, reg: Region, amt: float) -> None:
    """A rounded breaded cutlet cut into strips; each cut shows a thin pale face."""
    rng = sc.rng
    L = sc.layer()
    a = rng.uniform(-0.35, 0.35) + (math.pi / 2 if rng.random() < 0.2 else 0)
    ln, wd = reg.r * 1.55 * math.sqrt(amt), reg.r * 0.8
    n = int(rng.integers(5, 7))
    gap = ln * 0.018
    sw = (ln - gap * (n - 1)) / n
    col = _jit(rng, _c("#C98635"), 0.04, 0.06)
    cut = _c("#E9D3A8")

    def half(x: float) -> float:  # superellipse profile of the cutlet
        t = min(abs(x) / (ln / 2), 1.0)
        return wd / 2 * (1 - t ** 4) ** 0.25

    def strip(x0: float, x1: float, yj: float) -> list[tuple[float, float]]:
        xs = [x0 + (x1 - x0) * j / 3 for j in range(4)]
        return [(x, -half(x) + yj) for x in xs] + [(x, half(x) + yj) for x in reversed(xs)]

    for i in range(n):
        x0 = -ln / 2 + i * (sw + gap)
        yj = rng.uniform(-0.03, 0.03) * wd
        body = strip(x0, x0 + sw, yj)
        L.polygon(_rot_pts([(x + 1.5, y + 2.5) for x, y in body], reg.cx, reg.cy, a, reg.k), col * 0.45)
        L.polygon(_rot_pts(body, reg.cx, reg.cy, a, reg.k), _jit(rng, col, 0.02, 0.04))
        if i < n - 1:
            L.polygon(_rot_pts(strip(x0 + sw * 0.84, x0 + sw, yj), reg.cx, reg.cy, a, reg.k), cut)
        hl = strip(x0 + sw * 0.15, x0 + sw * 0.6, yj - wd * 0.12)
        hl = [(x, y * 0.55 - wd * 0.05) for x, y in hl]
        L.polygon(_rot_pts(hl, reg.cx, reg.cy, a, reg.k), np.clip(col * 1.15 + 0.05, 0, 1))
    sc.flush(L, tex=_fried_tex(sc, 0.3))


def _t_karaage(sc: Scene, reg: Region, amt: float) -> None:
    rng = sc.rng
    n = int(round(rng.integers(5, 7) * amt))
    L = sc.layer()
    for u, v in _place(rng, n, 0.6, 0.42):
        x, y = reg.px(u, v)
        s = reg.r * rng.uniform(0.27, 0.33)
        col = _jit(rng, _c("#93511D"), 0.05, 0.08)
        rot = rng.uniform(0, math.pi)
        _blob(L, rng, x + s * 0.12, y + s * 0.2, s, s * 0.8, col * 0.45, 11, 0.18, rot)
        _blob(L, rng, x, y, s, s * 0.8, col, 11, 0.18, rot)
        _blob(L, rng, x + sc.lx * s * 0.3, y + sc.ly * s * 0.3, s * 0.55, s * 0.4,
              np.clip(col * 1.35 + 0.05, 0, 1), 9, 0.25)
    sc.flush(L, tex=_fried_tex(sc, 0.4))


def _t_ebiten(sc: Scene, reg: Region, amt: float) -> None:
    rng = sc.rng
    n = 2 if amt < 1.3 else 3
    L = sc.layer()
    base_a = rng.uniform(-0.5, 0.5) + math.pi * (rng.random() < 0.5)
    for i in range(n):
        off = (i - (n - 1) / 2) * 0.42
        a = base_a + rng.normal(0, 0.1)
        ln = reg.r * 1.55
        batter = _jit(rng, _c("#E3B562"), 0.04, 0.06)
        # along a gentle curve, thick at the head, thin at the tail
        m = 14
        pts = []
        for j in range(m):
            t = j / (m - 1)
            px = -ln / 2 + ln * t
            py = math.sin(t * math.pi) * reg.r * 0.08 + off * reg.r
            pts.append((px, py, reg.r * (0.22 - 0.11 * t) * rng.uniform(0.9, 1.15)))
        for px, py, r in pts:
            (x, y), = _rot_pts([(px, py)], reg.cx, reg.cy, a, reg.k)
            L.ellipse(x + r * 0.15, y + r * 0.3, r, r * 0.85, batter * 0.55)
        for px, py, r in pts:
            (x, y), = _rot_pts([(px, py)], reg.cx, reg.cy, a, reg.k)
            L.ellipse(x, y, r, r * 0.85, _jit(rng, batter, 0.02, 0.05))
            L.ellipse(x + sc.lx * r * 0.35, y + sc.ly * r * 0.35, r * 0.4, r * 0.3, np.clip(batter * 1.15 + 0.06, 0, 1))
        # red tail fan at the thin end
        tx, ty = ln / 2 + reg.r * 0.02, off * reg.r
        tail = [(tx - reg.r * 0.05, ty), (tx + reg.r * 0.26, ty - reg.r * 0.17), (tx + reg.r * 0.3, ty),
                (tx + reg.r * 0.26, ty + reg.r * 0.17)]
        L.polygon(_rot_pts(tail, reg.cx, reg.cy, a, reg.k), _jit(rng, _c("#D8401F"), 0.04, 0.06))
        L.line(_rot_pts([(tx, ty), (tx + reg.r * 0.2, ty)], reg.cx, reg.cy, a, reg.k), _c("#8E2412"), reg.r * 0.02)
    sc.flush(L, tex=_fried_tex(sc, 0.35))


def _t_tsukimi(sc: Scene, reg: Region, amt: float) -> None:
    rng = sc.rng
    L = sc.layer()
    u, v = _disk(rng, 0.15)
    x, y = reg.px(u, v)
    _blob(L, rng, x, y, reg.r * 0.58, reg.r * 0.58 * reg.k, _c("#F4F1E8"), 12, 0.15)
    sc.flush(L, alpha=0.8)
    L = sc.layer()
    yr = reg.r * 0.27
    L.ellipse(x + yr * 0.08, y + yr * 0.15, yr * 1.04, yr * 0.9, _c("#E08A00"))
    L.ellipse(x, y, yr, yr * 0.86, _jit(rng, _c("#FFB20C"), 0.02, 0.04))
    L.ellipse(x + sc.lx * yr * 0.4, y + sc.ly * yr * 0.35, yr * 0.28, yr * 0.2, _c("#FFF4D0"))
    sc.flush(L)


def _t_oyako(sc: Scene, reg: Region, amt: float) -> None:
    rng = sc.rng
    L = sc.layer()
    for _ in range(int(55 * amt)):  # soft egg
        u, v = _disk(rng, 0.9)
        x, y = reg.px(u, v)
        s = reg.r * rng.uniform(0.1, 0.2)
        col = _c("#F2CC45") if rng.random() < 0.7 else _c("#F8EAB0")
        _blob(L, rng, x, y, s, s * reg.k, _jit(rng, col, 0.03, 0.05), 8, 0.3)
    for u, v in _place(rng, int(8 * amt), 0.7, 0.24):  # chicken
        x, y = reg.px(u, v)
        s = reg.r * rng.uniform(0.12, 0.16)
        col = _jit(rng, _c("#D7AE7E"), 0.04, 0.06)
        _blob(L, rng, x + 1, y + 1.5, s, s * 0.8, col * 0.6, 7, 0.3)
        _blob(L, rng, x, y, s, s * 0.8, col, 7, 0.3)
    for _ in range(3):  # mitsuba leaves
        u, v = _disk(rng, 0.5)
        x, y = reg.px(u, v)
        _blob(L, rng, x, y, reg.r * 0.06, reg.r * 0.035, _c("#4E8F2C"), 6, 0.2)
    sc.flush(L)


def _t_gyu(sc: Scene, reg: Region, amt: float) -> None:
    rng = sc.rng
    L = sc.layer()
    for _ in range(int(24 * amt)):
        u, v = _disk(rng, 0.8)
        x, y = reg.px(u, v)
        s = reg.r * rng.uniform(0.2, 0.3)
        col = _jit(rng, _c("#6A3A1F"), 0.06, 0.1)
        _blob(L, rng, x + 1, y + 1.5, s, s * 0.5, col * 0.55, 10, 0.35)
        _blob(L, rng, x, y, s, s * 0.5, col, 10, 0.35)
        if rng.random() < 0.5:  # fat streak
            a = rng.uniform(0, math.pi)
            L.line([(x - math.cos(a) * s * 0.5, y - math.sin(a) * s * 0.3),
                    (x + math.cos(a) * s * 0.5, y + math.sin(a) * s * 0.3)], _c("#A87650"), reg.r * 0.02)
    for _ in range(int(5 * amt)):  # onion arcs
        u, v = _disk(rng, 0.6)
        x, y = reg.px(u, v)
        r = reg.r * rng.uniform(0.12, 0.2)
        a0 = rng.uniform(0, 2 * math.pi)
        pts = [(x + r * math.cos(a0 + t * 0.25), y + r * reg.k * math.sin(a0 + t * 0.25)) for t in range(8)]
        L.line(pts, _c("#D2B07A"), reg.r * 0.035)
    sc.flush(L)
    L = sc.layer()  # gloss
    for _ in range(int(20 * amt)):
        u, v = _disk(rng, 0.7)
        x, y = reg.px(u, v)
        r = reg.r * rng.uniform(0.01, 0.025)
        L.ellipse(x, y, r * 1.5, r, np.array([1, 0.92, 0.8], np.float32))
    sc.flush(L, alpha=0.5)


def _t_butakimchi(sc: Scene, reg: Region, amt: float) -> None:
    rng = sc.rng
    L = sc.layer()
    items = []
    for _ in range(int(30 * amt)):
        u, v = _disk(rng, 0.8)
        items.append((v, u, rng.random() < 0.6))
    for v, u, cabbage in sorted(items):
        x, y = reg.px(u, v)
        if cabbage:
            s = reg.r * rng.uniform(0.16, 0.24)
            col = _jit(rng, _c("#D4432A"), 0.05, 0.08)
            _blob(L, rng, x + 1, y + 1.5, s, s * 0.65, col * 0.55, 7, 0.3)
            _blob(L, rng, x, y, s, s * 0.65, col, 7, 0.3)
            a = rng.uniform(0, math.pi)
            L.line([(x - math.cos(a) * s * 0.6, y - math.sin(a) * s * 0.35),
                    (x + math.cos(a) * s * 0.6, y + math.sin(a) * s * 0.35)], _c("#F29A6A"), reg.r * 0.03)
        else:
            s = reg.r * rng.uniform(0.17, 0.24)
            col = _jit(rng, _c("#D9A68E"), 0.04, 0.06)
            _blob(L, rng, x + 1, y + 1.5, s, s * 0.5, col * 0.6, 9, 0.3)
            _blob(L, rng, x, y, s, s * 0.5, col, 9, 0.3)
    for _ in range(int(4 * amt)):  # chives
        u, v = _disk(rng, 0.6)
        x, y = reg.px(u, v)
        a = rng.uniform(0, math.pi)
        s = reg.r * 0.15
        L.line([(x - math.cos(a) * s, y - math.sin(a) * s * 0.6), (x + math.cos(a) * s, y + math.sin(a) * s * 0.6)],
               _c("#3E7A22"), reg.r * 0.025)
    sc.flush(L)


def _t_kitsune(sc: Scene, reg: Region, amt: float) -> None:
    rng = sc.rng
    L = sc.layer()
    n = 1 if amt < 1.3 else 2
    for i in range(n):
        a = rng.uniform(-0.5, 0.5)
        hw, hh = reg.r * 0.68, reg.r * 0.52
        ox = (i - (n - 1) / 2) * reg.r * 0.4
        cx, cy = reg.px(ox / reg.r + rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08))
        rect = [(-hw, -hh), (-hw * 0.2, -hh * 1.04), (hw, -hh), (hw * 1.03, 0), (hw, hh), (0, hh * 1.05),
                (-hw, hh), (-hw * 1.03, 0)]
        col = _jit(rng, _c("#C98A3C"), 0.04, 0.06)
        L.polygon(_rot_pts([(x + 1.5, y + 3) for x, y in rect], cx, cy, a, reg.k), col * 0.5)
        L.polygon(_rot_pts(rect, cx, cy, a, reg.k), col * 0.82)
        inner = [(x * 0.86, y * 0.82) for x, y in rect]
        L.polygon(_rot_pts(inner, cx, cy, a, reg.k), col)
        hl = [(x * 0.5 + sc.lx * hw * 0.2, y * 0.4 + sc.ly * hh * 0.2) for x, y in rect]
        L.polygon(_rot_pts(hl, cx, cy, a, reg.k), np.clip(col * 1.12 + 0.03, 0, 1))
    sc.flush(L, tex=1.0 + sc.noise(sc.W // 6, 0.15))


def _t_wakame(sc: Scene, reg: Region, amt: float) -> None:
    rng = sc.rng
    L = sc.layer()
    du, dv = _disk(rng, 0.2)
    for _ in range(int(12 * amt)):
        u, v = _disk(rng, 0.58)
        x, y = reg.px(u + du, v + dv)
        s = reg.r * rng.uniform(0.2, 0.3)
        col = _jit(rng, _c("#22502A"), 0.06, 0.1)
        _blob(L, rng, x, y, s, s * 0.45, col, 12, 0.35)
        a = rng.uniform(0, math.pi)
        L.line([(x - math.cos(a) * s * 0.5, y - math.sin(a) * s * 0.25),
                (x + math.cos(a) * s * 0.5, y + math.sin(a) * s * 0.25)], _c("#4C8A4E"), reg.r * 0.02)
    sc.flush(L, alpha=0.92)


def _t_negi(sc: Scene, reg: Region, amt: float) -> None:
    rng = sc.rng
    L = sc.layer()
    du, dv = _disk(rng, 0.15)
    for _ in range(int(85 * amt)):
        u, v = _disk(rng, 0.62)
        x, y = reg.px(u + du, v + dv)
        r = reg.r * rng.uniform(0.055, 0.075)
        green = rng.random() < 0.75
        col = _jit(rng, _c("#6FB23A") if green else _c("#D8E8A8"), 0.05, 0.08)
        L.ellipse(x + 0.5, y + 0.8, r, r * reg.k, col * 0.5)
        L.ellipse(x, y, r, r * reg.k, col)
        L.ellipse(x, y, r * 0.5, r * 0.5 * reg.k, np.clip(col * 0.6 + 0.35, 0, 1))
    sc.flush(L)


def _t_chashu(sc: Scene, reg: Region, amt: float) -> None:
    rng = sc.rng
    n = int(round(rng.integers(2, 4) * amt))
    L = sc.layer()
    a0 = rng.uniform(0, 2 * math.pi)
    pos = sorted([(math.cos(a0 + i * 2.2) * 0.36, math.sin(a0 + i * 2.2) * 0.36) for i in range(n)],
                 key=lambda p: p[1])
    for u, v in pos:
        x, y = reg.px(u, v)
        r = reg.r * rng.uniform(0.37, 0.42)
        ry = r * reg.k * 1.05
        L.ellipse(x + 1.5, y + 3, r, ry, _c("#3A2012"))
        _blob(L, rng, x, y, r, ry, _jit(rng, _c("#6A3A1D"), 0.04, 0.06), 14, 0.05, 0)
        _blob(L, rng, x, y, r * 0.82, ry * 0.8, _jit(rng, _c("#D29A80"), 0.04, 0.06), 14, 0.06, 0)
        for _ in range(3):  # fat marbling
            a = rng.uniform(0, 2 * math.pi)
            rr = rng.uniform(0.2, 0.6)
            pts = [(x + r * rr * math.cos(a + t * 0.3), y + ry * rr * math.sin(a + t * 0.3)) for t in range(6)]
            L.line(pts, _c("#F0D6C4"), reg.r * 0.03)
    sc.flush(L)


def _t_corn(sc: Scene, reg: Region, amt: float) -> None:
    rng = sc.rng
    L = sc.layer()
    du, dv = _disk(rng, 0.2)
    items = sorted((_disk(rng, 0.5 * math.sqrt(amt)) for _ in range(int(90 * amt))), key=lambda p: p[1])
    for u, v in items:
        x, y = reg.px(u + du, v + dv)
        r = reg.r * rng.uniform(0.05, 0.062)
        col = _jit(rng, _c("#FFB400"), 0.03, 0.05)
        L.ellipse(x + 0.4, y + 0.8, r * 1.1, r * 0.95, col * 0.45)
        L.ellipse(x, y, r, r * 0.85, col)
        L.ellipse(x + sc.lx * r * 0.35, y + sc.ly * r * 0.35, r * 0.35, r * 0.3, _c("#FFF1B0"))
    sc.flush(L)


_TOPPING_DRAW = {
    "サーモン": _t_salmon, "カツ": _t_katsu, "唐揚げ": _t_karaage, "えび天": _t_ebiten, "月見": _t_tsukimi,
    "親子": _t_oyako, "牛": _t_gyu, "豚キムチ": _t_butakimchi, "きつね": _t_kitsune, "わかめ": _t_wakame,
    "ねぎ": _t_negi, "チャーシュー": _t_chashu, "コーン": _t_corn,
}
assert set(_TOPPING_DRAW) == set(TOPPINGS)


# ---------------------------------------------------------------------------------------------
# modifiers drawn over the food


def _chili(sc: Scene, reg: Region, clip: np.ndarray | None, heat: int, soup: bool) -> None:
    rng = sc.rng
    if soup:  # red oil drops on the broth
        L = sc.layer()
        for _ in range(int(rng.integers(14, 24)) * heat):
            u, v = _disk(rng, 1.05)
            x, y = reg.px(u, v)
            r = reg.r * rng.uniform(0.025, 0.07)
            L.ellipse(x, y, r, r * reg.k, _jit(rng, _c("#D8361A"), 0.04, 0.06))
        sc.flush(L, clip=clip, alpha=0.75)
    L = sc.layer()
    for _ in range(int((110 if heat == 1 else 320) * (reg.r / (0.3 * sc.S)) ** 2)):
        u, v = _disk(rng, 1.05)
        x, y = reg.px(u, v)
        r = reg.r * rng.uniform(0.012, 0.025)
        _blob(L, rng, x, y, r, r * 0.7, _jit(rng, _c("#C41A0C"), 0.06, 0.1), 5, 0.3)
    if heat == 2:  # whole red peppers
        for _ in range(int(rng.integers(3, 6))):
            u, v = _disk(rng, 0.7)
            x, y = reg.px(u, v)
            a = rng.uniform(0, math.pi)
            ln = reg.r * 0.25
            pts = [(x + math.cos(a) * ln * t, y + math.sin(a) * ln * t * reg.k + math.sin(t * 3) * ln * 0.1)
                   for t in np.linspace(-0.5, 0.5, 6)]
            L.line(pts, _c("#7A0E06"), reg.r * 0.075)
            L.line(pts, _jit(rng, _c("#D41C0A"), 0.03, 0.05), reg.r * 0.055)
            L.line([pts[0], (pts[0][0] - math.cos(a) * ln * 0.12, pts[0][1] - math.sin(a) * ln * 0.12)],
                   _c("#3E7A22"), reg.r * 0.03)
    sc.flush(L, clip=clip)


def _ice(sc: Scene, reg: Region) -> None:
    """Clear ice cubes: faint bluish faces, bright edges and a glint."""
    rng = sc.rng
    faces, edges = sc.layer(), sc.layer()
    for u, v in _place(rng, int(rng.integers(6, 9)), 0.85, 0.3):
        x, y = reg.px(u, v)
        s = reg.r * rng.uniform(0.13, 0.17)
        a = rng.uniform(0, math.pi / 2)
        sq = [(-s, -s), (s, -s), (s, s), (-s, s)]
        top = _rot_pts(sq, x, y - s * 0.5, a, reg.k)
        front = sorted(sorted(top, key=lambda p: -p[1])[:2], key=lambda p: p[0])
        h = s * 1.3 * math.sqrt(1 - reg.k ** 2)
        side = [front[0], front[1], (front[1][0], front[1][1] + h), (front[0][0], front[0][1] + h)]
        faces.polygon(side, _c("#8FC2D4"))
        faces.polygon(top, _c("#D2EEF7"))
        edges.line(top + [top[0]], np.ones(3, np.float32), reg.r * 0.018)
        edges.line([side[1], side[2], side[3], side[0]], _c("#EAF6FA"), reg.r * 0.012)
        gx, gy = top[0][0] * 0.6 + top[2][0] * 0.4, top[0][1] * 0.6 + top[2][1] * 0.4
        edges.ellipse(gx, gy, s * 0.18, s * 0.1, np.ones(3, np.float32))
    sc.flush(faces, alpha=0.62)
    sc.flush(edges, alpha=0.95)


# ---------------------------------------------------------------------------------------------
# camera, light and sensor


def _camera(sc: Scene, rng: np.random.Generator) -> np.ndarray:
    """Camera jitter: rotate, scale and shift the scene, cropping the central ``S`` x ``S``."""
    S, W = sc.S, sc.W
    img = Image.fromarray((np.clip(sc.img, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    ang = math.radians(rng.uniform(-7, 7))
    scale = rng.uniform(0.93, 1.07)
    tx, ty = rng.uniform(-0.04, 0.04) * S, rng.uniform(-0.04, 0.04) * S
    # output (u, v) -> input (x, y) = c + rotation / scale * ((u, v) - S/2 - t)
    a, b = math.cos(ang) / scale, -math.sin(ang) / scale
    d, e = -b, a
    c = W / 2
    cx0, cy0 = S / 2 + tx, S / 2 + ty
    out = img.transform((S, S), Image.AFFINE, (a, b, c - a * cx0 - b * cy0, d, e, c - d * cx0 - e * cy0),
                        resample=Image.BILINEAR)
    return np.asarray(out, np.float32) * (1 / 255.0)


def _photo(img: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Light gradient, vignette, exposure, white balance, a soft S-curve, sensor noise, lens blur."""
    S = img.shape[0]
    yy, xx = _grid(S)
    xs, ys = xx / S - 0.5, yy / S - 0.5
    a = rng.uniform(0, 2 * math.pi)
    grad = 1.0 + rng.uniform(0.1, 0.25) * (math.cos(a) * xs + math.sin(a) * ys) * 2
    vig = 1.0 - rng.uniform(0.15, 0.3) * (xs * xs + ys * ys) * 2
    expo = rng.uniform(0.92, 1.08)
    wb = np.array([1 + rng.normal(0, 0.035), 1.0, 1 + rng.normal(0, 0.035)], np.float32)
    wb *= np.array([1.03, 1.0, 0.95], np.float32)  # cafeteria light is warm
    out = img * (grad * vig * expo)[..., None] * wb
    np.clip(out, 0, 1, out=out)
    out += 0.24 * out * (1 - out) * (out - 0.5)  # gentle S-curve
    sigma = rng.uniform(0.003, 0.005)  # luma noise only: chroma noise costs JPEG bytes and shows little
    out += rng.standard_normal((S, S, 1), dtype=np.float32) * sigma
    np.clip(out, 0, 1, out=out)
    im = Image.fromarray((out * 255 + 0.5).astype(np.uint8), "RGB")
    # the lens (and the phone's demosaicing) soften everything, sensor grain included
    blur = rng.uniform(0.85, 1.1) * S / 256
    if blur > 0.25:
        im = im.filter(ImageFilter.GaussianBlur(blur))
    return im


# ---------------------------------------------------------------------------------------------
# public


def render_dish(base: str, topping: str | None = None, modifier: str | None = None,
                rng: np.random.Generator | int | None = None, size: int = 256) -> Image.Image:
    """Draw one photo-like ``size`` x ``size`` RGB picture of the dish ``modifier + topping + base``.

    ``rng`` is a ``numpy.random.Generator`` (or an int seed); the same generator state gives
    the same picture. Any combination of parts can be drawn, including ones never used for
    training.
    """
    topping, modifier = _none(topping), _none(modifier)
    if base not in BASES:
        raise ValueError(f"unknown base {base!r}; known: {' '.join(BASES)}")
    if topping is not None and topping not in TOPPINGS:
        raise ValueError(f"unknown topping {topping!r}; known: {' '.join(TOPPINGS)}")
    if modifier is not None and modifier not in MODIFIERS:
        raise ValueError(f"unknown modifier {modifier!r}; known: {' '.join(MODIFIERS)}")
    if size < 16:
        raise ValueError(f"size must be at least 16 px, got {size}")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    heat = {"ピリ辛": 1, "激辛": 2}.get(modifier or "", 0)
    heap = modifier == "大盛り"
    cold = modifier == "冷やし"
    sc = Scene(size, rng)
    _background(sc, base)
    soup = base in _BROTH
    if base in ("丼",) or soup:
        reg, fmask = _bowl_dish(sc, base, topping, heat, heap, cold)
    elif base == "カレー":
        reg, fmask = _curry(sc, heat, heap, cold)
    elif base == "チャーハン":
        reg, fmask = _chahan(sc, heat, heap, cold)
    else:
        reg, fmask = _teishoku(sc, heat, heap, cold)
    if topping is not None:
        _TOPPING_DRAW[topping](sc, reg, 1.4 if heap else 1.0)
    if heat:
        big = reg.scaled(1.1) if base != "定食" else reg
        _chili(sc, big, fmask if soup or base == "丼" else None, heat, soup)
    if cold:
        _ice(sc, reg.scaled(1.1))
    return _photo(_camera(sc, rng), rng)
