"""`lstm-edge validate` of int8-full classifiers (tiny): feature rows and text tokens, each
within the scheme's tolerances (accuracy within one point of torch), ort skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from integer_models import cli_validate_int8_full

from lstm_edge.exporters.compare import CLASSIFY_TOLERANCES
from lstm_edge.toolchain import classify_data as cd

WORDS = {
    "en": "the and house water green small light tree",
    "de": "und der haus wasser grün klein licht baum",
    "fi": "ja talo vesi vihreä pieni valo puu kylä",
}


def _rows_csv(path: Path) -> list[str]:
    seqs = cd.builtin_sequences(260, seed=5)
    cd.write_csv(seqs, path, [i for i in range(len(seqs)) if seqs.lengths[i] <= 40])
    return ["--csv", str(path), "--time-column", "time", "--steps", "40", "--hidden", "12",
            "--batch-size", "8"]  # fmt: skip


def _texts_csv(path: Path) -> list[str]:
    rng = np.random.default_rng(0)
    lines = ["body,label"]
    for i in range(120):
        lang = list(WORDS)[i % 3]
        lines.append(" ".join(rng.choice(WORDS[lang].split(), rng.integers(2, 6))) + f",{lang}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ["--csv", str(path), "--text-column", "body", "--steps", "60", "--hidden", "16",
            "--embed", "8", "--batch-size", "8"]  # fmt: skip


@pytest.fixture(scope="module", params=["rows", "tokens"])
def validated(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    data = _rows_csv if request.param == "rows" else _texts_csv
    args = data(root / "data.csv")
    return request.param, *cli_validate_int8_full(root, "--task", "classify", *args)


def test_int8_full_classifier_passes_validation(validated):
    kind, report, output = validated
    assert report["passed"] is True and report["task"] == "classify"
    (full,) = [r for r in report["results"] if r["scheme"] == "int8-full"]
    tol = CLASSIFY_TOLERANCES["int8-full"]
    assert full["backend"] == "numpy" and full["tolerance"] == vars(tol)
    assert full["accuracy_drop"] <= tol.max_accuracy_drop
    assert full["top1_agreement"] >= tol.min_top1
    assert full["final_agreement"] >= tol.min_final_agreement
    print(
        f"classify ({kind}) int8-full: accuracy {full['torch_scores']['accuracy']:.4f} -> "
        f"{full['artifact_scores']['accuracy']:.4f} (drop {full['accuracy_drop']:+.4f}), "
        f"top-1 {full['top1_agreement']:.4f}, final agreement {full['final_agreement']:.4f}"
    )
    assert "m.int8-full.onnx (ort)" in " ".join(report["skipped"])
    assert "onnxruntime does not compute" in output
    # real cell values, close to the float model's (codes would span thousands)
    (floats,) = [r for r in report["results"] if r["scheme"] == "none" and r["backend"] == "numpy"]
    assert full["cell_max"] == pytest.approx(floats["cell_max"], abs=0.1)
