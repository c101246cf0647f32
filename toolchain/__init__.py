"""The training side of lstm-edge: CLI, data, model, training, checkpoints, validation."""

# Exit statuses of the `lstm-edge` commands, here so that library modules that report a
# stage's outcome (pipeline) and the CLI share one definition without importing typer.
EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # a check the user asked for did not pass
EXIT_BAD_INPUT = 2  # bad usage or bad input (Typer's own usage errors are 2 too)
EXIT_INTERRUPTED = 130  # Ctrl-C, after leaving files consistent


def __getattr__(name: str) -> str:
    # The version on demand (one version for all parts): importing this package stays free
    # of the runtime and numpy, so `python -m lstm_edge.toolchain.bench_child` measures the
    # imports it times and nothing before them.
    if name == "__version__":
        from lstm_edge.runtime.format import __version__

        return __version__
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
