"""Redraw the README's pictures of the shipped model: the 8 names x 6 seeds grid and the page screenshot.

    .venv/bin/python scripts/readme_images.py                      # models/default -> docs/images/
    .venv/bin/python scripts/readme_images.py --model runs/x/export --out /tmp/imgs --no-screenshot

The grid is what `stackgan generate --checkpoint MODEL NAMES... -n 6 --seed 1` draws (four training names,
then four invented ones), saved as JPEG. The screenshot serves MODEL with waitress on a free loopback
port and opens the page in headless Chromium (Debian's chromium + chromium-driver and selenium, the dev
extras) at ?name=月見カレーうどん&seed=1&n=6, as a user who followed a shared link would.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINING = ["カツ丼", "醤油ラーメン", "きつねうどん", "激辛カレー"]
INVENTED = ["サーモンうどん", "月見カレー", "ピリ辛サーモン丼", "冷やし月見そば"]
PAGE_NAME = "月見カレーうどん"
CHROMIUM = Path("/usr/bin/chromium")


def draw_grid(model: Path, out: Path, seeds: int = 6) -> None:
    from stackgan.cli import main as stackgan

    png = out.with_suffix(".png")
    with tempfile.TemporaryDirectory() as singles:  # generate's one PNG per picture, not kept
        rc = stackgan(["generate", "--checkpoint", str(model), *TRAINING, *INVENTED, "-n", str(seeds),
                       "--seed", "1", "--out", str(png), "--out-dir", singles])
    if rc not in (0, None):
        raise SystemExit(f"readme_images: stackgan generate failed ({rc})")
    _to_jpeg(png, out)


def _to_jpeg(png: Path, out: Path) -> None:
    from PIL import Image

    Image.open(png).convert("RGB").save(out, quality=88)
    png.unlink()
    print(f"wrote {out}")


def screenshot(model: Path, out: Path) -> None:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        raise SystemExit("readme_images: the screenshot needs selenium (pip install -e '.[dev]'), "
                         "or pass --no-screenshot") from None
    driver_path = shutil.which("chromedriver")
    if not CHROMIUM.exists() or not driver_path:
        raise SystemExit("readme_images: the screenshot needs chromium and chromedriver "
                         "(apt-get install chromium chromium-driver), or pass --no-screenshot")
    import urllib.parse

    from waitress import create_server

    from stackgan.web.app import create_app

    srv = create_server(create_app(str(model)), host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=_serve, args=(srv,), daemon=True)
    thread.start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--window-size=1280,1100"]:
        opts.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        opts.add_argument(f"--user-data-dir={profile}")
        drv = webdriver.Chrome(options=opts, service=Service(driver_path))
        try:
            query = urllib.parse.urlencode({"name": PAGE_NAME, "seed": 1, "n": 6})
            drv.get(f"http://127.0.0.1:{srv.effective_port}/?{query}")
            loaded = ("return [...document.querySelectorAll('#results img.pic')]"
                      ".map(i => i.complete ? i.naturalWidth : 0)")
            WebDriverWait(drv, 120, poll_frequency=0.2).until(
                lambda d: len(d.execute_script(loaded)) == 6 and all(d.execute_script(loaded)))
            png = out.with_suffix(".png")
            drv.save_screenshot(str(png))
        finally:
            drv.quit()
            srv.close()
            thread.join(timeout=5)
    _to_jpeg(png, out)


def _serve(srv) -> None:
    try:
        srv.run()
    except OSError:  # closing the socket from the main thread ends waitress's loop
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="folder for the JPEGs")
    ap.add_argument("--screenshot", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args(argv)
    if not args.model.is_dir():
        ap.error(f"--model {args.model}: no such model folder")
    args.out.mkdir(parents=True, exist_ok=True)
    draw_grid(args.model, args.out / "default-grid.jpg")
    if args.screenshot:
        screenshot(args.model, args.out / "web-page.jpg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
