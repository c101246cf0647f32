"""`lstm-edge info`: say what an artifact is and check that it is whole.

`describe(path)` dispatches on the kind of path (a checkpoint folder or an ONNX artifact)
and returns a JSON-able dict; anything broken or foreign raises a typed error naming the
file, which the CLI turns into exit status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstm_edge.exporters.quantize import META_QUANT_RUNTIME, META_QUANT_TENSORS
from lstm_edge.runtime.artifact import logical_shapes, read_artifact
from lstm_edge.runtime.config import META_PRODUCER_VERSION, META_SOURCE_SHA256, ModelConfig
from lstm_edge.runtime.errors import InvalidArtifactError
from lstm_edge.runtime.files import InvalidJsonError, parse_json, read_json
from lstm_edge.runtime.integer import IntegerScheme
from lstm_edge.toolchain.checkpoint import (
    CONFIG_FILE,
    NOT_CHECKPOINT,
    WEIGHTS_FILE,
    Checkpoint,
    InvalidCheckpointError,
    load_checkpoint,
    read_weights_metadata,
)
from lstm_edge.toolchain.train import (
    RESUME_DIR,
    RUN_FILE,
    latest_resume_dir,
    load_resume_state,
    read_metrics,
)


def describe(path: Path) -> dict[str, Any]:
    """Describe and check the artifact at `path`, whatever its kind."""
    path = Path(path)
    if path.is_dir():
        return describe_checkpoint(path)
    if not path.exists():
        raise InvalidCheckpointError(f"{path} does not exist")
    if path.suffix == ".onnx":
        return describe_onnx(path)
    raise InvalidCheckpointError(
        f"{path} is not something lstm-edge knows (expected a checkpoint folder with "
        f"{CONFIG_FILE} or an .onnx artifact)"
    )


def _evaluation(cfg: ModelConfig) -> Any:
    from lstm_edge.toolchain import tasks

    return tasks.evaluation(cfg)


def config_summary(cfg: ModelConfig) -> dict[str, Any]:
    """The config, compact, as the task shows it: char-lm without its vocabulary list (its
    size stands in for it); forecast with column names joined and the statistics left to
    `normalization`."""
    return _evaluation(cfg).info_config(cfg)


def calibration_summary(cfg: ModelConfig, calibration: dict[str, Any]) -> dict[str, Any]:
    """META_CALIBRATION with the residual scales named by target."""
    scales = ", ".join(
        f"{t} {v:.4g}" for t, v in zip(cfg.targets, calibration["residual_scale"], strict=True)
    )
    extra = {k: v for k, v in calibration.items() if k not in ("residual_scale", "threshold")}
    return {"threshold": calibration["threshold"], "residual_scale": scales, **extra}


def _task_details(cfg: ModelConfig) -> dict[str, Any]:
    return _evaluation(cfg).info_details(cfg)


# Artifact.integrity as `info` shows it; a digest mismatch never gets here (load refuses it).
_INTEGRITY = {
    "verified": "verified (content digest matches)",
    "absent": "absent (written before digests)",
}


def describe_onnx(path: Path) -> dict[str, Any]:
    """Config, scheme, sizes of an ONNX artifact; runs every check the runtime's load runs."""
    art = read_artifact(path)  # refuses anything broken or foreign, naming what is wrong
    cfg = art.config
    meta = art.metadata
    info: dict[str, Any] = {
        "kind": "onnx",
        "path": str(path),
        "scheme": art.scheme,
        "config": config_summary(cfg),
        "parameters": sum(int(np.prod(s)) for s in logical_shapes(cfg).values()),
        "file_bytes": path.stat().st_size,
        "sha256": art.sha256,
        "integrity": _INTEGRITY[art.integrity],
        "source_weights_sha256": meta.get(META_SOURCE_SHA256),
        "producer_version": meta.get(META_PRODUCER_VERSION),
        "ops": ", ".join(sorted(art.ops)),
        **_task_details(cfg),
    }
    if art.calibration is not None:
        info["calibration"] = calibration_summary(cfg, art.calibration)
    if META_QUANT_RUNTIME in meta:
        info["runs_on"] = meta[META_QUANT_RUNTIME]
    if art.integer is not None:
        info["integer"] = integer_summary(art.integer, cfg)
    if META_QUANT_TENSORS in meta:
        where = f"{path}: metadata {META_QUANT_TENSORS!r}"
        tensors = parse_json(meta[META_QUANT_TENSORS], where, InvalidArtifactError)
        info["tensors"] = {
            t["name"]: {
                "shape": "x".join(map(str, t["shape"])),
                "bytes": f"{t['bytes_before']:,} -> {t['bytes_after']:,}",
                "max_abs_error": t["max_abs_error"],
            }
            for t in tensors
        }
    return info


def cell_formats(cell_frac: np.ndarray) -> str:
    """A layer's per-unit cell formats as a histogram, the most common first: frac
    fractional bits of an int16 is Q(15 - frac).frac, e.g. "Q3.12 x 200, Q9.6 x 3"."""
    fracs, counts = np.unique(np.asarray(cell_frac), return_counts=True)
    order = sorted(zip(counts.tolist(), fracs.tolist(), strict=True), key=lambda p: (-p[0], -p[1]))
    return ", ".join(f"Q{15 - f}.{f} x {n}" for n, f in order)


def _rescales(mult: np.ndarray, shift: np.ndarray) -> str:
    """The real values M x 2^-S of a row of multipliers: their range and the shifts'."""
    real = np.asarray(mult, np.float64) * 2.0 ** -np.asarray(shift, np.float64)
    lo, hi = (f"{real.min():.4g}", f"{real.max():.4g}")
    values = lo if lo == hi else f"{lo} .. {hi}"
    shifts = f"{shift.min()}" if shift.min() == shift.max() else f"{shift.min()}..{shift.max()}"
    return f"{values} (M x 2^-S, S {shifts})"


def integer_summary(scheme: IntegerScheme, cfg: ModelConfig) -> dict[str, Any]:
    """An int8-full artifact's integer parameters as a reader checks them: the scales and
    cell formats per layer, what each rescale multiplies by, the tables, where the ranges
    came from, and the state's RAM per stream."""
    layers: dict[str, Any] = {}
    for k, lay in enumerate(scheme.layers):
        layers[f"layer{k}"] = {
            "x_scale": f"{lay.x_scale:.6g}",
            "h_scale": f"{lay.h_scale:.6g}",
            "cell_formats": cell_formats(lay.cell_frac),
            "input_rescale": _rescales(lay.x_mult, lay.x_shift),
            "recurrent_rescale": _rescales(lay.h_mult, lay.h_shift),
            "h_rescale": _rescales(np.array([lay.out_mult]), np.array([lay.out_shift])),
            "bias_q3_12": f"{int(lay.bias.min()):,} .. {int(lay.bias.max()):,}",
        }
    tables = (scheme.sigmoid_table, scheme.tanh_table)
    table_bytes = sum(t.size * 2 for t in tables)  # int16
    if scheme.embedding_q is not None:
        vocab, width = scheme.embedding_q.shape
        input_stage = f"int8 embedding codes {vocab} x {width}"
    else:
        input_stage = (
            f"x_q = floor(xn x {float(scheme.input_inv_scale):.6g} + 0.5) in float32, "
            f"clamped to [-127, 127]"
        )
    head = scheme.head_scale
    cells = cfg.num_layers * cfg.hidden_size
    return {
        **layers,
        "input_stage": input_stage,
        "head": f"int8 {scheme.head_q.shape[0]} x {scheme.head_q.shape[1]}, float32 scale "
        f"per output {head.min():.4g} .. {head.max():.4g}",
        "tables": f"sigmoid + tanh: {len(tables)} x {tables[0].size} int16 = {table_bytes:,} bytes",
        "calibration": _integer_calibration(scheme.calibration),
        "ram_per_stream": f"{cells * 3:,} bytes ({cfg.num_layers} x {cfg.hidden_size} x 3: int8 "
        f"h + int16 c); float: {cells * 8:,} bytes (x 8)",
    }


def _integer_calibration(cal: dict[str, Any]) -> dict[str, Any]:
    """The calibration record (what the ranges came from) with the ranges joined."""

    def joined(values: Any) -> str:
        return ", ".join(f"{v:.4g}" for v in values) if isinstance(values, list) else str(values)

    out = {k: cal[k] for k in ("data", "split", "rows", "steps", "streams") if k in cal}
    ranges = []
    if "input_absmax" in cal:
        ranges.append(f"max|input| {cal['input_absmax']:.4g}")
    if "h_absmax" in cal:
        ranges.append(f"max|h| per layer {joined(cal['h_absmax'])}")
    if "c_absmax_max" in cal:
        ranges.append(f"max|c| per layer {joined(cal['c_absmax_max'])}")
    if ranges:
        out["ranges"] = "; ".join(ranges)
    return out


def _check_finite_weights(ckpt: Checkpoint) -> None:
    """NaN/Inf weights (training never saves them: the file is damaged) are refused, naming
    the tensor, as export refuses them."""
    for name, value in ckpt.model.state_dict().items():
        bad = int((~torch.isfinite(value)).sum())
        if bad:
            raise InvalidCheckpointError(
                f"not a valid checkpoint: {ckpt.path / WEIGHTS_FILE}: tensor {name!r} holds "
                f"{bad} NaN/Inf value(s) of {value.numel()}"
            )


def describe_checkpoint(folder: Path) -> dict[str, Any]:
    """Config, sizes, metrics of a checkpoint folder; loads every weight to check it."""
    ckpt = load_checkpoint(folder)  # weights readable and matching the config, or it raises
    _check_finite_weights(ckpt)
    cfg = ckpt.config
    meta = read_weights_metadata(folder)
    info: dict[str, Any] = {
        "kind": "checkpoint",
        "path": str(folder),
        "config": config_summary(cfg),
        "parameters": sum(p.numel() for p in ckpt.model.parameters()),
        "weights_sha256": ckpt.weights_sha256,
        "best": {k: _number(v) for k, v in meta.items() if k != "format_version"},
        **_task_details(cfg),
    }
    if ckpt.data:
        info["data"] = _data_summary(ckpt.data, _evaluation(cfg).data_unit)
    run_file = folder / RUN_FILE
    if run_file.is_file():
        run = read_json(run_file, InvalidCheckpointError, NOT_CHECKPOINT)
        info["run"] = run.get("run") if isinstance(run, dict) else None
        if isinstance(run, dict) and isinstance(run.get("budget"), dict):
            info["budget"] = run["budget"]  # the timing probe that fixed run.steps
    metrics = read_metrics(folder)
    for kind in ("train", "val"):
        last = [m for m in metrics if m.get("kind") == kind]
        if last:
            info[f"last_{kind}"] = {k: v for k, v in last[-1].items() if k != "kind"}
    if (folder / RESUME_DIR).exists():
        _, state = load_resume_state(folder)  # refuses unsafe pickles, torn states
        info["resume"] = {
            "step": int(state["step"]),
            "of_steps": int(state["run"]["steps"]),
            "folder": str(latest_resume_dir(folder)),
        }
    info["files"] = {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
    return info


def _data_summary(data: dict[str, Any], unit: str) -> dict[str, Any]:
    """Source, hash and split sizes of a data.json record ([start, end) per split)."""
    summary: dict[str, Any] = {"source": data.get("source"), "sha256": data.get("sha256")}
    split = data.get("split", {})
    if isinstance(split, dict):
        summary[unit] = {
            name: span[1] - span[0]
            for name, span in split.items()
            if isinstance(span, (list, tuple))
            and len(span) == 2
            and all(isinstance(v, int) for v in span)
        }
    for key in (
        "target_kind_source",
        "ar_lags_source",
        "season_source",
    ):  # forecast: why, if recorded
        if isinstance(data.get(key), str):
            summary[key] = data[key]
    return summary


def _number(text: str) -> Any:
    try:
        return parse_json(text, "")
    except InvalidJsonError:
        return text


def rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    """Flatten `describe`'s dict into (key, value) lines for a two-column table."""
    out: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, bool) or value is None:
            out.append((prefix, str(value)))
        elif isinstance(value, float):
            out.append((prefix, f"{value:.4f}"))
        elif isinstance(value, int) and prefix.startswith("files."):
            out.append((prefix, _size(value)))
        elif isinstance(value, int):
            out.append((prefix, f"{value:,}"))
        else:
            out.append((prefix, str(value)))

    walk("", info)
    return out


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
