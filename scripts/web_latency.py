"""Measure `lstm-edge web`'s page in headless Chromium: load time, per-keystroke latency,
the .wasm size; optionally save a screenshot with suggestions showing.

For each model: write the site (toolchain/web.py) into a temp folder, serve it on
127.0.0.1 (as `--serve` does), then in Debian's headless Chromium (Selenium, as
tests/web/test_browser.py):
- load time: the page's own figure, navigation start to model ready (model.json and
  model.wasm fetched, the module compiled and instantiated, the engine primed), over
  `--loads` fresh loads (the server sends no-store); the median and the worst are reported,
  with the module the page chose (model-relaxed.wasm where Chromium runs relaxed SIMD);
- latency: the first `--keystrokes` characters of the model's held-out test split (its
  checkpoint beside the model) are typed one key at a time; the page times each keystroke
  (sync + suggestions in the page, the same span as the terminal demo's figure) and shows
  last / p50 / p99, which are read back.

    python3 scripts/web_latency.py runs/default/model.int8.onnx runs/default/model.onnx \
        [--keystrokes 200] [--loads 10] [--screenshot examples/predictive_typing/web.png]

Needs clang-19, lld-19, wasi-libc, chromium, chromium-driver (Debian) and selenium (pip).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "web"))
from browser import chromium, latency, load_ms, served, shown, wait_ready

from lstm_edge.toolchain.typing_eval import checkpoint_beside, held_out, scheme_label
from lstm_edge.toolchain.web import write_site

SCREENSHOT_TEXT = "The results of the first "  # the screenshot's text (suggestions follow)


def host_latency(model: Path, text: str) -> tuple[float, float]:
    """p50, p99 (ms) of the terminal demo's keystroke (sync + suggestions), c backend."""
    import numpy as np

    from lstm_edge.runtime import Suggester, load
    from lstm_edge.toolchain.demo import DemoSession

    session = DemoSession(Suggester(load(model, backend="c")), k=3)
    for i in range(1, len(text) + 1):
        session.refresh(text[:i])
    lat = np.array(session.latencies_ms)
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


def measure(model: Path, keystrokes: int, loads: int, screenshot: Path | None) -> dict:
    text = held_out(checkpoint_beside(model))[:keystrokes]
    with tempfile.TemporaryDirectory(prefix="lstm-edge-web-") as tmp:
        site = write_site(model, Path(tmp) / "site")
        with served(site.out_dir) as url, chromium() as driver:
            load_times = []
            for _ in range(loads):
                driver.get(url)
                wait_ready(driver)
                load_times.append(load_ms(driver))
            module = driver.execute_script("return document.body.dataset.module")
            box = driver.find_element("id", "text")
            for ch in text:
                box.send_keys(ch)
            lat = latency(driver)
            if screenshot is not None:
                driver.get(url)
                wait_ready(driver)
                driver.find_element("id", "text").send_keys(SCREENSHOT_TEXT)
                assert len(shown(driver)) == 3
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(screenshot))
    host_p50, host_p99 = host_latency(model, text)
    return {
        "host_p50_ms": host_p50,
        "host_p99_ms": host_p99,
        "model": str(model),
        "scheme": scheme_label(site.scheme),
        "wasm_bytes": site.wasm_bytes,
        "module": module,
        "load_ms_median": statistics.median(load_times),
        "load_ms_max": max(load_times),
        "keystrokes": lat["n"],
        "p50_ms": lat["p50"],
        "p99_ms": lat["p99"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--keystrokes", type=int, default=200)
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--screenshot", type=Path, help="PNG of the first model's page")
    args = parser.parse_args()
    print(
        "| model | module run | model.wasm bytes | load ms (median / max) | keystrokes | p50 ms "
        "| p99 ms | Python engine, c backend: p50 / p99 ms |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for i, model in enumerate(args.models):
        r = measure(model, args.keystrokes, args.loads, args.screenshot if i == 0 else None)
        print(
            f"| {Path(r['model']).name} ({r['scheme']}) | {r['module']} | {r['wasm_bytes']:,} | "
            f"{r['load_ms_median']:.0f} / {r['load_ms_max']:.0f} | {r['keystrokes']} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['host_p50_ms']:.2f} / {r['host_p99_ms']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
