"""The run folder of `lstm-edge train`: what a run writes, how it refuses to replace
another, and the resume state that survives kills.

Run folder OUT (rank 0 alone writes, every file atomically):
    config.json, model.safetensors, data.json   the BEST model so far (`load_checkpoint(OUT)`)
    metrics.jsonl, loss.png, train.json         curves and the run's settings
    resume/latest.json -> resume/<step>/        latest weights + trainer.pt (optimizer,
                                                progress, carried state, RNG, loss history)
Each resume/<step>/ folder is complete before latest.json points at it, so a kill -9 at
any moment leaves both the best model and a resumable state.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lstm_edge.runtime.files import InvalidJsonError, WriteError, parse_json, read_json
from lstm_edge.toolchain.checkpoint import (
    CONFIG_FILE,
    DATA_FILE,
    NOT_CHECKPOINT,
    TMP_PREFIX,
    WEIGHTS_FILE,
    InvalidCheckpointError,
    atomic_write,
    atomic_write_bytes,
    clean_stale_temp_files,
    load_checkpoint,
    load_torch_state,
    save_checkpoint,
    save_torch_state,
)
from lstm_edge.toolchain.run_config import TrainingError

if TYPE_CHECKING:
    from lstm_edge.toolchain.model import EdgeLSTM
    from lstm_edge.toolchain.objective import Objective

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"
RUN_FILE = "train.json"
RESUME_DIR = "resume"
LATEST_FILE = "latest.json"
TRAINER_FILE = "trainer.pt"
STATE_FORMAT = 1  # version of trainer.pt's layout


class OutputFolderError(TrainingError):
    """The run folder cannot be created or written, or holds a run already."""


def resume_dir(out: Path) -> Path:
    return out / RESUME_DIR


def _has_run(out: Path) -> bool:
    names = (CONFIG_FILE, WEIGHTS_FILE, f"{RESUME_DIR}/{LATEST_FILE}", METRICS_FILE)
    return out.is_dir() and any((out / n).exists() for n in names)


def prepare_out(out: Path, *, resume: bool, force: bool) -> None:
    """Create/check the run folder; refuse to replace a run unless --force; clean leftovers."""
    if resume and force:
        raise TrainingError("--resume and --force contradict each other; pass one")
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"output folder {out} is a file, not a folder")
    if resume:
        if not (resume_dir(out) / LATEST_FILE).is_file():
            raise OutputFolderError(
                f"nothing to resume in {out}: {resume_dir(out) / LATEST_FILE} is missing"
            )
    elif _has_run(out):
        if not force:
            raise OutputFolderError(
                f"output folder {out} already holds a checkpoint; pass --resume to continue "
                "it or --force to replace it"
            )
        # config.json goes first, so until the new run's first save the folder reads as
        # "not a checkpoint" instead of pairing a new config with old weights.
        for name in (CONFIG_FILE, WEIGHTS_FILE, DATA_FILE, METRICS_FILE, PLOT_FILE, RUN_FILE):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(resume_dir(out), ignore_errors=True)
    try:
        resume_dir(out).mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / (TMP_PREFIX + "probe"), b"")  # writable? (root ignores modes)
        (out / (TMP_PREFIX + "probe")).unlink()
    except OSError as e:
        raise OutputFolderError(f"cannot write to output folder {out}: {e.strerror or e}") from None
    # A writer killed mid-save leaves temp files and possibly an unreferenced step folder.
    clean_stale_temp_files(out)
    clean_stale_temp_files(resume_dir(out))
    keep = _latest_name(out)
    for p in resume_dir(out).iterdir():
        if p.is_dir() and p.name != keep:
            shutil.rmtree(p, ignore_errors=True)


def _latest_name(out: Path) -> str | None:
    path = resume_dir(out) / LATEST_FILE
    if not path.is_file():
        return None
    latest = read_json(path, InvalidCheckpointError, NOT_CHECKPOINT)
    if not isinstance(latest, dict) or "dir" not in latest:
        raise InvalidCheckpointError(f'not a valid checkpoint: {path} has no "dir"')
    name = latest["dir"]
    if not isinstance(name, str) or not name.isdigit():
        raise InvalidCheckpointError(f"not a valid checkpoint: {path} names {name!r}")
    return name


def latest_resume_dir(out: Path) -> Path | None:
    """The resume/<step>/ folder latest.json points at, or None when there is none."""
    name = _latest_name(Path(out))
    return None if name is None else resume_dir(Path(out)) / name


def load_resume_state(out: Path) -> tuple[EdgeLSTM, dict[str, Any]]:
    """Latest weights and trainer state of a run; both checked, refusing unsafe pickles."""
    folder = latest_resume_dir(out)
    if folder is None:
        raise InvalidCheckpointError(f"not a valid checkpoint: {out} has no resume state")
    model = load_checkpoint(folder).model
    state = load_torch_state(folder / TRAINER_FILE)
    if state.get("format") != STATE_FORMAT:
        raise InvalidCheckpointError(
            f"not a valid checkpoint: {folder / TRAINER_FILE} has format "
            f"{state.get('format')!r} (expected {STATE_FORMAT})"
        )
    if state.get("step") != int(folder.name):
        raise InvalidCheckpointError(
            f"not a valid checkpoint: {folder / TRAINER_FILE} is for step {state.get('step')!r}"
            f", its folder for step {int(folder.name)}"
        )
    return model, state


def write_metrics(out: Path, records: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    atomic_write_bytes(out / METRICS_FILE, text.encode())


def read_metrics(out: Path) -> list[dict[str, Any]]:
    path = Path(out) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(parse_json(line, path))
        except InvalidJsonError:
            continue  # not ours to fail on: a hand-edited line
    return records


def plot_losses(
    path: Path,
    losses: list[float],
    evals: list[dict[str, Any]],
    objective: Objective | None = None,
) -> None:
    """PNG of the training loss (per step and smoothed) and the validation metric (BPC,
    normalized RMSE or MAE) against step."""
    if objective is None:
        from lstm_edge.toolchain.objective import Objective
        from lstm_edge.toolchain.run_config import RunConfig

        objective = Objective.of(RunConfig())
    from matplotlib.figure import Figure  # no pyplot: no global backend state to disturb

    fig = Figure(figsize=(8, 4.5), dpi=100)
    ax = fig.subplots()
    if losses:
        bpc = np.asarray([objective.value(v) for v in losses])
        steps = np.arange(1, len(bpc) + 1)
        ax.plot(steps, bpc, color="tab:blue", alpha=0.25, linewidth=0.8)
        w = max(1, min(50, len(bpc) // 10))
        smooth = np.convolve(bpc, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1 :], smooth, color="tab:blue", label=f"train (mean of {w} steps)")
    if evals:
        ax.plot(
            [e["step"] for e in evals],
            [e[objective.metric] for e in evals],
            "o-",
            color="tab:orange",
            label="validation",
        )
    ax.set_xlabel("step")
    ax.set_ylabel(objective.unit)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


@contextmanager
def saving(folder: Path) -> Iterator[None]:
    """OSError while saving (disk full, ...) -> a message naming the folder; the atomic
    writes have left the previous files in place."""
    try:
        yield
    except WriteError as e:
        raise TrainingError(
            f"could not save the checkpoint: {e}; the previous checkpoint is intact"
        ) from None
    except OSError as e:
        raise TrainingError(
            f"could not save the checkpoint in {folder}: {e.strerror or e}; the previous "
            "checkpoint is intact"
        ) from None


def save_resume_state(out: Path, model: EdgeLSTM, state: dict[str, Any]) -> None:
    """Write resume/<step>/ (weights + trainer.pt) and only then point latest.json at it;
    drop the older step folders."""
    step = state["step"]
    name = f"{step:09d}"
    folder = resume_dir(out) / name
    try:
        with saving(folder):
            save_checkpoint(folder, model, metadata={"step": str(step)})
            save_torch_state(folder / TRAINER_FILE, state)
            # The pointer moves only once the folder is complete: the commit point.
            pointer = json.dumps({"step": step, "dir": name}) + "\n"
            atomic_write_bytes(resume_dir(out) / LATEST_FILE, pointer.encode())
    except BaseException:
        if _latest_name(out) != name:  # never leave a step folder without its trainer.pt
            shutil.rmtree(folder, ignore_errors=True)
        raise
    for p in resume_dir(out).iterdir():
        if p.is_dir() and p.name != name:
            shutil.rmtree(p, ignore_errors=True)


def write_curves(
    out: Path,
    metrics: list[dict[str, Any]],
    losses: list[float],
    evals: list[dict[str, Any]],
    objective: Objective,
) -> None:
    """metrics.jsonl and loss.png of the run so far."""
    with saving(out):
        write_metrics(out, metrics)
        plot_losses(out / PLOT_FILE, losses, evals, objective)
