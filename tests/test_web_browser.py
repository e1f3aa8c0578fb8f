"""End to end in a real headless Chromium: type a Japanese name, generate, see pictures.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install chromium chromium-driver``)
and selenium (the dev extras); skips with a reason when any is missing. The app is served by
waitress on a loopback port with a real tiny StackGAN trained by the fixture in test_web.py.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import urllib.parse
from pathlib import Path

import pytest
from test_web import tiny_run, tiny_runs  # noqa: F401 - the shared tiny-model fixtures

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1200"]


def _skip_reason() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"no browser: {CHROMIUM} is missing (apt-get install chromium chromium-driver)"
    if not Path(CHROMEDRIVER).exists():
        return "no chromedriver (apt-get install chromium-driver)"
    return None


@pytest.fixture(scope="module")
def server(tiny_run):
    """The app on waitress, on a free loopback port, for the whole module."""
    from waitress import create_server

    from stackgan.web.app import create_app

    srv = create_server(create_app(tiny_run), host="127.0.0.1", port=0, threads=4)

    def serve():
        try:
            srv.run()
        except OSError:  # closing the socket from this thread ends waitress's select loop
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()
    thread.join(timeout=5)


@pytest.fixture
def driver(tmp_path):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        opts.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def _wait(drv, predicate, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(drv, timeout, poll_frequency=0.2).until(predicate)


def _loaded_images(drv, selector: str) -> list[int]:
    """naturalWidth of every image matching ``selector`` (0 = broken or not loaded)."""
    return drv.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(i => i.complete ? i.naturalWidth : 0)",
        selector)


def _severe_console_errors(drv) -> list[str]:
    return [e["message"] for e in drv.get_log("browser") if e.get("level") == "SEVERE"]


def test_type_japanese_name_generate_and_see_pictures(server, driver, tmp_path):
    from selenium.webdriver.common.by import By

    driver.get(server + "/")
    name = driver.find_element(By.ID, "name")
    name.send_keys("ピリ辛サーモン丼")
    driver.find_element(By.ID, "n").clear()
    driver.find_element(By.ID, "n").send_keys("3")
    driver.find_element(By.ID, "generate").click()

    _wait(driver, lambda d: len(_loaded_images(d, "#results img.pic")) == 3
          and all(_loaded_images(d, "#results img.pic")))
    assert all(w > 0 for w in _loaded_images(driver, "#results img"))
    assert driver.find_element(By.ID, "results-title").text == "「ピリ辛サーモン丼」"
    seeds = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#results .seed")]
    assert len(seeds) == 3 and all(s.startswith("seed ") for s in seeds)
    first = int(seeds[0].split()[1])
    assert [int(s.split()[1]) for s in seeds] == [first, first + 1, first + 2]
    neighbours = driver.find_elements(By.CSS_SELECTOR, "#neighbours li")
    assert neighbours, "nearest known names are shown"
    assert driver.find_element(By.ID, "error").get_attribute("hidden") is not None

    # The URL now encodes name and seed: opening it reproduces the same pictures.
    query = urllib.parse.parse_qs(urllib.parse.urlparse(driver.current_url).query)
    assert query["name"] == ["ピリ辛サーモン丼"] and query["seed"] == [str(first)]
    first_src = driver.find_element(By.CSS_SELECTOR, "#results img.pic").get_attribute("src")
    driver.save_screenshot(str(tmp_path / "generate.png"))
    assert (tmp_path / "generate.png").stat().st_size > 10_000

    driver.get(driver.current_url)
    _wait(driver, lambda d: len(_loaded_images(d, "#results img.pic")) == 3
          and all(_loaded_images(d, "#results img.pic")))
    assert driver.find_element(By.CSS_SELECTOR, "#results img.pic").get_attribute("src") == first_src
    assert driver.find_element(By.ID, "seed").get_attribute("value") == str(first)

    # Download links carry a PNG and a file name.
    link = driver.find_element(By.CSS_SELECTOR, "#results a.dl")
    assert link.get_attribute("href").startswith("data:image/png;base64,")
    assert link.get_attribute("download").endswith(f"seed{first}.png")

    # Clicking a picture shows variations around it.
    driver.find_element(By.CSS_SELECTOR, "#results img.pic").click()
    _wait(driver, lambda d: len(_loaded_images(d, "#variations img.pic")) == 8
          and all(_loaded_images(d, "#variations img.pic")))
    assert driver.find_element(By.ID, "variations-panel").is_displayed()

    # The explore panel redraws as a slider moves.
    driver.find_element(By.CSS_SELECTOR, "#results .card-tools button:nth-child(2)").click()
    _wait(driver, lambda d: d.find_element(By.ID, "explore-panel").is_displayed())
    before = driver.find_element(By.ID, "explore-img").get_attribute("src")
    driver.execute_script(
        "const s = document.querySelector('#sliders input'); s.value = 2.5;"
        "s.dispatchEvent(new Event('input', {bubbles: true}));")
    _wait(driver, lambda d: d.find_element(By.ID, "explore-img").get_attribute("src") != before)
    _wait(driver, lambda d: all(_loaded_images(d, "#explore-img")))
    driver.save_screenshot(str(tmp_path / "explore.png"))
    assert not _severe_console_errors(driver)


def test_bad_input_shows_the_message_and_names_stay_text(server, driver, tmp_path):
    from selenium.webdriver.common.by import By

    driver.get(server + "/")
    driver.find_element(By.ID, "name").send_keys("   ")
    driver.find_element(By.ID, "generate").click()
    _wait(driver, lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "name is empty" in driver.find_element(By.ID, "error").text

    # A name with markup is shown as text, never run: no alert, no injected element.
    driver.get(server + "/?" + urllib.parse.urlencode({"name": "<img src=x onerror=alert(1)><b>丼</b>",
                                                       "seed": "7"}))
    _wait(driver, lambda d: all(_loaded_images(d, "#results img.pic")) and _loaded_images(d, "#results img.pic"))
    title = driver.find_element(By.ID, "results-title").text
    assert title == "「<img src=x onerror=alert(1)><b>丼</b>」"
    assert driver.execute_script("return document.querySelectorAll('#results-title *, img[src=\"x\"]').length") == 0
    driver.save_screenshot(str(tmp_path / "escaped.png"))


def test_enter_submits_but_not_while_an_ime_is_composing(server, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(server + "/")
    name = driver.find_element(By.ID, "name")
    # Enter that confirms an IME conversion is cancelled (isComposing, keyCode 229, or between
    # compositionstart and compositionend); a plain Enter is left alone, and submits the form.
    prevented = driver.execute_script("""
        const input = document.getElementById('name');
        const enter = (extra) => {
          const ev = new KeyboardEvent('keydown', Object.assign({key: 'Enter', bubbles: true, cancelable: true}, extra));
          input.dispatchEvent(ev);
          return ev.defaultPrevented;
        };
        const out = {composing: enter({isComposing: true}), plain: enter({})};
        input.dispatchEvent(new CompositionEvent('compositionstart', {data: ''}));
        out.between = enter({});
        input.dispatchEvent(new CompositionEvent('compositionend', {data: '丼'}));
        return out;""")
    assert prevented == {"composing": True, "plain": False, "between": True}
    _wait(driver, lambda d: d.execute_script(  # the flag clears right after compositionend
        "const ev = new KeyboardEvent('keydown', {key: 'Enter', cancelable: true});"
        "document.getElementById('name').dispatchEvent(ev); return !ev.defaultPrevented;"), timeout=5)
    assert driver.find_element(By.ID, "results-panel").get_attribute("hidden") is not None  # nothing sent

    name.send_keys("月見カレーうどん", Keys.ENTER)
    _wait(driver, lambda d: len(_loaded_images(d, "#results img.pic")) == 4
          and all(_loaded_images(d, "#results img.pic")))
    assert driver.find_element(By.ID, "results-title").text == "「月見カレーうどん」"
