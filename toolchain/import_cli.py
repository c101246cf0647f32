"""`lstm-edge import`: read the command's optional files, then import (exporters.import_check)."""

from __future__ import annotations

from pathlib import Path

from lstm_edge.exporters.import_check import ImportReport, import_onnx_file
from lstm_edge.exporters.import_onnx import ImportRefusedError
from lstm_edge.runtime.files import parse_json

STAT_KEYS = ("features", "targets", "feature_mean", "feature_std", "target_mean", "target_std")


def read_token_names(path: Path) -> tuple[str, ...]:
    """One display name per line (id order)."""
    try:
        return tuple(Path(path).read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError) as e:
        raise ImportRefusedError(f"{path}: cannot read token names ({e})") from None


def read_stats(path: Path) -> dict:
    """The feature statistics and column names of a float-feature model (JSON object)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ImportRefusedError(f"{path}: cannot read statistics ({e})") from None
    stats = parse_json(text, str(path), ImportRefusedError)
    if not isinstance(stats, dict) or set(stats) - set(STAT_KEYS):
        extra = sorted(set(stats) - set(STAT_KEYS)) if isinstance(stats, dict) else stats
        raise ImportRefusedError(
            f"{path}: unexpected {extra!r} (expected a JSON object with keys from {STAT_KEYS})"
        )
    return {k: tuple(v) if isinstance(v, list) else v for k, v in stats.items()}


def run_import(
    source: Path,
    out: Path,
    force: bool,
    steps: int,
    token_names: Path | None,
    stats: Path | None,
) -> ImportReport:
    return import_onnx_file(
        source,
        out,
        force=force,
        steps=steps,
        token_names=read_token_names(token_names) if token_names else (),
        stats=read_stats(stats) if stats else None,
    )
