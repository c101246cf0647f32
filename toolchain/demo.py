"""`lstm-edge demo`: an interactive terminal editor with a phone-keyboard suggestion strip.

Built on prompt_toolkit (full screen). After every keystroke the engine (`Suggester`) is
synced to the text before the cursor (one step for a typed character, none for backspace,
one prefill for a paste) and the top-k completions of the current word are shown with their
probabilities and the keystroke's latency. Tab or F1 accepts the first suggestion, F2/F3
the others; Alt-1..3 (Esc then 1..3) work in terminals that capture function keys.
Accepting is the engine's (`Suggester.accept`): as on a phone it inserts the rest of the word
and a space, and punctuation typed next replaces that space; `--no-auto-space` keeps the
earlier convention (the rest of the word only). Ctrl-D or Ctrl-C quits and prints the text.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_edge.runtime.errors import LstmEdgeError
from lstm_edge.runtime.suggest import ATTACHING_PUNCT, Suggester, Suggestion
from lstm_edge.toolchain.typing_eval import scheme_label

DEFAULT_MODEL = Path("runs/default/model.int8.onnx")
HOW_TO_GET_ONE = (
    "make one with the README's main command, `lstm-edge pipeline --out runs/default` (it "
    "trains, exports and quantizes into runs/default), or from a checkpoint you have: "
    "`lstm-edge pipeline --from CKPT --out runs/default`; or give a model path"
)
# Keys that accept suggestion 1, 2, 3: function keys, plus Alt-digit for terminals (and
# desktops) that take F1 for themselves. Ctrl-digit sends nothing in most terminals.
ACCEPT_KEYS: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("tab",), ("f1",), ("escape", "1")),
    (("f2",), ("escape", "2")),
    (("f3",), ("escape", "3")),
)
KEY_LABELS = ("Tab/F1", "F2", "F3")


def format_probability(p: float) -> str:
    return f"{p:.1%}" if p >= 0.001 else "<0.1%"


class DemoError(LstmEdgeError):
    """The demo cannot start (no model, no terminal)."""


@dataclass
class DemoSession:
    """The engine plus what the screen shows; independent of prompt_toolkit for testing."""

    suggester: Suggester
    k: int = 3
    shown: list[Suggestion] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    _synced: str | None = None

    def refresh(self, text_before_cursor: str) -> None:
        """Sync the engine to the text and recompute suggestions (timed as one keystroke)."""
        if text_before_cursor == self._synced:
            return
        t0 = time.perf_counter()
        self.suggester.sync(text_before_cursor)
        self.shown = self.suggester.suggestions(self.k)
        self.latencies_ms.append((time.perf_counter() - t0) * 1e3)
        self._synced = text_before_cursor

    def accept(self, index: int) -> str:
        """Accept the index-th suggestion shown; returns the text to insert ('' if none)."""
        if index >= len(self.shown):
            return ""
        return self.suggester.accept(self.shown[index])

    def replaces_space(self, ch: str) -> bool:
        """Does typing `ch` now replace the space an accept added (phone behaviour)?"""
        return self.suggester.replaces_space(ch)

    def strip(self) -> list[tuple[str, str]]:
        if not self.shown:
            return [("class:dim", " (no suggestion)")]
        parts: list[tuple[str, str]] = []
        for i, s in enumerate(self.shown):
            label = KEY_LABELS[i] if i < len(KEY_LABELS) else " "
            parts += [
                ("class:key", f" {label} "),
                ("class:word", f" {s.word} "),
                ("class:dim", f"{format_probability(s.probability)}  "),
            ]
        return parts

    def status(self) -> str:
        if not self.latencies_ms:
            return " type to see suggestions"
        lat = np.array(self.latencies_ms)
        return (
            f" keystroke {lat[-1]:.2f} ms (sync + suggest)  p50 {np.percentile(lat, 50):.2f} ms"
            f"  p99 {np.percentile(lat, 99):.2f} ms  over {len(lat)} keystrokes"
        )


def build_app(session: DemoSession, title: str):
    """The prompt_toolkit Application: title, editor, suggestion strip, latency line."""
    from prompt_toolkit.application import Application
    from prompt_toolkit.buffer import Buffer
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.layout import HSplit, Layout, Window
    from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
    from prompt_toolkit.styles import Style
    from prompt_toolkit.widgets import HorizontalLine

    def on_change(buf: Buffer) -> None:
        session.refresh(buf.document.text_before_cursor)

    buffer = Buffer(multiline=True, on_text_changed=on_change, on_cursor_position_changed=on_change)
    bindings = KeyBindings()

    def accept(index: int):
        def handler(event) -> None:
            session.refresh(buffer.document.text_before_cursor)  # the engine is in sync
            inserted = session.accept(index)
            if inserted:
                buffer.insert_text(inserted)

        return handler

    for index, keys in enumerate(ACCEPT_KEYS):
        for key in keys:
            bindings.add(*key)(accept(index))

    def punctuation(ch: str):
        def handler(event) -> None:
            session.refresh(buffer.document.text_before_cursor)
            if session.replaces_space(ch):
                buffer.delete_before_cursor(1)
            buffer.insert_text(ch)

        return handler

    for ch in sorted(ATTACHING_PUNCT):
        bindings.add(ch)(punctuation(ch))

    @bindings.add("c-d")
    @bindings.add("c-c")
    def _quit(event) -> None:
        event.app.exit(result=buffer.text)

    session.refresh("")
    layout = Layout(
        HSplit(
            [
                Window(FormattedTextControl(title), height=1, style="class:title"),
                Window(BufferControl(buffer=buffer), wrap_lines=True),
                HorizontalLine(),
                Window(FormattedTextControl(session.strip), height=1),
                Window(FormattedTextControl(session.status), height=1, style="class:dim"),
            ]
        ),
        focused_element=buffer,
    )
    style = Style.from_dict(
        {"title": "reverse", "key": "reverse bold", "word": "bold", "dim": "#888888"}
    )
    return Application(layout=layout, key_bindings=bindings, style=style, full_screen=True)


def resolve_model(model: Path | None) -> Path:
    path = Path(model) if model is not None else DEFAULT_MODEL
    if not path.is_file():
        what = "the default model" if model is None else "model"
        raise DemoError(f"{what} {path} does not exist: {HOW_TO_GET_ONE}")
    return path


def run_demo(
    model: Path | None, *, backend: str = "ort", k: int = 3, auto_space: bool = True
) -> str:
    """Run the interactive demo; returns the text typed."""
    from lstm_edge.runtime import load

    path = resolve_model(model)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise DemoError(
            "the demo needs an interactive terminal; for piped input use `lstm-edge suggest` "
            "or examples/predictive_typing/complete.py"
        )
    loaded = load(path, backend=backend)
    session = DemoSession(Suggester(loaded, auto_space=auto_space), k=k)
    title = (
        f" lstm-edge demo: {path.name} ({scheme_label(loaded.scheme)}, {backend})   "
        "Tab/F1 F2 F3 or Alt-1..3 accept   Ctrl-D quit"
    )
    return build_app(session, title).run()
