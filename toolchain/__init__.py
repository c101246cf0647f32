"""The training side of lstm-edge: CLI, data, model, training, checkpoints, validation.

Importing this package loads nothing else (not even the runtime or numpy), so
`python -m lstm_edge.toolchain.bench_child` times exactly the imports it measures; the
names below are read on demand.
"""

# Exit statuses of the `lstm-edge` commands. The error classes carry them (`exit_status`);
# these names are for code that exits without an error (a report that did not pass).
_EXIT_STATUS_OF = {
    "EXIT_CHECK_FAILED": "CheckFailedError",  # a check the user asked for did not pass
    "EXIT_BAD_INPUT": "LstmEdgeError",  # bad usage or input (Typer's usage errors too)
    "EXIT_INTERRUPTED": "Interrupted",  # Ctrl-C, after leaving files consistent
}
EXIT_OK = 0


def __getattr__(name: str) -> object:
    if name == "__version__":  # one version for all parts
        from lstm_edge.runtime.format import __version__

        return __version__
    if name in _EXIT_STATUS_OF:
        from lstm_edge.runtime import errors

        return getattr(errors, _EXIT_STATUS_OF[name]).exit_status
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
