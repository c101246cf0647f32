"""`python -m lstm_edge.toolchain` runs the same Typer app as the `lstm-edge` script."""

from lstm_edge.toolchain.cli import app

app(prog_name="lstm-edge")
