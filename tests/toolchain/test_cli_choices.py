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
