"""CLI choices that mirror a registry must not drift from it."""

from typer.testing import CliRunner

from lstm_edge.runtime.backends import BACKENDS
from lstm_edge.toolchain.cli import RuntimeBackend, app


def test_backend_choices_are_the_registered_backends():
    assert [b.value for b in RuntimeBackend] == list(BACKENDS)


def test_unknown_backend_is_a_usage_error(tmp_path):
    r = CliRunner().invoke(app, ["bench", str(tmp_path / "m.onnx"), "-b", "tflite"])
    assert r.exit_code == 2
    assert "tflite" in r.output and "Traceback" not in r.output


def test_every_training_option_is_declared_once_and_shown_by_train_and_pipeline():
    import dataclasses

    from lstm_edge.toolchain.pipeline import PipelineOptions
    from lstm_edge.toolchain.run_config import RunConfig, TrainOptions, TrainSettings, flag_of

    settings = {f.name for f in dataclasses.fields(TrainSettings)}
    # Every run setting can be given (None: the default), by train and by pipeline alike.
    assert {f.name for f in dataclasses.fields(RunConfig)} <= settings
    assert settings <= {f.name for f in dataclasses.fields(TrainOptions)}
    assert settings <= {f.name for f in dataclasses.fields(PipelineOptions)}
    runner = CliRunner()
    train_help = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "400"}).output
    pipeline_help = runner.invoke(app, ["pipeline", "--help"], env={"COLUMNS": "400"}).output
    for f in dataclasses.fields(TrainSettings):
        flag = flag_of(f)
        if flag is None:
            continue
        name = "--" + f.name.replace("_", "-")
        assert name in train_help and flag.help in train_help
        if flag.pipeline is not None:
            assert name in pipeline_help and flag.pipeline in pipeline_help
