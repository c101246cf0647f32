"""numpy's OpenBLAS thread count, set for a block (numpy has no API for it).

Used where the thread count changes a result or a timing: the linear fits
(toolchain/forecast_eval.py), whose float64 sums OpenBLAS splits by thread, so one process
and each rank of a torchrun (1 thread each) would fit coefficients that differ in the last
bits; and the bench's numpy loops.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator

# OpenBLAS' thread setters under the names numpy's wheels have shipped them with.
_BLAS_SETTERS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[bool]:
    """Run numpy's OpenBLAS with `n` threads for the block; yields whether that worked.

    Why: on this shared 2-core machine a multi-threaded OpenBLAS matvec of the default
    model measured 1-9 ms instead of ~0.1 ms single-threaded (threads spin against other
    processes). numpy has no API for this, so the library numpy loaded is found in
    /proc/self/maps and its setter called through ctypes (what threadpoolctl does).
    """
    lib = None
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and "/" in ln})
        for path in paths:
            cand = ctypes.CDLL(path)
            for setter, getter in _BLAS_SETTERS:
                if hasattr(cand, setter) and hasattr(cand, getter):
                    lib = (getattr(cand, setter), getattr(cand, getter))
                    break
            if lib:
                break
    except OSError:
        lib = None
    if lib is None:
        yield False
        return
    setter, getter = lib
    before = int(getter())
    setter(ctypes.c_int(n))
    try:
        yield True
    finally:
        setter(ctypes.c_int(before))
