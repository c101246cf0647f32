"""runtime/files.py: torch-free output helpers, and `detect` running without torch.

`lstm-edge detect` only runs the runtime, so neither importing it nor a whole run that
writes scores.csv / report.json / detect.png may load torch (or the onnx package): the
check runs in a fresh interpreter, since this test process has torch loaded already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from lstm_edge.exporters import onnx_export
from lstm_edge.runtime import files
from lstm_edge.toolchain import checkpoint
from lstm_edge.toolchain import series as S
from lstm_edge.toolchain.export import export_checkpoint
from lstm_edge.toolchain.model import build_model

HEAVY = ("torch", "onnx", "typer")


def _run(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_files_and_detect_loads_no_torch():
    loaded = _run(
        f"""
        import json, sys
        import lstm_edge.runtime.files, lstm_edge.toolchain.detect
        print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))
        """
    )
    assert loaded == {m: False for m in HEAVY}


def test_the_helpers_have_one_definition():
    # checkpoint and onnx_export re-export the helpers for older callers; they must be the
    # very same objects, not copies that could drift apart.
    for name in ("atomic_write", "atomic_write_bytes", "atomic_write_json", "sha256_file"):
        assert getattr(checkpoint, name) is getattr(files, name)
    assert checkpoint.clean_stale_temp_files is files.clean_stale_temp_files
    assert checkpoint.TMP_PREFIX == files.TMP_PREFIX
    assert onnx_export.check_output_path is files.check_output_path
    assert onnx_export.OutputExistsError is files.OutputExistsError
    assert S.sha256_file is files.sha256_file


def test_check_output_path_refusals(tmp_path: Path):
    existing = tmp_path / "a.json"
    existing.write_text("{}")
    with pytest.raises(files.OutputExistsError, match="pass --force"):
        files.check_output_path(existing, force=False)
    assert files.check_output_path(existing, force=True) == existing
    with pytest.raises(files.OutputExistsError, match="is a folder"):
        files.check_output_path(tmp_path, force=True)
    with pytest.raises(files.OutputExistsError, match="does not exist"):
        files.check_output_path(tmp_path / "missing" / "a.json", force=False)
    assert existing.read_text() == "{}"


@pytest.fixture(scope="module")
def forecast_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny calibrated forecast artifact (untrained 1x4 model on 600 built-in rows)."""
    root = tmp_path_factory.mktemp("fc")
    rows = 600
    series = S.builtin_signal(rows, seed=1)
    split = S.split_rows(rows, 0.1, 0.1)
    features, targets = S.choose_columns(series, None, None, builtin=True)
    config = S.forecast_config(
        series, split, features, targets, horizon=1, hidden_size=4, num_layers=1
    )
    torch.manual_seed(0)
    record = S.data_record(series, split, csv_path=None, time_column=None, label_column=None,
                           builtin_rows=rows, builtin_seed=1, season=None)  # fmt: skip
    checkpoint.save_checkpoint(root / "ckpt", build_model(config), record)
    export_checkpoint(root / "ckpt", root / "model.onnx", check_steps=20)
    return root / "model.onnx"


def test_a_detect_run_with_outputs_loads_no_torch(forecast_artifact: Path, tmp_path: Path):
    csv_path = tmp_path / "machine.csv"
    S.write_csv(S.builtin_signal(300, seed=2), csv_path)
    out = tmp_path / "det"
    result = _run(
        f"""
        import json, sys
        from pathlib import Path
        from lstm_edge.toolchain.detect import DetectOptions, detect
        report = detect(
            Path({str(forecast_artifact)!r}),
            DetectOptions(csv=Path({str(csv_path)!r}), time_column="time",
                          label_column="fault", backend="numpy", out=Path({str(out)!r})),
        )
        loaded = {{m: m in sys.modules for m in {HEAVY!r}}}
        print(json.dumps({{"rows": report.rows, "loaded": loaded}}))
        """
    )
    assert result["loaded"] == {m: False for m in HEAVY}
    assert result["rows"] == 300
    written = json.loads((out / "report.json").read_text())
    assert written["rows"] == 300 and written["labelled"] is True
    assert (out / "scores.csv").read_text().count("\n") == 301  # header + one line per row
