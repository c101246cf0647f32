"""The page in headless Chromium (Debian's chromium + chromedriver via Selenium), served
over HTTP as `lstm-edge web --serve` serves it: typing shows the Python engine's
suggestions, Tab accepts the first (word + space), "." then replaces that space, a click
accepts another, and the page reports its latency and load time."""

from __future__ import annotations

import importlib.util

import pytest
from browser import CHROMEDRIVER, CHROMIUM, chromium, latency, served, shown, wait_ready
from web_support import require

from lstm_edge.runtime import Suggester, load


@pytest.fixture(scope="module")
def page(sites):
    require("chromium", CHROMIUM.is_file(), "apt-get install chromium")
    require("chromedriver", CHROMEDRIVER.is_file(), "apt-get install chromium-driver")
    require("selenium", importlib.util.find_spec("selenium") is not None, "pip install selenium")
    with served(sites.float_site) as url, chromium() as driver:
        driver.get(url)
        wait_ready(driver)
        yield driver


def python_suggestions(model, text: str) -> list[tuple[str, str, float]]:
    s = Suggester(model)
    s.type(text)
    return [(x.word, x.completion, x.probability) for x in s.suggestions(3)]


def assert_shown_equal(got, want) -> None:
    assert [g[:2] for g in got] == [w[:2] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g[2] == pytest.approx(w[2], rel=1e-3)


def test_typing_accepting_and_punctuation_in_chromium(page, sites):
    from selenium.webdriver.common.keys import Keys

    model = load(sites.float_path, backend="numpy")
    box = page.find_element("id", "text")
    assert_shown_equal(shown(page), python_suggestions(model, ""))  # next-word slots
    for text in ("TAba", "c c", "a"):  # a capital the vocabulary lacks ("A"), a space
        box.send_keys(text)
    typed = "TAbac ca"
    assert box.get_attribute("value") == typed
    first = shown(page)
    assert_shown_equal(first, python_suggestions(model, typed))
    assert len(first) == 3

    box.send_keys(Keys.TAB)
    accepted = typed + first[0][1] + " "
    assert box.get_attribute("value") == accepted
    assert_shown_equal(shown(page), python_suggestions(model, accepted))

    box.send_keys(".")
    punctuated = accepted[:-1] + "."
    assert box.get_attribute("value") == punctuated
    assert_shown_equal(shown(page), python_suggestions(model, punctuated))

    box.send_keys(" x")  # a character the vocabulary cannot spell: no crash
    assert box.get_attribute("value") == punctuated + " x"
    assert_shown_equal(shown(page), python_suggestions(model, punctuated + " x"))
    assert page.find_element("id", "error").text == ""

    box.send_keys(Keys.BACKSPACE, "b")  # "x" -> "b"
    options = page.find_elements("css selector", "#suggestions li")
    third = shown(page)[2]
    options[2].click()  # a click accepts any slot
    assert box.get_attribute("value") == punctuated + " " + third[0] + " "

    # Chromium runs relaxed SIMD, so the page loads that module where the site has it
    want = "model-relaxed.wasm" if sites.relaxed else "model.wasm"
    assert page.execute_script("return document.body.dataset.module") == want
    simd = "relaxed SIMD" if sites.relaxed else "SIMD128"
    assert page.find_element("id", "model").text.endswith(f"on WebAssembly {simd}")

    lat = latency(page)
    assert lat["n"] >= 14  # one per keystroke and accept (the backspace too)
    assert 0 < lat["p50"] <= lat["p99"] and lat["last"] > 0
    assert 0 < lat["load"] < 30_000
    assert page.find_element("id", "lat-p99").text == f"{lat['p99']:.2f}"
