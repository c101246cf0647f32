"""Output files, torch-free: atomic writes, output-path checks, temp-file cleanup, hashes.

Every file lstm-edge writes goes to a temp file in the same folder, is fsynced, then
`os.replace`d, so a kill at any moment leaves the previous good file under the final name.
These helpers import only the standard library (and the runtime's typed errors), so
torch-free commands (`lstm-edge detect`, which runs only the runtime) can write their
outputs without paying for torch or onnx.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lstm_edge.runtime.errors import LstmEdgeError

TMP_PREFIX = ".tmp-"
_UMASK = os.umask(0o022)  # read once (os.umask can only read by setting), then restore
os.umask(_UMASK)


class OutputExistsError(LstmEdgeError):
    """The output path exists and the caller did not ask to overwrite it."""


class InvalidJsonError(LstmEdgeError):
    """A JSON file or metadata value that cannot be parsed (also: nested too deep, or an
    integer too long for Python to convert)."""


def parse_json(
    text: str | bytes, where: object, error: type[LstmEdgeError] = InvalidJsonError
) -> Any:
    """json.loads that never escapes with a RecursionError or a bare ValueError: anything
    unparsable raises `error` with "{where} is not valid JSON: {reason}"."""
    try:
        return json.loads(text)
    except RecursionError:
        reason = "nested too deep"
    except UnicodeDecodeError as e:
        reason = f"not UTF-8 ({e.reason} at byte {e.start})"
    except json.JSONDecodeError as e:
        reason = str(e)
    except ValueError as e:  # e.g. an integer beyond sys.get_int_max_str_digits()
        reason = str(e).split(";")[0]
    raise error(f"{where} is not valid JSON: {reason}") from None


def read_json(path: Path, error: type[LstmEdgeError] = InvalidJsonError, prefix: str = "") -> Any:
    """The JSON value in file `path`; unreadable or unparsable files raise `error` naming it
    (its message starts with `prefix`, e.g. "not a valid checkpoint: ")."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise error(f"{prefix}cannot read {path}: {e.strerror or e}") from None
    return parse_json(data, f"{prefix}{path}", error)


def check_output_path(out: Path, force: bool) -> Path:
    """Refuse an existing output without `force` and a folder we cannot write into."""
    out = Path(out)
    if out.is_dir():
        raise OutputExistsError(f"output {out} is a folder (expected a file path)")
    if out.exists() and not force:
        raise OutputExistsError(f"output {out} exists; pass --force to overwrite it")
    folder = out.parent
    if not folder.is_dir():
        raise OutputExistsError(f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputExistsError(f"output folder {folder} is not writable")
    return out


class WriteError(LstmEdgeError):
    """An output could not be written (disk full, no permission, ...); names the path."""


def _write_error(path: Path, e: OSError) -> WriteError:
    return WriteError(f"cannot write {path}: {e.strerror or e}")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temp file beside `path`, fsync it, then replace `path` with it.

    On any failure (disk full included) the temp file is removed and `path` is untouched;
    an OSError becomes a WriteError naming `path` (the one place every writer passes).
    """
    path = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise _write_error(path, e) from None
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual file mode
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _write_error(path, e) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(path: Path, obj: Any) -> None:
    """`obj` as indented JSON plus a newline, written atomically. NaN/inf are written as
    NaN/Infinity (Python's json reads them back) so a failed run's statistics still save."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def clean_stale_temp_files(folder: Path) -> list[Path]:
    """Remove temp files a killed writer left behind; returns what was removed."""
    removed = []
    for p in Path(folder).glob(TMP_PREFIX + "*"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
