"""Typed errors shared by every layer, grouped by kind.

Each message names the file or value at fault and what was expected. Each class carries
the exit status the CLI gives it (`exit_status`: 2 for bad input, 1 for a check the user
asked for that did not pass, 130 for an interruption that left consistent files); the CLI
prints a one-line message, never a traceback, and maps nothing per command.
"""

from __future__ import annotations


class LstmEdgeError(Exception):
    """Base of every error this project raises for bad input or a broken artifact."""

    exit_status = 2  # bad usage or bad input


class CheckFailedError(LstmEdgeError):
    """A check the user asked for did not pass (a self-check, a tolerance)."""

    exit_status = 1


class InvalidConfigError(LstmEdgeError):
    """A model config that is malformed or out of range."""


class FormatVersionError(InvalidConfigError):
    """An artifact written with a format version this reader does not know."""


class InvalidArtifactError(LstmEdgeError):
    """A model file that is not what it claims to be (not ONNX, truncated, foreign)."""


class UnsupportedModelError(InvalidArtifactError):
    """A valid model that uses ops, opsets or dtypes a backend cannot run."""


class IntegrityError(InvalidArtifactError):
    """An artifact whose content digest does not match: changed or corrupted after export."""


class InputError(LstmEdgeError, ValueError):
    """Bad tokens or state handed to a step call; the caller's state is left unchanged."""


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM) stopped the work after leaving every file consistent. Not an
    LstmEdgeError: nothing was wrong with the input."""

    exit_status = 130
    hint = ""  # what the user can do next; the CLI appends it to the message
