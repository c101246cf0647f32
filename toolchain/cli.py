"""The `lstm-edge` command line: one thin Typer command per stage over library functions.

Exit status: 0 success; 1 a check the user asked for did not pass; 2 bad usage or bad
input (a one-line message, no traceback); 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.toolchain import __version__

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="lstm-edge",
    help="Train an LSTM, export it to streaming ONNX, quantize it, and run it step by step "
    "on CPU and embedded targets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Turn the project's typed errors and OS errors into a message and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LstmEdgeError as e:
            err_console.print(f"[bold red]error:[/] {e}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except OSError as e:
            where = f" {e.filename}" if e.filename else ""
            err_console.print(f"[bold red]error:[/]{where}: {e.strerror or e}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        console.print(f"lstm-edge {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Train -> export -> quantize -> validate -> deploy an LSTM, one command per stage."""


# ---- commands ------------------------------------------------------------------------------
# Each command parses its arguments and calls one library function; the work lives in
# the module named in its docstring.
