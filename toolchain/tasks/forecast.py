"""The forecast task's training half: rows of a sensor table in, the target columns `horizon`
rows later out, MSE or MAE in training-split standard units, validation as normalized RMSE
(MSE loss) or MAE, read as one stream with the state carried, as it runs when deployed.
Its data lives in lstm_edge.toolchain.series."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from lstm_edge.runtime.config import ModelConfig
from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.runtime.tasks.forecast import FORECAST, last_value_index, output_ahead
from lstm_edge.toolchain import data as data_mod
from lstm_edge.toolchain import forecast_eval as fe
from lstm_edge.toolchain import series as series_mod
from lstm_edge.toolchain.tasks.training_base import HeldOut, Pairs, Source, TaskTraining, take

if TYPE_CHECKING:
    from lstm_edge.toolchain.model import EdgeLSTM, TorchStages
    from lstm_edge.toolchain.objective import Objective
    from lstm_edge.toolchain.run_config import RunConfig, TrainSettings


# Training shifts of a change model's target levels (`ForecastTraining.augment`), in
# training-split stds: 2 covers a trend that carries the held-out rows two stds past the
# training range (weekly CO2's test split sits 2.3 stds above the training mean).
LEVEL_SHIFT_STDS = 2.0


class ForecastTraining(TaskTraining):
    name = FORECAST.name
    only = ("horizon", "loss")
    defaults: ClassVar[dict[str, Any]] = {
        # The built-in signal has 5 columns and 18K training rows: a 1x64 LSTM (~18K
        # weights) learns its daily and load structure in ~25 s on one thread;
        # a day (96 rows) per truncated-BPTT chunk covers the thermal lag many times over.
        "hidden": 64,
        "layers": 1,
        "seq_len": 96,
        "batch_size": 16,
        "steps": 1500,
        "lr": 5e-3,
        "warmup_steps": 50,
        # Validation error rose again after ~half the steps without it (136 passes over
        # the data); 0.1 before the head kept it lower on val and test.
        "dropout": 0.1,
        "eval_every": 100,
        # One stream over the whole validation split: the state runs on as it would in
        # deployment, and no metric is spent warming up many zero states.
        "eval_streams": 1,
    }
    items = "rows"

    @property
    def torch_stages(self) -> TorchStages:
        from lstm_edge.toolchain.tasks.torch_stages import NormalizationStages

        return NormalizationStages()

    held_out_name = "held-out test split of the training series"
    held_out_unavailable = "held-out series unavailable"
    fallback_name = "seeded synthetic stream at the training statistics"
    data_errors = (ImportError, AttributeError, LstmEdgeError, OSError, ValueError)

    def threads(self, processes: int) -> int:
        # A forecast model is tiny (16-row x 64 matmuls): extra threads only add waits, and
        # on a busy 2-core machine 2 threads ran the default training 6x slower than 1.
        return 1

    def objective(self, run: RunConfig) -> Objective:
        from lstm_edge.toolchain.objective import Objective

        if run.loss == "mse":
            return Objective("mse", "nrmse", "normalized RMSE", "rows_per_s")
        return Objective("mae", "nmae", "normalized MAE", "rows_per_s")

    def source(
        self, options: TrainSettings, probe: RunConfig, resume: dict[str, Any] | None
    ) -> Source:
        from lstm_edge.toolchain.run_config import TrainingError

        if options.corpus is not None:
            raise TrainingError("--corpus applies to --task char-lm only (forecast reads --csv)")
        if options.text_column is not None:
            raise TrainingError("--text-column applies to --task classify only")
        if resume is not None:
            series, split, config, data = _resumed(options, resume)
        else:
            series, split, config, data = _new(options, probe)
        series_mod.check_long_enough(series, split, probe.seq_len, config.horizon)
        h = config.horizon

        def pairs(name: str) -> tuple[Pairs, np.ndarray]:
            start, stop = getattr(split, name)
            rows = series_mod.select(series, config, start, stop)
            now = rows.targets[:-h]
            ahead = output_ahead(config)  # [h], or [1, ..., h]: one target block each
            later = [rows.targets[s : rows.targets.shape[0] - h + s] for s in ahead]
            # the rows a highway's history holds at the split's start (none for train)
            before = series_mod.select(series, config, max(0, start - config.ar_lags), start)
            return Pairs(
                rows.features[:-h],
                np.concatenate(later, axis=1),
                before.features if config.ar_lags and start > 0 else None,
            ), np.tile(now, len(ahead))

        val, val_now = pairs("val")
        return Source(config, data, pairs("train")[0], val, val_now)

    def train_batches(self, pairs: Pairs, run: RunConfig, d: Any) -> Any:
        """Random windows (`streams.RandomWindows`) when the training split holds at most
        one chunk per stream: there every step starts from zeros anyway, and contiguous
        streams would read the same windows at every step, or could not be cut at all
        (batch_size x seq_len beyond the split). Weekly CO2 (2,055 training pairs, 16
        streams of 96 rows): 16 fixed windows, a quarter of the rows never read; MASE vs
        persistence on its test split read after the val split (state carried, 3 seeds)
        0.777 with them, 0.751 with random windows. Otherwise contiguous streams with the
        state carried (the built-in signal: 11 chunks per stream)."""
        from lstm_edge.toolchain import streams

        if streams.chunks_per_pass(pairs, run) <= 1:
            return streams.random_windows(pairs, run, d)
        return None

    def augment(self, config: ModelConfig, inputs: Any) -> Any:
        """Change targets: every stream's target columns shifted by one random level per
        chunk, uniform in +-LEVEL_SHIFT_STDS training stds. The change to predict is the
        same at any level, and a model that saw only the training split's levels fails
        where a trend leaves them (measured on weekly CO2: test MASE 1.07 without, 0.84
        with); the shifts teach it that the level carries no information of its own.

        With the linear highway the targets stay right: they are the changes minus the
        highway's forecast computed once on the unshifted split (`normalized`), and on
        change targets that forecast reads only differences of the target's values (its
        window weights sum to zero), so a level shift leaves it as it was. Level targets
        get no shifts at all."""
        if config.target_kind != "change":
            return inputs
        import torch

        index = last_value_index(config)[: len(config.targets)]  # one per target
        index = torch.from_numpy(index.astype(np.int64))
        std = torch.tensor(config.feature_std, dtype=inputs.dtype)[index]
        shift = (torch.rand(inputs.shape[0], 1, index.numel()) * 2 - 1) * LEVEL_SHIFT_STDS * std
        out = inputs.clone()
        out[..., index] += shift.to(inputs.dtype)
        return out

    def initialize(self, model: EdgeLSTM) -> None:
        """A model with the linear highway starts as the linear baseline: its head (weight
        and bias) at zero adds nothing to the highway's forecast, and training moves it
        only where the LSTM improves on that (the best-validation checkpoint, step 0
        included, is never worse than the baseline on the validation split)."""
        if model.config.ar_lags:
            import torch

            with torch.no_grad():
                model.head.weight.zero_()
                model.head.bias.zero_()

    def normalized(self, model: EdgeLSTM, pairs: Pairs) -> Pairs:
        """Targets in the standard units of the loss (`normalize_targets`). With the linear
        highway, what it leaves: the targets minus its contribution, computed with the
        torch highway over the whole split as one stream, exactly what the deployed model
        adds when it reads the split: from a reset history for the training split, after
        the `before` rows for the validation split (the training split's last ar_lags
        rows, as a model in service has read them; from a reset, weekly CO2's validation
        loss was mostly the 53 of its 113 rows where the history fills). The head
        (`forward_normalized`, what training runs) learns the rest."""
        import torch

        with torch.no_grad():
            inputs = torch.from_numpy(pairs.inputs)
            y = model.normalize_targets(torch.from_numpy(pairs.targets), inputs)
            if model.config.ar_lags:
                history = None
                if pairs.before is not None and len(pairs.before):
                    before = torch.from_numpy(pairs.before)[None]
                    _, history = model.stages.highway(model, before, None)
                highway, _ = model.stages.highway(model, inputs[None], history)
                y = y - highway[0]
        return Pairs(pairs.inputs, y.numpy())

    def run_info(
        self, data: dict[str, Any], objective: Objective, baseline: float | None
    ) -> dict[str, Any]:
        return {
            "series": {k: data[k] for k in ("source", "rows", "values_sha256")},
            # the linear highway: its lagged changes (0: none) and why (runs that predate
            # it record neither)
            "highway": {k: data.get(k) for k in ("ar_lags", "ar_lags_source")},
            "val_persistence": {objective.metric: baseline},
        }

    def held_out_stream(
        self,
        data: dict[str, Any],
        config: ModelConfig,
        split: str = "test",
        steps: int | None = None,
        *,
        cycle: bool = False,
    ) -> HeldOut:
        """Raw feature rows (float32) and the raw target columns of the same rows."""
        rows = series_mod.held_out_series(data, config, split)
        n = rows.features.shape[0]
        index, cycled = take(n, steps, cycle)
        return HeldOut(
            np.ascontiguousarray(rows.features[index], dtype=np.float32),
            np.ascontiguousarray(rows.targets[index], dtype=np.float32),
            n,
            cycled,
        )


def _new(options: TrainSettings, probe: RunConfig) -> tuple[Any, Any, ModelConfig, dict]:
    o = options
    series = series_mod.load_series(o.csv, time_column=o.time_column, label_column=o.label_column)
    split = series_mod.split_rows(series.rows, probe.val_fraction, probe.test_fraction)
    features, targets = series_mod.choose_columns(
        series, o.target, o.features, builtin=o.csv is None
    )
    kind, kind_source = series_mod.choose_target_kind(
        o.target_kind, series, split, features, targets
    )
    config = series_mod.forecast_config(
        series,
        split,
        features,
        targets,
        horizon=probe.horizon,
        horizon_outputs="each" if probe.horizon > 1 else "last",
        hidden_size=probe.hidden,
        num_layers=probe.layers,
        target_kind=kind,
    )
    season, season_source = o.season, "--season"
    if season is None and series.season is not None:
        season, season_source = series.season, "the built-in signal's day"
    if season is None:
        train = series_mod.select(series, config, *split.train).targets
        season, season_source = series_mod.detect_season(train), "detected (training split)"
    data = series_mod.data_record(
        series,
        split,
        csv_path=o.csv,
        time_column=o.time_column,
        label_column=o.label_column,
        builtin_rows=series.rows,
        builtin_seed=0,
        season=season,
    )
    data["season_source"] = season_source if season is not None else "none found"
    data["target_kind_source"] = kind_source
    train = series_mod.select(series, config, *split.train).targets
    lags, data["ar_lags_source"] = choose_ar_lags(
        o.ar_lags, season, features, targets, train.shape[0], config.horizon
    )
    data["ar_lags"] = lags
    if lags:  # the linear highway: the baseline's fit, carried in the model
        config = replace(config, ar_lags=lags, ar_coef=highway_coef(config, train, lags))
    if season is not None:
        data["season_name"] = series_mod.season_name(season, series.step_seconds)
    return series, split, config, data


def _resumed(options: TrainSettings, resume: dict[str, Any]) -> tuple[Any, Any, ModelConfig, dict]:
    from lstm_edge.toolchain.run_config import TrainingError

    data = resume["data"]
    config = ModelConfig.from_dict(resume["config"])
    series = series_mod.series_from_record(data)
    source = data.get("source")
    recorded = {
        "--csv": source if source != series_mod.BUILTIN_SOURCE else None,
        "--target": config.targets,
        "--features": config.features,
    }
    asked = {
        "--csv": None if options.csv is None else str(Path(options.csv).expanduser().resolve()),
        "--target": options.target,
        "--features": options.features,
    }
    for name, value in asked.items():
        if value is not None and value != recorded[name]:
            raise TrainingError(
                f"{name} differs from the run being resumed ({recorded[name]}); a resumed "
                "run keeps its data"
            )
    lags = series_mod.parse_ar_lags(options.ar_lags)
    if lags is not None and lags != config.ar_lags:
        raise TrainingError(
            f"--ar-lags {lags} differs from the run being resumed (ar_lags "
            f"{config.ar_lags}); a resumed run keeps its model"
        )
    return series, data_mod.split_from_record(data), config, data


TRAINING = ForecastTraining()


def choose_ar_lags(
    asked: Any,
    season: int | None,
    features: Sequence[str],
    targets: Sequence[str],
    train_rows: int,
    horizon: int,
) -> tuple[int, str]:
    """(lags, why): the linear highway's lagged changes. --ar-lags N as given (N > 0 needs
    every target among the features: the highway reads their past values there); auto
    the linear baseline's count (`forecast_eval.ar_lags`: season + 1, or 8), or 0 where the
    highway cannot be fitted (a target that is not a feature, too short a training split).
    Training then also fits the model without it and keeps the better on validation
    (`train._keep_better_on_validation`). `why` is the sentence data.json records as
    `ar_lags_source`."""
    lags = series_mod.parse_ar_lags(asked)
    missing = [t for t in targets if t not in features]
    if lags is not None:
        if lags and missing:
            raise series_mod.SeriesError(
                f"--ar-lags {lags} needs every target among the features (the highway reads "
                f"their past values there); {missing} are not features: add them to "
                "--features or pass --ar-lags 0"
            )
        if lags and train_rows <= lags + horizon + 1:
            raise series_mod.SeriesError(
                f"--ar-lags {lags}: the training split has {train_rows} rows, too few to fit "
                f"{lags} lagged changes {horizon} step(s) ahead"
            )
        return lags, "--ar-lags"
    if missing:
        return 0, f"auto: no highway ({missing} are not features, so it has no past values)"
    lags = fe.ar_lags(season)
    if train_rows <= lags + horizon + 1:
        return 0, f"auto: no highway (the training split's {train_rows} rows are too few)"
    basis = f"season {season} + 1" if season is not None else "no season"
    return lags, f"auto: the linear baseline's lagged changes ({basis})"


def highway_coef(config: ModelConfig, train_targets: np.ndarray, lags: int) -> tuple[float, ...]:
    """The config's ar_coef: per output (step-major blocks of targets, `output_ahead`) the
    linear baseline fitted on the training split's targets that many steps ahead
    (`forecast_eval.fit_linear_ar`), intercept first: the model then adds exactly the
    forecast of the baseline it is compared with."""
    coef = [fe.fit_linear_ar(train_targets, ahead, lags).coef for ahead in output_ahead(config)]
    return tuple(float(v) for v in np.concatenate(coef).ravel())
