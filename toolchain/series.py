"""Sensor tables for the forecast task: the built-in machine signal, CSV files, splits.

A `Series` is a whole table of numeric columns (float64), optionally with labelled fault
rows. Training cuts it into contiguous train/val/test blocks (like the text corpus: no
leakage by overlap), takes the normalization statistics from the training block alone, and
writes a `data.json` record from which `held_out_series` later rebuilds exactly the rows
the model never saw (regenerating the built-in signal, or re-reading the CSV and checking
its SHA-256). No torch here: only numpy and the stdlib.

The built-in signal (`builtin_signal`) is a simulated electric motor driving a machine,
sampled every 15 minutes (96 rows per day). Columns:

- load [0..1]: a shift schedule. Day shifts (06:00-14:00, 14:00-22:00) run at a random
  level 0.5-0.95 that changes at random moments within the shift (every 1.5-4 hours); the
  night shift idles at 0.1-0.3. Measured with noise (sd 0.02).
- ambient_temp [deg C]: 20 + a daily cycle (amplitude 4, warmest at 15:00) + a slow
  seasonal drift (period 80 days) + slow weather noise (AR(1)); measurement noise sd 0.3.
- current [A]: 3 + 17 * load, noise sd 0.4.
- motor_temp [deg C]: first-order thermal lag (time constant 1.5 h) towards
  ambient + 8 + 32 * load^2, plus a slow ageing drift (+3 deg over the whole series);
  measurement noise sd 0.5.
- vibration [mm/s]: 1 + 2 * load, a slow bearing-wear drift (+0.4 over the series),
  noise sd 0.25.

Faults, one per block of `FAULT_SPACING` rows at a random place in its middle (so every
5% split of the default size holds at least two), of three kinds with their rows marked
in `faults`:

- cooling failure (3-8 h): the motor's heat rises by 12-25 deg C while it lasts, so
  motor_temp climbs towards the new equilibrium (and cools back afterwards, unlabelled);
- bearing defect (4-12 h): vibration bursts, each row adding 0-4 mm/s with probability 0.6;
- sensor spike (1-2 rows): motor_temp, vibration or current reads 6-10 of its noise
  sds too high or too low.

Measurement noise makes persistence (predict the last value) beatable; the daily cycle,
the shift schedule and the thermal lag are what a model can learn. Everything is drawn
from one `numpy.random.Generator(seed)` in a fixed order, so (rows, seed) fix the signal.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.runtime.files import sha256_file
from lstm_edge.runtime.format import MAX_AR_LAGS
from lstm_edge.runtime.tasks.forecast import FORECAST
from lstm_edge.toolchain.data import SPLITS, Split, split_corpus, split_from_record

BUILTIN_SOURCE = "builtin:machine"
BUILTIN_COLUMNS = ("load", "ambient_temp", "current", "motor_temp", "vibration")
BUILTIN_TARGETS: tuple[str, ...] = ("motor_temp", "vibration")
BUILTIN_ROWS = 20_000  # ~208 days: fast to train on, 1000 rows (~10 days) per 5% split
ROWS_PER_DAY = 96  # 15-minute samples
FAULT_SPACING = 320  # one injected fault per block of this many rows (~3.3 days)
FAULT_KINDS = ("cooling", "bearing", "spike")
# The CSV form of the built-in signal (`write_csv`): a time column and a 0/1 label column.
TIME_COLUMN = "time"
LABEL_COLUMN = "fault"
BUILTIN_START = datetime(2024, 1, 1, tzinfo=UTC)

# A CSV is parsed in memory by the stdlib csv module (~10x its size in Python objects);
# larger files are refused with a message rather than exhausting memory.
MAX_CSV_BYTES = 256 << 20
SERIES_FORMAT = 1  # version of the forecast data.json layout written by `data_record`


class SeriesError(LstmEdgeError):
    """A sensor table that cannot be used: missing, malformed, too short, unknown columns."""


@dataclass(frozen=True)
class Series:
    """A whole table: numeric columns in file order, rows in time order."""

    columns: tuple[str, ...]
    values: np.ndarray  # float64 [rows, cols]
    faults: np.ndarray | None  # bool [rows]: inside a labelled fault (built-in: injected)
    source: str  # human text: "built-in machine signal (seed 0, 20000 rows)" / the path
    season: int | None  # period in rows, if known (built-in: rows per day)
    step_seconds: float | None = None  # median spacing of the time column, if there is one

    @property
    def rows(self) -> int:
        return self.values.shape[0]


@dataclass(frozen=True)
class SplitData:
    """One split, columns picked for a config."""

    features: np.ndarray  # float32 [T, F] raw, in config.features order
    targets: np.ndarray  # float32 [T, n_targets] raw, the targets AT step t (not shifted)
    faults: np.ndarray | None  # bool [T]
    season: int | None


# ---- the built-in signal --------------------------------------------------------------------


def builtin_signal(rows: int = BUILTIN_ROWS, seed: int = 0) -> Series:
    """The simulated machine described in the module docstring; deterministic in (rows, seed)."""
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 2 * ROWS_PER_DAY:
        raise SeriesError(f"built-in signal rows is {rows!r} (expected an integer >= 192)")
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    hour = (t % ROWS_PER_DAY) * 24.0 / ROWS_PER_DAY

    load = _load_schedule(rng, hour)
    weather = _ar1(rng, rows, phi=0.995, sd=0.08)
    ambient = (
        20.0
        + 4.0 * np.cos(2 * np.pi * (hour - 15.0) / 24.0)
        + 3.0 * np.sin(2 * np.pi * t / (80 * ROWS_PER_DAY))
        + weather
    )
    extra_heat, bursts, faults, spikes = _faults(rng, rows)
    ageing = 3.0 * t / rows
    target_temp = ambient + 8.0 + 32.0 * load**2 + extra_heat + ageing
    motor = _thermal_lag(target_temp, tau_rows=6.0)
    wear = 0.4 * t / rows
    vibration = 1.0 + 2.0 * load + wear + bursts

    clean = {
        "load": load,
        "ambient_temp": ambient,
        "current": 3.0 + 17.0 * load,
        "motor_temp": motor,
        "vibration": vibration,
    }
    noise_sd = {"load": 0.02, "ambient_temp": 0.3, "current": 0.4, "motor_temp": 0.5}
    noise_sd["vibration"] = 0.25
    values = np.empty((rows, len(BUILTIN_COLUMNS)))
    for j, name in enumerate(BUILTIN_COLUMNS):
        values[:, j] = clean[name] + rng.normal(0.0, noise_sd[name], rows)
    for row, col, sign, size in spikes:
        j = BUILTIN_COLUMNS.index(col)
        values[row, j] += sign * size * noise_sd[col]
    return Series(
        columns=BUILTIN_COLUMNS,
        values=values,
        faults=faults,
        source=f"built-in machine signal (seed {seed}, {rows} rows)",
        season=ROWS_PER_DAY,
        step_seconds=86400.0 / ROWS_PER_DAY,
    )


def _load_schedule(rng: np.random.Generator, hour: np.ndarray) -> np.ndarray:
    """Piecewise-constant load: idle nights, day shifts whose level changes now and then."""
    rows = hour.shape[0]
    load = np.empty(rows)
    level = 0.2
    next_change = 0
    prev_shift = -1
    for i in range(rows):
        shift = 0 if hour[i] < 6.0 or hour[i] >= 22.0 else (1 if hour[i] < 14.0 else 2)
        if shift != prev_shift or i >= next_change:
            level = rng.uniform(0.1, 0.3) if shift == 0 else rng.uniform(0.5, 0.95)
            next_change = i + int(rng.integers(6, 17))  # 1.5-4 h
            prev_shift = shift
        load[i] = level
    return load


def _ar1(rng: np.random.Generator, rows: int, *, phi: float, sd: float) -> np.ndarray:
    eps = rng.normal(0.0, sd, rows)
    out = np.empty(rows)
    acc = 0.0
    for i in range(rows):
        acc = phi * acc + eps[i]
        out[i] = acc
    return out


def _thermal_lag(target: np.ndarray, *, tau_rows: float) -> np.ndarray:
    """First-order lag: each row moves 1 - exp(-1/tau) of the way to the target."""
    alpha = 1.0 - math.exp(-1.0 / tau_rows)
    out = np.empty_like(target)
    temp = target[0]
    for i in range(target.shape[0]):
        out[i] = temp
        temp += alpha * (target[i] - temp)
    return out


def _faults(
    rng: np.random.Generator, rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, str, float, float]]]:
    """Injected faults: (extra motor heat, vibration bursts, labelled rows, sensor spikes)."""
    extra_heat = np.zeros(rows)
    bursts = np.zeros(rows)
    faults = np.zeros(rows, dtype=bool)
    spikes: list[tuple[int, str, float, float]] = []
    for block in range(rows // FAULT_SPACING):
        kind = FAULT_KINDS[int(rng.integers(len(FAULT_KINDS)))]
        # The middle of the block, so faults never straddle a block (or split) edge much.
        start = block * FAULT_SPACING + int(rng.integers(FAULT_SPACING // 4, FAULT_SPACING // 2))
        if kind == "cooling":
            length = int(rng.integers(12, 33))
            extra_heat[start : start + length] = rng.uniform(12.0, 25.0)
        elif kind == "bearing":
            length = int(rng.integers(16, 49))
            hits = rng.random(length) < 0.6
            bursts[start : start + length] = hits * rng.uniform(0.0, 4.0, length)
        else:
            length = int(rng.integers(1, 3))
            col = ("motor_temp", "vibration", "current")[int(rng.integers(3))]
            sign = 1.0 if rng.random() < 0.5 else -1.0
            spikes += [(start + k, col, sign, rng.uniform(6.0, 10.0)) for k in range(length)]
        faults[start : start + length] = True
    return extra_heat, bursts, faults, spikes


def write_csv(series: Series, path: str | Path) -> None:
    """Write a series as CSV: a `time` column (ISO 8601, 15-minute steps from 2024-01-01,
    only when the series has a known 96-row season), its columns (full precision, so
    `read_csv` gives the same values back) and a 0/1 `fault` column if it has labels."""
    header = list(series.columns)
    with_time = series.season == ROWS_PER_DAY
    if with_time:
        header.insert(0, TIME_COLUMN)
    if series.faults is not None:
        header.append(LABEL_COLUMN)
    step = timedelta(minutes=24 * 60 // ROWS_PER_DAY)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in range(series.rows):
            row = [repr(float(v)) for v in series.values[i]]
            if with_time:
                row.insert(0, (BUILTIN_START + i * step).strftime("%Y-%m-%dT%H:%M:%S"))
            if series.faults is not None:
                row.append("1" if series.faults[i] else "0")
            w.writerow(row)


# ---- CSV --------------------------------------------------------------------------------------


def read_cells(
    path: Path, error: type[LstmEdgeError] = SeriesError
) -> tuple[list[str], list[list[str]], list[int]]:
    """A UTF-8 CSV's header, its data rows' cells and their row numbers (the header is row
    1, as a spreadsheet shows it; blank lines are skipped). A missing header, no data row,
    a row with the wrong number of cells or malformed CSV raise `error` naming the file and
    row."""
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    cells: list[list[str]] = []
    row_numbers: list[int] = []
    try:
        for raw in reader:
            if not raw or all(not c.strip() for c in raw):
                continue  # a blank line, typically the last one
            if header is None:
                header = [c.strip() for c in raw]
                _check_header(path, header)
                continue
            if len(raw) != len(header):
                raise error(
                    f"{path}: row {reader.line_num} has {len(raw)} cells (expected "
                    f"{len(header)}, one per header column)"
                )
            cells.append(raw)
            row_numbers.append(reader.line_num)
    except csv.Error as e:
        raise error(f"{path}: row {reader.line_num} is not valid CSV: {e}") from None
    if header is None:
        raise error(f"CSV file {path} holds no header row (it is empty or blank)")
    if not cells:
        raise error(f"CSV file {path} has a header but no data rows")
    return header, cells, row_numbers


def read_csv(
    path: str | Path, *, time_column: str | None = None, label_column: str | None = None
) -> Series:
    """Read a UTF-8 CSV with a header row; every other column must be numeric.

    Rows are numbered as a spreadsheet shows them: the header is row 1. `time_column`, if
    given, holds numbers or ISO 8601 date-times that must strictly increase; it is only
    checked, never a feature. `label_column`, if given, holds 0/1 and becomes `faults`.
    Blank lines are skipped. Every problem is a SeriesError naming the file, row and column.
    """
    path = Path(path).expanduser().resolve()
    header, cells, row_numbers = read_cells(path)

    for kind, name in (("time", time_column), ("label", label_column)):
        if name is not None and name not in header:
            raise SeriesError(
                f"{path}: {kind} column {name!r} is not in the header (columns: "
                f"{', '.join(header)})"
            )
    if time_column is not None and time_column == label_column:
        raise SeriesError(f"{path}: column {time_column!r} cannot be both time and label")
    numeric = [name for name in header if name not in (time_column, label_column)]
    if not numeric:
        raise SeriesError(f"{path}: no numeric columns besides the time/label columns")

    values = np.empty((len(cells), len(numeric)))
    index = {name: header.index(name) for name in header}
    hint = _hint(header, time_column, label_column)
    for j, name in enumerate(numeric):
        k = index[name]
        for i, raw in enumerate(cells):
            values[i, j] = _number(raw[k], path, row_numbers[i], name, hint)
    faults = None
    if label_column is not None:
        k = index[label_column]
        faults = np.empty(len(cells), dtype=bool)
        for i, raw in enumerate(cells):
            v = _number(raw[k], path, row_numbers[i], label_column, "")
            if v not in (0.0, 1.0):
                raise SeriesError(
                    f"{path}: row {row_numbers[i]}, column {label_column!r}: {raw[k]!r} is "
                    "not a label (expected 0 or 1)"
                )
            faults[i] = v == 1.0
    step = None
    if time_column is not None:
        times = _check_time(path, [raw[index[time_column]] for raw in cells], row_numbers,
                            time_column)  # fmt: skip
        step = float(np.median(np.diff(times))) if len(times) > 1 else None
    return Series(
        columns=tuple(numeric), values=values, faults=faults, source=str(path), season=None,
        step_seconds=step,
    )  # fmt: skip


def _read_text(path: Path) -> str:
    if not path.exists():
        raise SeriesError(f"CSV file {path} does not exist")
    if not path.is_file():
        raise SeriesError(f"CSV file {path} is not a regular file (a folder?)")
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise SeriesError(
            f"CSV file {path} is {size / 2**20:.0f} MiB, more than the {MAX_CSV_BYTES >> 20} "
            "MiB this reader accepts; resample it or cut it into a shorter file"
        )
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SeriesError(f"cannot read CSV file {path}: {e.strerror or e}") from None
    if not raw.strip():
        raise SeriesError(f"CSV file {path} is empty")
    if b"\x00" in raw:
        raise SeriesError(
            f"CSV file {path} contains NUL bytes: it looks binary (or UTF-16); expected UTF-8 text"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise SeriesError(
            f"CSV file {path} is not UTF-8 text (invalid byte {raw[e.start]:#04x} in row {line})"
        ) from None


def _check_header(path: Path, header: list[str]) -> None:
    seen: dict[str, int] = {}
    for k, name in enumerate(header, start=1):
        if not name:
            raise SeriesError(f"{path}: row 1 (header), column {k} has an empty name")
        if name in seen:
            raise SeriesError(
                f"{path}: row 1 (header) names column {name!r} twice (columns {seen[name]} and {k})"
            )
        seen[name] = k


def _hint(header: list[str], time_column: str | None, label_column: str | None) -> str:
    """A pointer to --time-column/--label-column for a text column the user did not name."""
    if time_column is None:
        return " (if it is a time stamp, name its column with --time-column)"
    if label_column is None:
        return " (if it is a label, name its column with --label-column)"
    return ""


def _number(cell: str, path: Path, row: int, column: str, hint: str) -> float:
    text = cell.strip()
    if not text:
        raise SeriesError(
            f"{path}: row {row}, column {column!r} is empty (missing value; fill or drop it)"
        )
    try:
        v = float(text)
    except ValueError:
        raise SeriesError(
            f"{path}: row {row}, column {column!r}: {cell!r} is not a number{hint}"
        ) from None
    if not math.isfinite(v):
        raise SeriesError(
            f"{path}: row {row}, column {column!r} is {cell!r} (expected a finite number; "
            "fill missing values)"
        )
    return v


def _check_time(path: Path, cells: list[str], rows: list[int], column: str) -> list[float]:
    """The times as numbers (ISO 8601 date-times: seconds since the epoch), checked."""
    prev: float | None = None
    times: list[float] = []
    for cell, row in zip(cells, rows, strict=True):
        text = cell.strip()
        if not text:
            raise SeriesError(f"{path}: row {row}, column {column!r} (time) is empty")
        try:
            value = float(text)
        except ValueError:
            try:
                stamp = datetime.fromisoformat(text)
            except ValueError:
                raise SeriesError(
                    f"{path}: row {row}, column {column!r}: {cell!r} is neither a number nor "
                    "an ISO 8601 date-time"
                ) from None
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)  # naive: read as UTC, no DST jumps
            value = stamp.timestamp()
        if not math.isfinite(value):
            raise SeriesError(f"{path}: row {row}, column {column!r} (time) is {cell!r}")
        if prev is not None and not value > prev:
            raise SeriesError(
                f"{path}: row {row}, column {column!r}: time {cell!r} is not after the "
                "previous row's (times must strictly increase)"
            )
        prev = value
        times.append(value)
    return times


def load_series(
    csv_path: str | Path | None = None,
    *,
    time_column: str | None = None,
    label_column: str | None = None,
    rows: int = BUILTIN_ROWS,
    seed: int = 0,
) -> Series:
    """A CSV file, or (csv_path None) the built-in signal of `rows` rows from `seed`."""
    if csv_path is None:
        return builtin_signal(rows, seed)
    return read_csv(csv_path, time_column=time_column, label_column=label_column)


# ---- columns, splits, statistics ------------------------------------------------------------


def parse_columns(text: str | None) -> tuple[str, ...] | None:
    """'a, b' -> ('a', 'b'); None stays None (use the default)."""
    if text is None:
        return None
    names = tuple(n.strip() for n in text.split(","))
    if not names or any(not n for n in names):
        raise SeriesError(f"column list {text!r} has an empty name (expected NAME,NAME,...)")
    if len(set(names)) != len(names):
        raise SeriesError(f"column list {text!r} names a column twice")
    return names


def column_indices(series: Series, names: Sequence[str], what: str = "column") -> list[int]:
    """Positions of `names` in the series; an unknown name is an error listing the columns."""
    missing = [n for n in names if n not in series.columns]
    if missing:
        raise SeriesError(
            f"{what} {', '.join(repr(n) for n in missing)} not in {series.source} "
            f"(columns: {', '.join(series.columns)})"
        )
    return [series.columns.index(n) for n in names]


def choose_columns(
    series: Series,
    targets: Sequence[str] | None,
    features: Sequence[str] | None,
    *,
    builtin: bool,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(features, targets): features default to every column; targets to BUILTIN_TARGETS
    for the built-in signal, and must be named for a CSV (unless it has a single column)."""
    if targets is None:
        if builtin:
            targets = BUILTIN_TARGETS
        elif len(series.columns) == 1:
            targets = series.columns
        else:
            raise SeriesError(
                f"name the column(s) to forecast with --target (columns of {series.source}: "
                f"{', '.join(series.columns)})"
            )
    features = series.columns if features is None else features
    column_indices(series, targets, "target column")
    column_indices(series, features, "feature column")
    return tuple(features), tuple(targets)


def split_rows(rows: int, val_fraction: float = 0.05, test_fraction: float = 0.05) -> Split:
    """Contiguous [start, end) row ranges: train first, then val, then test."""
    return split_corpus(rows, val_fraction, test_fraction)


def column_stats(
    series: Series, names: Sequence[str], split: Split
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and (population) standard deviation of each column over the training rows.

    A column constant on the training split cannot be normalized: refused, naming it."""
    start, stop = split.train
    block = series.values[start:stop][:, column_indices(series, names)]
    mean = block.mean(axis=0)
    std = block.std(axis=0)
    for name, s, m in zip(names, std, mean, strict=True):
        # Relative test: a column whose spread is below float precision is constant too.
        if not s > 1e-9 * max(1.0, abs(m)):
            raise SeriesError(
                f"column {name!r} of {series.source} is constant on the training split (rows "
                f"{start}..{stop - 1}, value {m:g}): it carries no information and cannot be "
                "normalized; leave it out with --features/--target"
            )
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def forecast_config(
    series: Series,
    split: Split,
    features: Sequence[str],
    targets: Sequence[str],
    *,
    horizon: int,
    hidden_size: int,
    num_layers: int,
    target_kind: str = "level",
    horizon_outputs: str = "last",
) -> ModelConfig:
    """The forecast model's config for these columns, with the normalization statistics
    of the training split (`column_stats`; change targets: `change_stats`)."""
    f_mean, f_std = column_stats(series, features, split)
    t_mean, t_std = column_stats(series, targets, split)
    c_mean, c_std = (
        change_stats(series, targets, split, horizon, each=horizon_outputs == "each")
        if target_kind == "change"
        else ((), ())
    )
    return ModelConfig(
        target_kind=target_kind,
        change_mean=c_mean,
        change_std=c_std,
        task=FORECAST.name,
        hidden_size=hidden_size,
        num_layers=num_layers,
        features=tuple(features),
        targets=tuple(targets),
        horizon=horizon,
        horizon_outputs=horizon_outputs,
        feature_mean=f_mean,
        feature_std=f_std,
        target_mean=t_mean,
        target_std=t_std,
    )


def change_stats(
    series: Series, names: Sequence[str], split: Split, horizon: int, *, each: bool = False
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std over the training rows of each target's change over `horizon` rows
    (target[t + horizon] - target[t]): what a model of change targets predicts. `each`:
    one per output of a model of each step ahead, changes over 1, ..., horizon rows."""
    start, stop = split.train
    block = series.values[start:stop][:, column_indices(series, names)]
    n = block.shape[0]
    ahead = range(1, horizon + 1) if each else [horizon]
    # the same rows t for every step ahead (t + horizon inside the split)
    change = np.concatenate([block[s : n - horizon + s] - block[: n - horizon] for s in ahead], 1)
    names = [name for _ in ahead for name in names]
    mean, std = change.mean(axis=0), change.std(axis=0)
    for name, sd in zip(names, std, strict=True):
        if not sd > 1e-9 * max(1.0, float(np.abs(block).max())):
            raise SeriesError(
                f"column {name!r} of {series.source} does not change over {horizon} rows on the "
                "training split: its changes cannot be normalized; use --target-kind level"
            )
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


# `--target-kind` unset: change targets when at least this share of some target's
# validation rows lies outside the range of its training rows. Measured: weekly CO2 47%
# (its trend carries val above every training level), the built-in signal 0% (motor_temp
# and vibration stay in range; a level model there also flags slow faults a change model
# follows: recall over the whole signal 90% vs 69%, `lstm-edge detect --csv`).
# Training both kinds and keeping the one with the lower validation loss picks the same
# on both series (validation MASE vs persistence, seed 0: CO2 change 0.84, level 1.13;
# the built-in signal level 0.61 / 0.76, change 0.63 / 0.80) at twice the training time.
OUT_OF_RANGE_SHARE = 0.05


def out_of_range_shares(series: Series, split: Split, targets: Sequence[str]) -> dict[str, float]:
    """Per target: the share of its validation rows outside the [min, max] of its
    training rows."""
    cols = column_indices(series, targets)
    train = series.values[slice(*split.train)][:, cols]
    val = series.values[slice(*split.val)][:, cols]
    outside = (val > train.max(axis=0)) | (val < train.min(axis=0))
    return {name: float(share) for name, share in zip(targets, outside.mean(axis=0), strict=True)}


def choose_target_kind(
    asked: str | None,
    series: Series,
    split: Split,
    features: Sequence[str],
    targets: Sequence[str],
) -> tuple[str, str]:
    """(kind, why): --target-kind if given; else "change" when the validation split
    leaves the training split's range (`OUT_OF_RANGE_SHARE`: a level model cannot follow
    it there) and every target is also a feature (its last value is an input), "level"
    otherwise. `why` is the sentence data.json records as `target_kind_source`."""
    if asked is not None:
        if asked == "change" and not set(targets) <= set(features):
            raise SeriesError(
                f"--target-kind change needs every target among the features (targets "
                f"{list(targets)}, features {list(features)})"
            )
        return asked, "--target-kind"
    if not set(targets) <= set(features):
        return "level", "a target is not an input (no last value to add a change to)"
    shares = out_of_range_shares(series, split, targets)
    name = max(shares, key=shares.__getitem__)
    kind = "change" if shares[name] >= OUT_OF_RANGE_SHARE else "level"
    return kind, (
        f"validation split: {shares[name]:.0%} of {name!r} rows outside its training range "
        f"(change from {OUT_OF_RANGE_SHARE:.0%})"
    )


# ---- seasons ---------------------------------------------------------------------------------

# A season is reported only if the autocorrelation of the detrended training targets at it
# is at least this: measured, the built-in signal's daily cycle gives 0.66, weekly Mauna
# Loa CO2's yearly one 0.93; white noise 0.06. A random walk's wandering can pass for a
# long season now and then (no test of a short series tells the two apart).
MIN_SEASON_ACF = 0.3


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation of x (1-D) at lags 0..max_lag (by FFT, biased estimator)."""
    x = np.asarray(x, np.float64) - np.mean(x)
    n = x.size
    spectrum = np.fft.rfft(x, 2 * n)
    acov = np.fft.irfft(spectrum * np.conj(spectrum))[: max_lag + 1]
    return acov / acov[0] if acov[0] > 0 else np.zeros(max_lag + 1)


# How far the autocorrelation must fall between half a season and the season for that
# lag to count as a season: a cycle of L rows anticorrelates the series with itself half
# a cycle away, so a real season's peak stands on a dip before it. The detector used to
# look only after the autocorrelation first went below zero; a slow swing that it leaves
# positive hides a daily cycle that way (half-hourly electricity demand: 0.008 at half a
# day, the day's peak at 48 rows 0.78, and "288 steps = 6 days" came out).
SEASON_ACF_DIP = 0.1


def detect_season(values: np.ndarray) -> int | None:
    """The dominant season (rows) of `values` [rows, columns], the training split's targets:
    each column minus its least-squares parabola (a trend that bends, like CO2's, would
    otherwise swamp the cycle), the mean autocorrelation over columns, and of its peaks
    (local maxima at least SEASON_ACF_DIP above the lowest value between half their lag
    and it) the first within 0.1 of the highest, so that a multiple of the season is not
    taken for it. None if no peak reaches MIN_SEASON_ACF or the rows hold fewer than three
    seasons of it."""
    values = np.asarray(values, np.float64).reshape(len(values), -1)
    rows = values.shape[0]
    max_lag = rows // 3
    if max_lag < 4:
        return None
    t = np.arange(rows) / rows
    acfs = []
    for col in values.T:
        detrended = col - np.polyval(np.polyfit(t, col, 2), t)
        acfs.append(autocorrelation(detrended, max_lag))
    acf = np.mean(acfs, axis=0)
    peaks = [
        lag
        for lag in range(2, max_lag + 1)
        if acf[lag] >= MIN_SEASON_ACF
        and acf[lag] == acf[max(1, lag - max(2, lag // 10)) : lag + max(2, lag // 10) + 1].max()
        and acf[lag] - acf[lag // 2 : lag].min() >= SEASON_ACF_DIP
    ]
    if not peaks:
        return None
    highest = max(float(acf[lag]) for lag in peaks)
    return next(lag for lag in peaks if acf[lag] >= highest - 0.1)


def season_name(season: int, step_seconds: float | None) -> str:
    """'52 steps = 1 year' from the time column's spacing; '52 steps' without one."""
    text = f"{season} steps"
    if step_seconds is None or not step_seconds > 0:
        return text
    seconds = season * step_seconds
    for unit, size in (("year", 365.25 * 86400), ("week", 7 * 86400), ("day", 86400),
                       ("hour", 3600), ("minute", 60)):  # fmt: skip
        if seconds >= 0.95 * size:
            value = float(f"{seconds / size:.2g}")
            return f"{text} = {value:g} {unit}{'' if value == 1 else 's'}"
    return f"{text} = {seconds:.2g} s"


def select(
    series: Series, config: ModelConfig, start: int = 0, stop: int | None = None
) -> SplitData:
    """Rows [start, stop) of the columns `config` names, as float32 (features, targets)."""
    f_idx = column_indices(series, config.features, "feature column")
    t_idx = column_indices(series, config.targets, "target column")
    block = series.values[start:stop]
    return SplitData(
        features=np.ascontiguousarray(block[:, f_idx], dtype=np.float32),
        targets=np.ascontiguousarray(block[:, t_idx], dtype=np.float32),
        faults=None if series.faults is None else series.faults[start:stop].copy(),
        season=series.season,
    )


def check_long_enough(series: Series, split: Split, seq_len: int, horizon: int) -> None:
    """Refuse, before training, a table whose splits cannot feed one step / one evaluation.

    A training step reads windows of `seq_len` rows plus the `horizon` rows after them for
    the targets: contiguous streams where the training split holds several per stream,
    random windows where it does not (`ForecastTraining.train_batches`), so one window must
    fit; validation needs more than `horizon` rows."""
    train = split.train[1] - split.train[0]
    needed = seq_len + horizon
    if train < needed:
        raise SeriesError(
            f"{series.source} is too short: its training split has {train} rows, one training "
            f"window needs {needed} ({seq_len} rows + horizon {horizon}); use a longer table "
            "or a smaller --seq-len"
        )
    for name in ("val", "test"):
        n = getattr(split, name)[1] - getattr(split, name)[0]
        if n <= horizon:
            raise SeriesError(
                f"{series.source} is too short: its {name} split has {n} rows, which must be "
                f"more than the horizon ({horizon}) to score any forecast"
            )


# ---- the linear highway ---------------------------------------------------------------------

AR_LAGS_AUTO = "auto"


def parse_ar_lags(value: Any) -> int | None:
    """--ar-lags: None or "auto" -> None (the linear baseline's count); otherwise an
    integer 0 (no highway) .. MAX_AR_LAGS, as an int or its decimal text."""
    if value is None or value == AR_LAGS_AUTO:
        return None
    lags = value
    if isinstance(value, str) and value.strip().isdigit():
        lags = int(value.strip())
    if isinstance(lags, bool) or not isinstance(lags, int) or not 0 <= lags <= MAX_AR_LAGS:
        raise SeriesError(
            f"--ar-lags is {value!r} (expected {AR_LAGS_AUTO!r}, 0 for no highway, or an "
            f"integer 1 to {MAX_AR_LAGS}: lagged changes of the linear highway)"
        )
    return lags


# ---- the record in the checkpoint -------------------------------------------------------------


def series_sha256(series: Series) -> str:
    """Of the values (float64, little-endian, row-major): a changed generator is caught too."""
    return hashlib.sha256(np.ascontiguousarray(series.values, dtype="<f8").tobytes()).hexdigest()


def data_record(
    series: Series,
    split: Split,
    *,
    csv_path: str | Path | None,
    time_column: str | None,
    label_column: str | None,
    builtin_rows: int,
    builtin_seed: int,
    season: int | None,
) -> dict[str, Any]:
    """What data.json holds for a forecast run: enough to rebuild the same held-out rows."""
    record: dict[str, Any] = {
        "format": SERIES_FORMAT,
        "task": FORECAST.name,
        "rows": series.rows,
        "columns": list(series.columns),
        "split": {name: list(getattr(split, name)) for name in SPLITS},
        "season": season if season is not None else series.season,
        "values_sha256": series_sha256(series),
    }
    if csv_path is None:
        record.update(source=BUILTIN_SOURCE, builtin={"rows": builtin_rows, "seed": builtin_seed})
    else:
        path = Path(csv_path).expanduser().resolve()
        record.update(
            source=str(path),
            sha256=sha256_file(path),
            time_column=time_column,
            label_column=label_column,
        )
    if series.faults is not None:
        record["fault_rows"] = {
            name: int(series.faults[slice(*getattr(split, name))].sum()) for name in SPLITS
        }
    return record


def series_from_record(data: dict[str, Any]) -> Series:
    """Regenerate the built-in signal or re-read the CSV a checkpoint was trained on,
    checking that it is unchanged; the season recorded at training time is kept."""
    if not isinstance(data, dict) or data.get("task") != FORECAST.name or "source" not in data:
        raise SeriesError(
            "data.json is missing or is not a forecast data record: cannot find the series"
        )
    try:
        if data["source"] == BUILTIN_SOURCE:
            spec = data["builtin"]
            series = builtin_signal(int(spec["rows"]), int(spec["seed"]))
        else:
            path = Path(data["source"])
            if path.is_file() and sha256_file(path) != data["sha256"]:
                raise SeriesError(
                    f"CSV file {path} changed since training: its SHA-256 is "
                    f"{sha256_file(path)}, the checkpoint recorded {data['sha256']}"
                )
            series = read_csv(
                path, time_column=data.get("time_column"), label_column=data.get("label_column")
            )
        expected = data["values_sha256"]
    except (KeyError, TypeError, ValueError) as e:
        raise SeriesError(f"data.json has an invalid forecast data record ({e!r})") from None
    if series_sha256(series) != expected:
        raise SeriesError(
            f"{series.source} differs from the series the checkpoint was trained on "
            "(values SHA-256 mismatch)"
        )
    season = data.get("season")
    if season is not None and (
        isinstance(season, bool) or not isinstance(season, int) or season < 1
    ):
        raise SeriesError(f"data.json has season {season!r} (expected an integer >= 1 or null)")
    return Series(
        series.columns, series.values, series.faults, series.source, season, series.step_seconds
    )


def held_out_series(data: dict[str, Any], config: ModelConfig, split: str = "test") -> SplitData:
    """Split "train" | "val" | "test" | "held-out" (val + test) of the checkpoint's series."""
    if split not in (*SPLITS, "held-out"):
        raise SeriesError(f"split {split!r} is unknown (expected one of {(*SPLITS, 'held-out')})")
    ranges = split_from_record(data)
    series = series_from_record(data)
    start, stop = (ranges.val[0], ranges.test[1]) if split == "held-out" else getattr(ranges, split)
    return select(series, config, start, stop)
