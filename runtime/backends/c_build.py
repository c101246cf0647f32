"""The c backend's build: the system C compiler and the cache of compiled models.

A model's C (c_source.model_sources) and the library (runtime/c/) compile into a shared
library cached under $LSTM_EDGE_CACHE (default ~/.cache/lstm-edge), keyed by the model's
SHA-256, the library sources and the compiler command. numpy only.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType

from lstm_edge.runtime.artifact import Artifact
from lstm_edge.runtime.backends.c_source import model_sources
from lstm_edge.runtime.errors import LstmEdgeError

# The C library's sources, shipped inside the package (runtime/c/).
LIBRARY_DIR = Path(__file__).resolve().parents[1] / "c"
LIBRARY_FILES = ("lstm_edge.h", "lstm_edge.c", "lstm_edge_int.h", "lstm_edge_int.c")
# What each scheme's model data links against: the float library, or the integer one
# (int8-full; it shares only lstm_edge.h's types).
FLOAT_LIBRARY, INT_LIBRARY = "lstm_edge.c", "lstm_edge_int.c"
INT_SCHEME = "int8-full"


class CompilerError(LstmEdgeError):
    """No usable C compiler, or the generated C did not compile."""


# ---- compiling ------------------------------------------------------------------------------

# -O3 vectorizes the input-major kernels; no -ffast-math (the kernels are written not to
# need it). -ffp-contract=fast lets a*b+c become one FMA (one rounding instead of two,
# still IEEE); -std=c99 turns it off by default, and it measured 250 -> 150 us per step
# for the 2x256 float model.
HOST_FLAGS = (
    "-std=c99",
    "-O3",
    "-ffp-contract=fast",
    "-fPIC",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
)


# The integer library's two float stages must round as numpy does: no contraction into
# FMA anywhere (its products also go through volatiles; this makes the build say it).
INT_HOST_FLAGS = tuple("-ffp-contract=off" if f.startswith("-ffp-contract") else f
                       for f in HOST_FLAGS)  # fmt: skip


def library_for(scheme: str) -> tuple[str, tuple[str, ...]]:
    """(the library source, the host flags) a scheme's model data compiles with."""
    return (INT_LIBRARY, INT_HOST_FLAGS) if scheme == INT_SCHEME else (FLOAT_LIBRARY, HOST_FLAGS)


def find_compiler() -> str:
    """$CC, else cc, gcc or clang on PATH; a CompilerError naming what to install."""
    candidates = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    for cand in candidates:
        exe = shutil.which(cand)
        if exe:
            return exe
    hint = (
        "install Xcode's command line tools (xcode-select --install)"
        if sys.platform == "darwin"
        else "install a C compiler, e.g. `apt-get install gcc` (Debian/Ubuntu) or "
        "`dnf install gcc` (Fedora)"
    )
    raise CompilerError(
        f"the 'c' backend needs a C compiler and found none (looked for {candidates}); {hint}, "
        f"or set CC to one"
    )


def compile_c(cmd: list[str], what: str) -> None:
    """Run a compiler command; a CompilerError with its output if it fails."""
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        out = (result.stderr or result.stdout).strip()
        raise CompilerError(f"compiling {what} failed ({' '.join(cmd[:2])} ...):\n{out[-4000:]}")


def _native_flags(cc: str) -> tuple[str, ...]:
    """-march=native when the compiler accepts it (the cached library runs only here)."""
    probe = subprocess.run(
        [cc, "-march=native", "-x", "c", "-c", "-o", os.devnull, "-"],
        input="int x;\n",
        capture_output=True,
        text=True,
    )
    return ("-march=native",) if probe.returncode == 0 else ()


def cache_dir() -> Path:
    root = os.environ.get("LSTM_EDGE_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "lstm-edge"


def library_sha256() -> str:
    digest = hashlib.sha256()
    for f in LIBRARY_FILES:
        digest.update((LIBRARY_DIR / f).read_bytes())
    return digest.hexdigest()


SHARED_NAME = "net"  # the model's C name inside the cached shared libraries


def build_shared(artifact: Artifact) -> Path:
    """Compile the artifact and the library into a cached shared library; return its path."""
    cc = find_compiler()
    library, base_flags = library_for(artifact.scheme)
    flags = (*base_flags, *_native_flags(cc))
    key = hashlib.sha256(
        "\n".join([artifact.sha256, library_sha256(), cc, *flags]).encode()
    ).hexdigest()[:24]
    suffix = ".dylib" if sys.platform == "darwin" else ".so"
    out = cache_dir() / "c" / f"{artifact.sha256[:16]}-{key}{suffix}"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    src = model_sources(artifact, SHARED_NAME)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".build-") as tmp:
        build = Path(tmp)
        (build / src.header_file).write_text(src.header)
        (build / src.source_file).write_text(src.source)
        lib = build / ("lib" + suffix)
        compile_c(
            [
                cc,
                *flags,
                "-shared",
                f"-I{LIBRARY_DIR}",
                "-o",
                str(lib),
                str(build / src.source_file),
                str(LIBRARY_DIR / library),
                "-lm",
            ],
            f"the C backend for {artifact.path}",
        )
        os.replace(lib, out)  # atomic: a concurrent loader sees the old state or this one
    return out


# ---- the CPython binding --------------------------------------------------------------------

BINDING_FILE = "lstm_edge_py.c"  # runtime/c/: the thin step, model-independent
BINDING_MODULE = "_lstm_edge_py"
# The binding is glue (Python.h is not -pedantic C99 clean): optimized, warnings as errors.
# -ffp-contract=off: the forecast input check rounds x * scale + shift as numpy does.
BINDING_FLAGS = ("-O2", "-fPIC", "-Wall", "-Werror", "-fno-strict-aliasing", "-ffp-contract=off")


def binding_headers() -> tuple[Path, Path] | None:
    """(Python's include dir, numpy's) if both hold their headers, else None: the c backend
    then steps through ctypes (the same results, ~10 µs more per step)."""
    import numpy as np

    py_inc = Path(sysconfig.get_paths()["include"])
    np_inc = Path(np.get_include())
    if (py_inc / "Python.h").is_file() and (np_inc / "numpy" / "arrayobject.h").is_file():
        return py_inc, np_inc
    return None


def build_binding() -> ModuleType | None:
    """Compile (once per interpreter, numpy and library header, cached) and import the
    CPython binding; None when this interpreter has no development headers (Debian:
    `apt-get install python3-dev`)."""
    import numpy as np

    headers = binding_headers()
    if headers is None:
        return None
    cc = find_compiler()
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    sources = [LIBRARY_DIR / f for f in (BINDING_FILE, "lstm_edge.h", "lstm_edge_int.h")]
    key = hashlib.sha256(
        "\n".join(
            [*(hashlib.sha256(f.read_bytes()).hexdigest() for f in sources), sys.version,
             np.__version__, *map(str, headers), cc, *BINDING_FLAGS]
        ).encode()
    ).hexdigest()[:24]  # fmt: skip
    out = cache_dir() / "c" / f"binding-{key}" / (BINDING_MODULE + suffix)
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".build-") as tmp:
            lib = Path(tmp) / out.name
            compile_c(
                [cc, *BINDING_FLAGS, "-shared", *(f"-I{h}" for h in headers),
                 f"-I{LIBRARY_DIR}", "-o", str(lib), str(sources[0])],
                "the c backend's Python binding",
            )  # fmt: skip
            os.replace(lib, out)
    loader = importlib.machinery.ExtensionFileLoader(BINDING_MODULE, str(out))
    spec = importlib.util.spec_from_file_location(BINDING_MODULE, out, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
