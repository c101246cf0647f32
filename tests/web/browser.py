"""Headless Chromium for the web tests and the measurements: Debian's chromium and
chromedriver through Selenium (nothing is downloaded), and a thread serving a site."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lstm_edge.toolchain.web import make_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@contextmanager
def served(site: Path) -> Iterator[str]:
    """The site on 127.0.0.1 (a free port), as `lstm-edge web --serve` serves it; its URL."""
    server = make_server(site, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chromium(width: int = 900, height: int = 500):
    """A headless Chromium driven by Selenium, with a throwaway profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="lstm-edge-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(
            service=Service(executable_path=str(CHROMEDRIVER)), options=options
        )
        try:
            yield driver
        finally:
            driver.quit()


def wait_ready(driver, timeout: float = 30) -> None:
    """Wait until the page's model is loaded (body data-ready), failing on its error."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.body.dataset.ready || ''")
    )
    state = driver.execute_script("return document.body.dataset.ready")
    assert state == "1", driver.find_element("id", "error").text


def shown(driver) -> list[tuple[str, str, float]]:
    """The suggestions the page shows: (word, completion, probability)."""
    return [
        (li.get_attribute("data-word"), li.get_attribute("data-completion"),
         float(li.get_attribute("data-probability")))
        for li in driver.find_elements("css selector", "#suggestions li")
    ]  # fmt: skip


def load_ms(driver) -> float:
    """The page's load time: ms from navigation start to model ready."""
    get = "return document.getElementById('load-ms').dataset.ms"
    return float(driver.execute_script(get))


def latency(driver) -> dict[str, float]:
    """The page's latency figures (ms) and its load time (ms from navigation start)."""
    get = "return document.getElementById(arguments[0]).dataset.ms"
    return {k: float(driver.execute_script(get, f"lat-{k}")) for k in ("last", "p50", "p99")} | {
        "load": float(driver.execute_script(get, "load-ms")),
        "n": int(driver.find_element("id", "lat-n").text),
    }
