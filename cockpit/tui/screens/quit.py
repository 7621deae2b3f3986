"""Quitting while runs go on: stop them (with a checkpoint) or leave them running."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static


class QuitScreen(ModalScreen[str]):
    """Answers "stop", "leave" or "cancel". Its own footer: the run screen's keys do nothing here."""

    BINDINGS = [
        Binding("s", "answer('stop')", "stop the run"),
        Binding("l", "answer('leave')", "leave it running"),
        Binding("escape", "answer('cancel')", "cancel"),
    ]

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names

    def compose(self) -> ComposeResult:
        what = self.names[0] if len(self.names) == 1 else f"{len(self.names)} runs ({', '.join(self.names)})"
        it = "it" if len(self.names) == 1 else "them"
        # Static wraps to the dialog's width (a Label keeps one line and is cut).
        with Vertical(id="quit-dialog"):
            yield Static(f"{what} {'is' if len(self.names) == 1 else 'are'} still training.", id="quit-question")
            yield Static(f"Stop {it} (a checkpoint is saved first), or leave {it} running? "
                         "`cockpit watch RUN_DIR` opens a run again; its findings are saved either way.", id="quit-help")
            with Horizontal(id="quit-buttons"):
                yield Button("Stop (s)", id="stop", variant="error")
                yield Button("Leave running (l)", id="leave", variant="primary")
                yield Button("Cancel (esc)", id="cancel")
        yield Footer(compact=True, show_command_palette=False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer)
