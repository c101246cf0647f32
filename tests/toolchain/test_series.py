"""Sensor tables: the built-in machine signal, CSV parsing and its errors, splits, records."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.toolchain import series as sm
from lstm_edge.toolchain.series import (
    BUILTIN_COLUMNS,
    BUILTIN_TARGETS,
    ROWS_PER_DAY,
    SeriesError,
    builtin_signal,
    held_out_series,
    read_csv,
    select,
)


@pytest.fixture(scope="module")
def signal() -> sm.Series:
    return builtin_signal()


def _config(features, targets, horizon=1) -> ModelConfig:
    n, m = len(features), len(targets)
    return ModelConfig(
        task="forecast",
        hidden_size=4,
        num_layers=1,
        features=tuple(features),
        targets=tuple(targets),
        horizon=horizon,
        feature_mean=(0.0,) * n,
        feature_std=(1.0,) * n,
        target_mean=(0.0,) * m,
        target_std=(1.0,) * m,
    )


# ---- the built-in signal ---------------------------------------------------------------------


def test_builtin_is_deterministic_in_rows_and_seed():
    a, b = builtin_signal(1000, seed=3), builtin_signal(1000, seed=3)
    assert np.array_equal(a.values, b.values) and np.array_equal(a.faults, b.faults)
    assert not np.array_equal(a.values, builtin_signal(1000, seed=4).values)
    assert a.columns == BUILTIN_COLUMNS and a.season == ROWS_PER_DAY
    assert set(BUILTIN_TARGETS) <= set(BUILTIN_COLUMNS)


def test_builtin_has_faults_in_every_split(signal):
    split = sm.split_rows(signal.rows)
    for name in ("train", "val", "test"):
        f = signal.faults[slice(*getattr(split, name))]
        events = int(np.sum(np.diff(f.astype(int)) == 1)) + int(f[0])
        # Docstring: one fault per FAULT_SPACING rows in each block's middle, so every 5%
        # split of the default size holds at least two whole ones.
        assert events >= 2, name
    # Faults are rare: a forecaster mostly sees normal operation.
    assert 0.01 < signal.faults.mean() < 0.1


def test_builtin_follows_a_daily_cycle(signal):
    hour_of_row = np.arange(signal.rows) % ROWS_PER_DAY
    ambient = signal.values[:, BUILTIN_COLUMNS.index("ambient_temp")]
    load = signal.values[:, BUILTIN_COLUMNS.index("load")]
    by_hour = np.array([ambient[hour_of_row == k].mean() for k in range(ROWS_PER_DAY)])
    # Warmest at 15:00 (row 60 of the day) by the docstring's cosine, give or take an hour.
    assert abs(int(np.argmax(by_hour)) - 60) <= 4
    night = (hour_of_row < 24) | (hour_of_row >= 88)  # 22:00-06:00: the idle shift
    assert load[night].max() < 0.45 and load[~night].mean() > 0.6
    # One day apart is far more alike than half a day apart.
    x = ambient - ambient.mean()
    assert np.dot(x[96:], x[:-96]) > 0 > np.dot(x[48:], x[:-48])


def test_builtin_noise_makes_persistence_beatable(signal):
    # Differences of consecutive rows are mostly measurement noise: a smooth (noise-free)
    # predictor beats persistence. Vibration noise sd 0.25: persistence MAE >= ~0.28.
    vib = signal.values[:, BUILTIN_COLUMNS.index("vibration")]
    assert np.abs(np.diff(vib)).mean() > 0.28


def test_builtin_faults_show_in_their_columns(signal):
    motor = signal.values[:, BUILTIN_COLUMNS.index("motor_temp")]
    vib = signal.values[:, BUILTIN_COLUMNS.index("vibration")]
    f = signal.faults
    # Cooling failures heat the motor, bearing defects shake it: both higher inside faults.
    assert motor[f].mean() > motor[~f].mean() + 3.0
    assert vib[f].mean() > vib[~f].mean() + 0.3


def test_builtin_refuses_too_few_rows():
    with pytest.raises(SeriesError, match="rows"):
        builtin_signal(10)


# ---- CSV ----------------------------------------------------------------------------------


def test_csv_round_trip_gives_the_same_values(tmp_path):
    s = builtin_signal(400, seed=1)
    path = tmp_path / "m.csv"
    sm.write_csv(s, path)
    r = read_csv(path, time_column="time", label_column="fault")
    assert r.columns == s.columns
    assert np.array_equal(r.values, s.values)  # repr() writes floats exactly
    assert np.array_equal(r.faults, s.faults)
    assert r.source == str(path.resolve()) and r.season is None


def test_csv_without_time_and_label(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("a, b\n1,2\n3,4.5\n\n", encoding="utf-8")  # spaces, a blank last line
    r = read_csv(path)
    assert r.columns == ("a", "b") and r.faults is None
    assert np.array_equal(r.values, [[1.0, 2.0], [3.0, 4.5]])


def _write(tmp_path, text: str | bytes):
    path = tmp_path / "bad.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "kwargs", "pattern"),
    [
        ("a,b\n1,2\n3,\n", {}, r"row 3, column 'b' is empty \(missing value"),
        ("a,b\n1,2\n3,x\n", {}, r"row 3, column 'b': 'x' is not a number"),
        ("t,a\n2024-01-01,1\n", {}, r"row 2, column 't'.*--time-column"),
        ("a,b\n1,2\n3,nan\n", {}, r"row 3, column 'b' is 'nan' \(expected a finite number"),
        ("a,b\n1,2\n3\n", {}, r"row 3 has 1 cells \(expected 2"),
        ("a,b\n1,2,3\n", {}, r"row 2 has 3 cells"),
        ("a,a\n1,2\n", {}, r"names column 'a' twice \(columns 1 and 2\)"),
        ("a,,c\n1,2,3\n", {}, r"column 2 has an empty name"),
        ("a,b\n", {}, r"header but no data rows"),
        ("\n\n", {}, r"is empty"),
        ("t,a\n1,5\n1,6\n", {"time_column": "t"}, r"row 3, column 't': time '1' is not after"),
        ("t,a\nnoon,5\n", {"time_column": "t"}, r"row 2, column 't'.*ISO 8601"),
        ("a,l\n1,0\n2,2\n", {"label_column": "l"}, r"row 3, column 'l'.*expected 0 or 1"),
        ("a,b\n1,2\n", {"time_column": "when"}, r"time column 'when' is not in the header"),
        ("t\n1\n2\n", {"time_column": "t"}, r"no numeric columns"),
    ],
)
def test_csv_errors_name_row_and_column(tmp_path, text, kwargs, pattern):
    path = _write(tmp_path, text)
    with pytest.raises(SeriesError, match=pattern) as e:
        read_csv(path, **kwargs)
    assert str(path) in str(e.value)
    assert isinstance(e.value, LstmEdgeError)


def test_csv_iso_times_must_increase(tmp_path):
    ok = _write(tmp_path, "t,a\n2024-01-01T00:00,1\n2024-01-01T00:15:00+00:00,2\n")
    assert read_csv(ok, time_column="t").values.shape == (2, 1)
    bad = _write(tmp_path, "t,a\n2024-01-01T00:15,1\n2024-01-01T00:00,2\n")
    with pytest.raises(SeriesError, match="row 3"):
        read_csv(bad, time_column="t")


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"a,b\x00\n1,2\n", "NUL bytes"),
        (b"a,b\n1,2\n\xff\xfe,3\n", r"not UTF-8 text \(invalid byte 0xff in row 3\)"),
        (b"", "is empty"),
    ],
)
def test_csv_binary_encoding_empty(tmp_path, content, pattern):
    with pytest.raises(SeriesError, match=pattern):
        read_csv(_write(tmp_path, content))


def test_csv_missing_folder_and_huge(tmp_path, monkeypatch):
    with pytest.raises(SeriesError, match="does not exist"):
        read_csv(tmp_path / "nope.csv")
    with pytest.raises(SeriesError, match="not a regular file"):
        read_csv(tmp_path)
    path = _write(tmp_path, "a\n" + "1\n" * 100)
    monkeypatch.setattr(sm, "MAX_CSV_BYTES", 64)
    with pytest.raises(SeriesError, match="more than the 0 MiB"):
        read_csv(path)


# ---- columns, splits, statistics ----------------------------------------------------------


def test_select_picks_columns_by_name(signal):
    cfg = _config(("vibration", "load"), ("motor_temp",))
    part = select(signal, cfg, 100, 130)
    v = signal.values
    assert part.features.dtype == np.float32 and part.features.shape == (30, 2)
    cols = BUILTIN_COLUMNS
    assert np.array_equal(
        part.features,
        v[100:130][:, [cols.index("vibration"), cols.index("load")]].astype(np.float32),
    )
    assert np.array_equal(
        part.targets[:, 0], v[100:130, cols.index("motor_temp")].astype(np.float32)
    )
    assert np.array_equal(part.faults, signal.faults[100:130]) and part.season == ROWS_PER_DAY


def test_unknown_columns_are_named_with_the_columns_present(signal):
    with pytest.raises(SeriesError, match=r"'pressure' not in .*columns: load, ambient_temp"):
        select(signal, _config(("load", "pressure"), ("motor_temp",)), 0, 10)
    with pytest.raises(SeriesError, match=r"target column 'rpm'"):
        sm.choose_columns(signal, ("rpm",), None, builtin=True)


def test_choose_columns_defaults(signal, tmp_path):
    assert sm.choose_columns(signal, None, None, builtin=True) == (BUILTIN_COLUMNS, BUILTIN_TARGETS)
    two = read_csv(_write(tmp_path, "a,b\n1,2\n"))
    with pytest.raises(SeriesError, match=r"--target \(columns of .*: a, b\)"):
        sm.choose_columns(two, None, None, builtin=False)
    one = read_csv(_write(tmp_path, "a\n1\n2\n"))
    assert sm.choose_columns(one, None, None, builtin=False) == (("a",), ("a",))


def test_parse_columns():
    assert sm.parse_columns(" a, b ") == ("a", "b")
    assert sm.parse_columns(None) is None
    for bad in ("a,,b", "a,a"):
        with pytest.raises(SeriesError):
            sm.parse_columns(bad)


def test_column_stats_are_numpy_stats_of_the_training_rows(signal):
    split = sm.split_rows(signal.rows)
    mean, std = sm.column_stats(signal, ("vibration", "load"), split)
    block = signal.values[: split.train[1]][:, [4, 0]]
    # float64 means/stds of the same rows in the same order: exactly numpy's.
    assert mean == tuple(block.mean(axis=0)) and std == tuple(block.std(axis=0))


def test_constant_training_column_is_refused(tmp_path):
    rows = "".join(f"{i},5\n" for i in range(18)) + "18,6\n19,7\n"
    s = read_csv(_write(tmp_path, "a,flat\n" + rows))
    with pytest.raises(SeriesError, match=r"column 'flat' .* constant on the training split"):
        sm.column_stats(s, ("a", "flat"), sm.split_rows(s.rows, 0.1, 0.1))


def test_too_short_is_refused_before_training(signal):
    split = sm.split_rows(signal.rows)
    # 18,000 training rows: one window of 17,999 + 1 fits, one of 18,000 + 1 does not.
    sm.check_long_enough(signal, split, seq_len=17_999, horizon=1)
    with pytest.raises(SeriesError, match=r"has 18000 rows, one training window needs 18001"):
        sm.check_long_enough(signal, split, seq_len=18_000, horizon=1)
    with pytest.raises(SeriesError, match=r"val split has 1000 rows.*horizon \(1000\)"):
        sm.check_long_enough(signal, split, seq_len=10, horizon=1000)


# ---- data.json record -------------------------------------------------------------------------


def _record(series, csv_path=None, **kw):
    return sm.data_record(
        series,
        sm.split_rows(series.rows),
        csv_path=csv_path,
        time_column=kw.get("time_column"),
        label_column=kw.get("label_column"),
        builtin_rows=series.rows,
        builtin_seed=kw.get("seed", 0),
        season=kw.get("season"),
    )


def test_held_out_series_regenerates_the_builtin_signal():
    s = builtin_signal(1000, seed=2)
    data = _record(s, seed=2)
    cfg = _config(BUILTIN_COLUMNS, BUILTIN_TARGETS)
    test = held_out_series(data, cfg, "test")
    assert np.array_equal(test.features, s.values[950:].astype(np.float32))
    assert np.array_equal(test.faults, s.faults[950:]) and test.season == ROWS_PER_DAY
    both = held_out_series(data, cfg, "held-out")
    assert np.array_equal(both.targets, s.values[900:, [3, 4]].astype(np.float32))
    with pytest.raises(SeriesError, match="split 'dev' is unknown"):
        held_out_series(data, cfg, "dev")


def test_held_out_series_rereads_the_csv_and_checks_it(tmp_path):
    path = tmp_path / "m.csv"
    sm.write_csv(builtin_signal(400), path)
    s = read_csv(path, time_column="time", label_column="fault")
    data = _record(s, path, time_column="time", label_column="fault", season=96)
    cfg = _config(("load", "motor_temp"), ("motor_temp",))
    val = held_out_series(data, cfg, "val")
    assert np.array_equal(val.targets[:, 0], s.values[360:380, 3].astype(np.float32))
    assert val.season == 96  # the season given at training time
    path.write_text(path.read_text().replace("0.", "1.", 1))
    with pytest.raises(SeriesError, match="changed since training"):
        held_out_series(data, cfg, "val")
