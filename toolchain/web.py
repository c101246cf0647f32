"""`lstm-edge web MODEL -o DIR`: predictive typing in the browser, as a static site.

The site is five files and needs no server-side computation:
- model.wasm: the C library (runtime/c/lstm_edge.c), the model's generated C data
  (runtime/backends/c_source.model_sources, named `net`) and a small shim
  (web_assets/lstm_edge_web.c: sizes, state init, a batched token step, buffers for
  JavaScript; int8 weight-only models widened to float32 at start-up, see there),
  compiled to WebAssembly by clang with no entry point and no WASI import;
- model.json: the vocabulary and the engine's defaults (taken from runtime/suggest.py, so
  the page cannot drift from the Python engine's beam width, word length or punctuation);
- engine.js: the WebAssembly model and a line-by-line port of runtime/suggest.py;
- index.html + style.css: a text box with the suggestion strip and latency figures.

Why clang and not Emscripten: the step needs no libc beyond <math.h>, <string.h> and
malloc, which wasi-libc's static libc.a provides without any import, so plain
`clang --target=wasm32-wasi` + wasm-ld builds a self-contained module with no JavaScript
glue. Debian's emscripten (3.1.6 in Debian 12) builds its system libraries into a cache
on first use (minutes) and emits a JavaScript loader the page does not need.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lstm_edge.runtime.artifact import read_artifact
from lstm_edge.runtime.backends.c_build import FLOAT_LIBRARY, LIBRARY_DIR
from lstm_edge.runtime.backends.c_source import INT_SCHEME, model_sources
from lstm_edge.runtime.config import UNK_ID
from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.runtime.files import atomic_write_bytes
from lstm_edge.runtime.suggest import (
    ATTACHING_PUNCT,
    DEFAULT_BEAM_WIDTH,
    DEFAULT_HISTORY,
    DEFAULT_MAX_WORD_LEN,
    PREFILL_CHUNK,
    START_CONTEXT,
)
from lstm_edge.runtime.tasks.char_lm import CHAR_LM

ASSETS = Path(__file__).resolve().parent / "web_assets"
SHIM = "lstm_edge_web.c"
STATIC_FILES = ("index.html", "style.css", "engine.js")
WASM_FILE, CONFIG_FILE = "model.wasm", "model.json"
SITE_FILES = (*STATIC_FILES, WASM_FILE, CONFIG_FILE)
MODEL_NAME = "net"  # the model's C name inside the module (the shim includes net_model.h)
DEFAULT_K = 3  # suggestions shown, as in the terminal demo
WASM_EXPORTS = (
    "web_vocab_size",
    "web_state_floats",
    "web_batch_scratch_floats",
    "web_prepare",
    "web_alloc",
    "web_free",
    "web_init_state",
    "web_step",
)
# Debian/Ubuntu packages of the WebAssembly build: the compiler, the linker (wasm-ld) and
# the C library for wasm32-wasi (its headers and libc.a with malloc, memcpy, expf, tanhf).
WASM_PACKAGES = "clang lld wasi-libc"
# Where wasi-libc lives: $WASI_SYSROOT, the wasi-sdk layout (newer Debian), or Debian 12's
# multiarch layout, which clang --target=wasm32-wasi finds without --sysroot.
SYSROOTS = (Path("/usr/share/wasi-sysroot"),)
MULTIARCH_LIBC = Path("/usr/lib/wasm32-wasi/libc.a")
# -O2 for size and speed; -msimd128: Chromium, Firefox and Safari run 128-bit SIMD, and the
# library's input-major kernels vectorize with it (3x faster batched steps than without,
# measured in Node). No -ffast-math (as on the host). -O3 measured no faster than -O2.
# -nodefaultlibs -lc: link libc.a only, not compiler-rt's builtins (a separate package the
# float step does not need).
WASM_FLAGS = ("-std=c99", "-O2", "-msimd128", "-Wall", "-Wextra", "-Werror")
WASM_LINK = ("-nostartfiles", "-nodefaultlibs", "-Wl,--no-entry", "-Wl,--strip-all")


class WebError(LstmEdgeError):
    """The site cannot be written: bad model, output folder in the way, or a missing tool."""


@dataclass(frozen=True)
class Site:
    out_dir: Path
    files: tuple[Path, ...]
    wasm_bytes: int
    scheme: str
    vocab_size: int


# ---- the WebAssembly module -----------------------------------------------------------------


def wasm_compiler() -> tuple[str, tuple[str, ...]]:
    """(clang, its sysroot flags), or a WebError naming the Debian packages to install."""
    clang = os.environ.get("WASM_CC") or shutil.which("clang")
    if clang is None:
        raise WebError(
            f"clang not found (it compiles the C library to WebAssembly); install it: "
            f"`apt-get install {WASM_PACKAGES}`, or set WASM_CC to a clang with the wasm32 target"
        )
    if shutil.which("wasm-ld") is None:
        raise WebError(
            f"wasm-ld (the WebAssembly linker) not found; install it: `apt-get install lld` "
            f"(all needed: {WASM_PACKAGES})"
        )
    env_root = os.environ.get("WASI_SYSROOT")
    roots = (Path(env_root),) if env_root else SYSROOTS
    for root in roots:
        if (root / "include").is_dir():
            return clang, (f"--sysroot={root}",)
    if not env_root and MULTIARCH_LIBC.is_file():
        return clang, ()
    where = env_root or f"{SYSROOTS[0]} or {MULTIARCH_LIBC.parent}"
    raise WebError(
        f"the C library for WebAssembly (wasi-libc) was not found at {where}; install it: "
        f"`apt-get install wasi-libc` (all needed: {WASM_PACKAGES}), or set WASI_SYSROOT"
    )


def build_wasm(model: Path, artifact) -> bytes:
    """Compile the library, the model's C data and the shim into one .wasm; its bytes."""
    clang, sysroot = wasm_compiler()
    src = model_sources(artifact, MODEL_NAME)
    with tempfile.TemporaryDirectory(prefix="lstm-edge-web-") as tmp:
        build = Path(tmp)
        (build / src.header_file).write_text(src.header)
        (build / src.source_file).write_text(src.source)
        out = build / WASM_FILE
        cmd = [
            clang,
            "--target=wasm32-wasi",
            *sysroot,
            *WASM_FLAGS,
            *WASM_LINK,
            *(f"-Wl,--export={name}" for name in WASM_EXPORTS),
            f"-I{LIBRARY_DIR}",
            f"-I{build}",
            "-o",
            str(out),
            str(ASSETS / SHIM),
            str(build / src.source_file),
            str(LIBRARY_DIR / FLOAT_LIBRARY),
            "-lc",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            log = (result.stderr or result.stdout).strip()[-3000:]
            raise WebError(
                f"compiling {model} to WebAssembly failed ({clang} --target=wasm32-wasi; "
                f"packages needed: {WASM_PACKAGES}):\n{log}"
            )
        return out.read_bytes()


# ---- the site -------------------------------------------------------------------------------


def site_config(model: Path, artifact) -> dict:
    """model.json: what engine.js needs besides the module (vocabulary, engine defaults)."""
    cfg = artifact.config
    return {
        "model": model.name,
        "scheme": artifact.scheme,
        "sha256": artifact.sha256,
        "vocab": list(cfg.vocab),
        "unk_id": UNK_ID,
        "hidden_size": cfg.hidden_size,
        "num_layers": cfg.num_layers,
        "wasm": WASM_FILE,
        "engine": {
            "k": DEFAULT_K,
            "max_word_len": DEFAULT_MAX_WORD_LEN,
            "beam_width": DEFAULT_BEAM_WIDTH,
            "history": DEFAULT_HISTORY,
            "prefill_chunk": PREFILL_CHUNK,
            "start_context": list(START_CONTEXT),
            "attaching_punct": "".join(sorted(ATTACHING_PUNCT)),
        },
    }


def check_model(model: Path):
    """Read the artifact and refuse what the page cannot run, before anything is built."""
    model = Path(model)
    if not model.is_file():
        raise WebError(f"model {model} does not exist (expected an .onnx artifact of a char-lm)")
    artifact = read_artifact(model)
    CHAR_LM.require(
        artifact.config,
        "the web page",
        "the page suggests words from characters",
        error=WebError,
    )
    if artifact.scheme == INT_SCHEME:
        raise WebError(
            f"{model}: scheme {INT_SCHEME!r} runs on the integer library, which the page does "
            f"not include; use the float (model.onnx) or int8 weight-only (model.int8.onnx) "
            f"artifact"
        )
    return artifact


def check_out_dir(out_dir: Path, force: bool) -> None:
    """A folder that is empty or holds only an earlier site (so `--serve` can be run again)
    is written without --force; any other file in it needs --force (and is kept)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise WebError(f"output {out_dir} exists and is not a folder")
    if not out_dir.is_dir() or force:
        return
    others = sorted(p.name for p in out_dir.iterdir() if p.name not in SITE_FILES)
    if others:
        raise WebError(
            f"output folder {out_dir} holds other files ({', '.join(others[:3])}"
            f"{', ...' if len(others) > 3 else ''}); pass --force to write the site's files "
            f"({', '.join(SITE_FILES)}) beside them"
        )


def write_site(model: Path, out_dir: Path, *, force: bool = False) -> Site:
    """Build and write the static site; nothing is written unless the build succeeded."""
    model, out_dir = Path(model), Path(out_dir)
    check_out_dir(out_dir, force)
    artifact = check_model(model)
    wasm = build_wasm(model, artifact)
    config = json.dumps(site_config(model, artifact), ensure_ascii=False, indent=1)
    contents = {name: (ASSETS / name).read_bytes() for name in STATIC_FILES}
    contents[WASM_FILE] = wasm
    contents[CONFIG_FILE] = (config + "\n").encode()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WebError(f"cannot create {out_dir}: {e.strerror or e}") from None
    for name, data in contents.items():  # each file whole or not at all
        atomic_write_bytes(out_dir / name, data)
    written = tuple(out_dir / name for name in SITE_FILES)
    return Site(out_dir, written, len(wasm), artifact.scheme, artifact.config.vocab_size)


# ---- serving --------------------------------------------------------------------------------


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with the WebAssembly MIME type, no caching, no request log."""

    extensions_map: ClassVar[dict[str, str]] = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".json": "application/json",
    }

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        pass


def make_server(site: Path, port: int = 0) -> http.server.ThreadingHTTPServer:
    """An HTTP server of `site` on 127.0.0.1 (port 0: any free port); not started."""
    handler = functools.partial(QuietHandler, directory=str(site))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


def bind(site: Path, port: int) -> http.server.ThreadingHTTPServer:
    """The server of `site`, its port taken (before the site is written, so a busy port is
    refused with nothing written); a WebError naming the port."""
    try:
        return make_server(site, port)
    except OSError as e:
        raise WebError(f"cannot serve on 127.0.0.1:{port}: {e.strerror or e}") from None


def serve(server: http.server.ThreadingHTTPServer, announce) -> None:
    """Serve until Ctrl-C (then return normally); `announce(url)` is called once it
    listens."""
    with server:
        announce(f"http://127.0.0.1:{server.server_address[1]}/")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
