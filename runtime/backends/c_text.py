"""C source text from numpy values: string and number literals, name arrays, and the
int8 weights as the C library reads them. A leaf module (numpy and the typed errors only),
so the task specs can emit their C pieces without importing the source generator.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lstm_edge.runtime.errors import UnsupportedModelError


def c_string(text: str) -> str:
    """A C string literal holding `text` as UTF-8; anything but safe ASCII is an octal
    escape (no quotes, backslashes, `?` (trigraphs), `*/` or newlines reach the source)."""
    safe = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-+.,:;=()[]{}<>")
    out = "".join(chr(b) if b in safe else f"\\{b:03o}" for b in text.encode("utf-8"))
    return f'"{out}"'


def count(ident: str) -> str:
    """The element count of the generated array `ident`, as the model structs' n_* length
    fields hold it: computed by the C compiler from the array itself (so
    lstm_edge_check_model compares the dimensions with the arrays actually present)."""
    return f"LSTM_EDGE_COUNT({ident})"


def int_lines(values: np.ndarray, per_line: int = 24) -> str:
    items = [str(v) for v in values.ravel().tolist()]
    return ",\n".join(
        "    " + ", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)
    )


def float_lines(values: np.ndarray, per_line: int = 12) -> str:
    # numpy prints a float32 with the fewest digits that read back to the same float32,
    # so the C literal (with the f suffix) is the exact weight.
    items = [s + "f" for s in np.asarray(values, np.float32).ravel().astype(str).tolist()]
    return ",\n".join(
        "    " + ", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)
    )


def names_array(ident: str, size_macro: str, comment: str, names) -> str:
    items = ",\n".join(f"    {c_string(n)}" for n in names)
    return f"/* {comment} */\nconst char *const {ident}[{size_macro}] = {{\n{items}\n}};\n"


def quantized_weight(artifact: Any, name: str, axis: int) -> Any:
    """The artifact's int8 form of weight `name` (a QuantizedTensor), or None if it is
    float; refused unless quantized along `axis` (one scale per output row)."""
    qt = artifact.quantized.get(name)
    if qt is not None and qt.axis != axis:
        raise UnsupportedModelError(
            f"{artifact.path}: weight {name!r} is quantized along axis {qt.axis} "
            f"(the C library expects axis {axis}, one scale per output row)"
        )
    return qt
