"""The training side of lstm-edge: CLI, data, model, training, checkpoints, validation."""

from lstm_edge.runtime.errors import CheckFailedError, Interrupted, LstmEdgeError
from lstm_edge.runtime.format import __version__  # noqa: F401  (one version for all parts)

# Exit statuses of the `lstm-edge` commands. The error classes carry them (`exit_status`);
# these names are for code that exits without an error (a report that did not pass).
EXIT_OK = 0
EXIT_CHECK_FAILED = CheckFailedError.exit_status  # a check the user asked for did not pass
EXIT_BAD_INPUT = LstmEdgeError.exit_status  # bad usage or input (Typer's usage errors too)
EXIT_INTERRUPTED = Interrupted.exit_status  # Ctrl-C, after leaving files consistent
