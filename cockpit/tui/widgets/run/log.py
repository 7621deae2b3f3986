"""The tail of the engine log, and the error when the engine failed."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Log, Static

from cockpit.diagnose import Finding

MAX_LOG_LINES = 2000


class EngineLog(Log):
    """engine.log as it grows; bounded, so a chatty engine cannot fill the UI's memory."""

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=MAX_LOG_LINES, auto_scroll=True, **kwargs)
        self.border_title = "engine log"


class ErrorPanel(Static):
    """Shown at once when the engine fails: its error in full and the finding that explains it."""

    def show(self, error: dict[str, Any] | None, status: str, findings: list[Finding]) -> None:
        if not error and status != "failed":
            self.display = False
            return
        text = Text()
        error = error or {}
        text.append(f" engine failed ({error.get('kind', 'unknown')}) ", style="bold white on red")
        step = error.get("step")
        text.append(f" at step {step}" if step is not None else "", style="bold")
        message = str(error.get("message") or "the engine stopped without saying why; see the engine log")
        text.append("\n" + message + "\n", style="bold")
        reds = [f for f in findings if f.severity == "red"]
        for finding in reds[:2]:
            text.append(f"{finding.title}: ", style="bold red")
            if finding.evidence_text and finding.fix and finding.evidence_text not in message:
                text.append(finding.evidence_text + "\n")  # the numbers behind it (an OOM's step, batch and memory)
                text.append("fix: ", style="bold")
            text.append((finding.fix or finding.evidence_text) + "\n")
        if error.get("traceback"):
            text.append(str(error["traceback"]).rstrip(), style="dim")
        self.update(text)
        self.display = True
