"""Pictures of training: image grids, loss curves and progress GIFs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images -> uint8 [N, C, H, W]."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def make_grid(images: torch.Tensor, nrow: int, padding: int = 2) -> torch.Tensor:
    """[-1, 1] images -> one uint8 grid tensor [C, H, W] (torchvision's make_grid)."""
    from torchvision.utils import make_grid as tv_make_grid

    return tv_make_grid(to_uint8(images), nrow=nrow, padding=padding, pad_value=255)


def to_pil(image: torch.Tensor) -> Image.Image:
    """One uint8 [C, H, W] tensor -> a PIL image (RGBA stays RGBA; 1 or 2 channels become RGB)."""
    if image.shape[0] not in (3, 4):
        image = image[:1].expand(3, -1, -1)
    return Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int, padding: int = 2) -> Path:
    """Save [-1, 1] images as one PNG grid, ``nrow`` images a row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    to_pil(make_grid(images, nrow=nrow, padding=padding)).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def save_images(images: torch.Tensor, folder: str | os.PathLike, prefix: str = "sample") -> list[Path]:
    """Save each [-1, 1] image as ``prefix-0000.png``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, img in enumerate(to_uint8(images)):
        p = folder / f"{prefix}-{i:04d}.png"
        to_pil(img).save(p, format="PNG")
        out.append(p)
    return out


def plot_losses(records: Sequence[dict], path: str | os.PathLike, keys: Sequence[str] | None = None,
                title: str = "losses", smooth: int = 20) -> Path:
    """Loss curves from JSONL records (each with ``step`` and numeric loss keys) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if keys is None:
        keys = sorted({k for r in records for k, v in r.items()
                       if k.startswith(("loss", "d_", "g_", "kl")) and isinstance(v, (int, float))})
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for key in keys:
        pts = [(r["step"], r[key]) for r in records if key in r and "step" in r]
        if not pts:
            continue
        steps, vals = zip(*pts)
        ax.plot(steps, vals, alpha=0.25, linewidth=0.8)
        if len(vals) >= smooth:
            k = torch.ones(smooth) / smooth
            sm = torch.nn.functional.conv1d(torch.tensor(vals, dtype=torch.float32)[None, None], k[None, None])[0, 0]
            ax.plot(steps[smooth - 1:], sm.tolist(), label=key, color=ax.lines[-1].get_color())
        else:
            ax.lines[-1].set_label(key)
            ax.lines[-1].set_alpha(1.0)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return save_figure(fig, path)


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Lay out, write atomically (temp file + rename) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def make_gif(frames: Sequence[str | os.PathLike], path: str | os.PathLike, duration_ms: int = 300,
             max_side: int = 768) -> Path | None:
    """An animated GIF of PNG frames (e.g. the fixed-noise grids over training)."""
    frames = [Path(f) for f in frames if Path(f).is_file()]
    if not frames:
        return None
    path = Path(path)
    imgs = []
    for f in frames:
        with Image.open(f) as im:
            im = im.convert("RGB")
            if max(im.size) > max_side:
                s = max_side / max(im.size)
                im = im.resize((round(im.width * s), round(im.height * s)), Image.BILINEAR)
            imgs.append(im.copy())
    return save_gif(imgs, path, duration_ms)


def video_writer_available() -> bool:
    """Whether MP4 can be written: PyAV (``pip install av``, FFmpeg inside its wheels) is installed."""
    import importlib.util

    return importlib.util.find_spec("av") is not None


def save_mp4(images: Sequence[Image.Image], path: str | os.PathLike, duration_ms: int = 80) -> Path:
    """An H.264 MP4 (yuv420p, plays in browsers and phones) of PIL images, ``duration_ms`` each, written
    atomically with PyAV; a clear error without it. Odd sizes are padded by one pixel (yuv420p needs even)."""
    from fractions import Fraction

    from stackgan.errors import UserError

    if not video_writer_available():
        raise UserError("writing MP4 needs PyAV (pip install av); or give --out NAME.gif")
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    w, h = images[0].size
    w2, h2 = w + w % 2, h + h % 2
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    try:
        with av.open(str(tmp), mode="w") as box:
            stream = box.add_stream(codec, rate=Fraction(1000, duration_ms))
            stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
            for im in images:
                frame_img = im.convert("RGB")
                if (w2, h2) != (w, h):
                    padded = Image.new("RGB", (w2, h2))
                    padded.paste(frame_img, (0, 0))
                    frame_img = padded
                for packet in stream.encode(av.VideoFrame.from_image(frame_img)):
                    box.mux(packet)
            for packet in stream.encode():
                box.mux(packet)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_gif(images: Sequence[Image.Image], path: str | os.PathLike, duration_ms: int = 80) -> Path:
    """An animated, looping GIF of PIL images, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.gif")
    images[0].save(tmp, save_all=True, append_images=list(images[1:]), duration=duration_ms, loop=0)
    os.replace(tmp, path)
    return path
