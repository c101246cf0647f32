"""`lstm-edge web MODEL -o DIR`: predictive typing in the browser, as a static site.

The site is six files and needs no server-side computation:
- model.wasm: the C library (runtime/c/lstm_edge.c), the model's generated C data
  (runtime/backends/c_source.model_sources, named `net`) and a shim (web_assets/
  lstm_edge_web.c: the batched token step on WebAssembly SIMD kernels, sizes, state init,
  buffers for JavaScript; int8 weight-only models widened to float32 at start-up, see
  there), compiled to WebAssembly by clang with no entry point and no WASI import;
- model-relaxed.wasm: the same with relaxed SIMD's fused multiply-add (RELAXED_FLAGS),
  which the page loads instead where the browser supports it; built when the clang can;
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
RELAXED_WASM_FILE = "model-relaxed.wasm"
SITE_FILES = (*STATIC_FILES, WASM_FILE, RELAXED_WASM_FILE, CONFIG_FILE)
MODEL_NAME = "net"  # the model's C name inside the module (the shim includes net_model.h)
DEFAULT_K = 3  # suggestions shown, as in the terminal demo
WASM_EXPORTS = (
    "web_vocab_size",
    "web_state_floats",
    "web_prepare",
    "web_alloc",
    "web_free",
    "web_init_state",
    "web_step",
    "web_step_beams",
)
# Debian/Ubuntu packages of the WebAssembly build: the compiler, the linker (wasm-ld) and
# the C library for wasm32-wasi (its headers and libc.a with malloc, memcpy). clang-19 (in
# Debian 12) also builds the relaxed-SIMD module; any clang builds the SIMD128 one.
WASM_PACKAGES = "clang-19 lld-19 wasi-libc"
COMPILERS = ("clang-19", "clang")  # the first on PATH, unless WASM_CC names one
# Where wasi-libc lives: $WASI_SYSROOT, the wasi-sdk layout (newer Debian), or Debian 12's
# multiarch layout, which clang --target=wasm32-wasi finds without --sysroot.
SYSROOTS = (Path("/usr/share/wasi-sysroot"),)
MULTIARCH_LIBC = Path("/usr/lib/wasm32-wasi/libc.a")
# -O2 for size and speed; -msimd128: Chromium, Firefox and Safari run 128-bit SIMD (the
# shim's kernels are written with its intrinsics). No -ffast-math (as on the host).
# -nodefaultlibs -lc: link libc.a only, not compiler-rt's builtins (a separate package the
# step does not need).
WASM_FLAGS = ("-std=c99", "-O2", "-msimd128", "-Wall", "-Wextra", "-Werror")
WASM_LINK = ("-nostartfiles", "-nodefaultlibs", "-Wl,--no-entry", "-Wl,--strip-all")
# The second module: relaxed SIMD (Chromium 114+, Firefox behind a flag), whose
# f32x4.relaxed_madd is one fused multiply-add where the CPU has FMA (~1.4x faster batched
# steps than SIMD128 alone, measured in Node). The page loads it where the browser
# validates it, else model.wasm. clang 19 has the intrinsic (clang 14 does not).
RELAXED_FLAGS = ("-mrelaxed-simd", "-DWEB_RELAXED")
RELAXED_MIN_CLANG = 19


class WebError(LstmEdgeError):
    """The site cannot be written: bad model, output folder in the way, or a missing tool."""


@dataclass(frozen=True)
class Site:
    out_dir: Path
    files: tuple[Path, ...]
    wasm_bytes: int
    scheme: str
    vocab_size: int
    relaxed: bool  # model-relaxed.wasm was built (see RELAXED_FLAGS)


@dataclass(frozen=True)
class Compiler:
    clang: str
    sysroot: tuple[str, ...]  # --sysroot=..., or nothing (Debian's multiarch layout)
    major: int  # clang's major version

    @property
    def relaxed(self) -> bool:
        """Can it build the relaxed-SIMD module?"""
        return self.major >= RELAXED_MIN_CLANG


# ---- the WebAssembly modules ----------------------------------------------------------------


def wasm_compiler() -> Compiler:
    """The clang to build with (WASM_CC, else the first of COMPILERS on PATH), or a
    WebError naming the Debian packages to install."""
    clang = os.environ.get("WASM_CC") or next(filter(None, map(shutil.which, COMPILERS)), None)
    if clang is None:
        raise WebError(
            f"clang not found (it compiles the C library to WebAssembly); install it: "
            f"`apt-get install {WASM_PACKAGES}`, or set WASM_CC to a clang with the wasm32 target"
        )
    linker = _run([clang, "--target=wasm32-wasi", "-print-prog-name=wasm-ld"]).strip()
    if shutil.which(linker) is None:  # clang names its own wasm-ld, or just "wasm-ld"
        raise WebError(
            f"wasm-ld (the WebAssembly linker of {clang}) not found; install it: "
            f"`apt-get install lld-19` (all needed: {WASM_PACKAGES})"
        )
    major = int(_run([clang, "-dumpversion"]).split(".")[0])
    env_root = os.environ.get("WASI_SYSROOT")
    roots = (Path(env_root),) if env_root else SYSROOTS
    for root in roots:
        if (root / "include").is_dir():
            return Compiler(clang, (f"--sysroot={root}",), major)
    if not env_root and MULTIARCH_LIBC.is_file():
        return Compiler(clang, (), major)
    where = env_root or f"{SYSROOTS[0]} or {MULTIARCH_LIBC.parent}"
    raise WebError(
        f"the C library for WebAssembly (wasi-libc) was not found at {where}; install it: "
        f"`apt-get install wasi-libc` (all needed: {WASM_PACKAGES}), or set WASI_SYSROOT"
    )


def _run(cmd: list[str]) -> str:
    """stdout of a build command; a WebError with its log if it fails."""
    try:
        result = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise WebError(f"cannot run {cmd[0]}: {e.strerror or e}") from None
    if result.returncode != 0:
        log = (result.stderr or result.stdout).strip()[-3000:]
        raise WebError(f"{' '.join(cmd[:2])} ... failed (packages needed: {WASM_PACKAGES}):\n{log}")
    return result.stdout


def build_wasm(model: Path, artifact) -> dict[str, bytes]:
    """Compile the library, the model's C data and the shim into model.wasm (SIMD128) and,
    with a clang that can, model-relaxed.wasm; {file name: bytes}. The model data and the
    library are compiled once and linked into both."""
    cc = wasm_compiler()
    src = model_sources(artifact, MODEL_NAME)
    base = [cc.clang, "--target=wasm32-wasi", *cc.sysroot, *WASM_FLAGS]
    with tempfile.TemporaryDirectory(prefix="lstm-edge-web-") as tmp:
        build = Path(tmp)
        (build / src.header_file).write_text(src.header)
        (build / src.source_file).write_text(src.source)
        include = (f"-I{LIBRARY_DIR}", f"-I{build}")
        objects = []
        for source in (build / src.source_file, LIBRARY_DIR / FLOAT_LIBRARY):
            objects.append(build / (source.stem + ".o"))
            _compile(model, [*base, *include, "-c", str(source), "-o", str(objects[-1])])
        variants = {WASM_FILE: ()} | ({RELAXED_WASM_FILE: RELAXED_FLAGS} if cc.relaxed else {})
        modules = {}
        for name, flags in variants.items():
            out = build / name
            _compile(model, [
                *base, *flags, *include, *WASM_LINK,
                *(f"-Wl,--export={e}" for e in WASM_EXPORTS),
                "-o", str(out), str(ASSETS / SHIM), *map(str, objects), "-lc",
            ])  # fmt: skip
            modules[name] = out.read_bytes()
        return modules


def _compile(model: Path, cmd: list[str]) -> None:
    try:
        _run(cmd)
    except WebError as e:
        raise WebError(f"compiling {model} to WebAssembly failed: {e}") from None


# ---- the site -------------------------------------------------------------------------------


def site_config(model: Path, artifact, relaxed: bool) -> dict:
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
        "wasm_relaxed": RELAXED_WASM_FILE if relaxed else None,
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
    modules = build_wasm(model, artifact)
    relaxed = RELAXED_WASM_FILE in modules
    config = json.dumps(site_config(model, artifact, relaxed), ensure_ascii=False, indent=1)
    contents = {name: (ASSETS / name).read_bytes() for name in STATIC_FILES}
    contents |= modules
    contents[CONFIG_FILE] = (config + "\n").encode()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WebError(f"cannot create {out_dir}: {e.strerror or e}") from None
    for name, data in contents.items():  # each file whole or not at all
        atomic_write_bytes(out_dir / name, data)
    if not relaxed:  # an earlier site's, of another model perhaps
        (out_dir / RELAXED_WASM_FILE).unlink(missing_ok=True)
    written = tuple(out_dir / name for name in SITE_FILES if name in contents)
    return Site(
        out_dir, written, len(modules[WASM_FILE]), artifact.scheme, artifact.config.vocab_size,
        relaxed,
    )  # fmt: skip


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
