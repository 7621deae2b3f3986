"""The tail of the engine log, and the error when the engine failed."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from typing import Any

from rich.cells import cell_len, chop_cells
from rich.text import Text
from textual import events
from textual.widgets import Log, Static

from cockpit.diagnose import Finding

MAX_LOG_LINES = 2000  # engine log lines kept (before wrapping); a chatty engine cannot fill the UI's memory
CONTINUATION = "  "  # a wrapped line's rest is indented, so one log line still reads as one
_SITE_PACKAGES = re.compile(r"\S*/site-packages/")
_WARNING = re.compile(r"^\S+:\d+: \w*Warning: ")


def display_lines(lines: Iterable[str], after_warning: bool = False) -> tuple[list[str], bool]:
    """The engine's lines as the panel shows them: library paths from site-packages on, no blank lines,
    and no source line under a Python warning (it repeats the warning's call). Returns the lines and
    whether the last one was a warning (its source line may come in the next batch)."""
    out = []
    for line in lines:
        if after_warning and line.startswith("  "):
            after_warning = False
            continue
        after_warning = bool(_WARNING.match(line))
        line = _SITE_PACKAGES.sub("", line).rstrip()
        if line:
            out.append(line)
    return out, after_warning


def wrap(line: str, width: int) -> list[str]:
    """One log line cut into rows of `width` cells, at a space where one is near, the rest indented."""
    if width <= len(CONTINUATION) + 8:
        return [line]
    rows: list[str] = []
    room = width
    while cell_len(line) > room:
        head = chop_cells(line, room)[0]
        space = head.rfind(" ")
        if space > room // 2:  # a word boundary in the row's second half: break there
            head = head[: space + 1]
        rows.append(head.rstrip())
        line = line[len(head):].lstrip()
        room = width - len(CONTINUATION)
    rows.append(line)
    return [rows[0]] + [CONTINUATION + row for row in rows[1:]]


class EngineLog(Log):
    """engine.log as it grows, wrapped to the panel's width, its last line always in sight.

    It follows the end unless the user scrolls up (and again once they scroll back down). Hidden,
    resized or shown again, it re-wraps and returns to the end: Textual's Log only follows while its
    scroll position is at the end, which a hidden or resized log no longer is.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_lines=None, auto_scroll=False, **kwargs)
        self.border_title = "engine log"
        self.raw: deque[str] = deque(maxlen=MAX_LOG_LINES)
        self.following = True
        self._after_warning = False
        self._wrap_width = 0

    @property
    def last_line(self) -> str | None:
        """The engine's last line as shown (before wrapping)."""
        return self.raw[-1] if self.raw else None

    def _text_width(self) -> int:
        return max(0, self.scrollable_content_region.width - 1)  # one cell for the scrollbar

    def add(self, lines: Iterable[str]) -> None:
        """New lines from engine.log."""
        shown, self._after_warning = display_lines(lines, self._after_warning)
        if not shown:
            return
        overflow = len(self.raw) + len(shown) > MAX_LOG_LINES
        self.raw.extend(shown)
        width = self._text_width()
        if overflow or width != self._wrap_width:
            self._rewrap()
            return
        self.write_lines([row for line in shown for row in wrap(line, width)], scroll_end=False)
        self._follow()

    def _rewrap(self) -> None:
        width = self._wrap_width = self._text_width()
        self.clear()
        if width > 0:
            self.write_lines([row for line in self.raw for row in wrap(line, width)], scroll_end=False)
        self._follow()

    def _follow(self) -> None:
        if self.following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def on_resize(self, event: events.Resize) -> None:
        if self._text_width() != self._wrap_width:
            self._rewrap()
        self.call_after_refresh(self._follow)

    def on_show(self) -> None:
        self.call_after_refresh(self._follow)

    # The user scrolling up stops the following; reaching the end again resumes it.
    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.following = False
        super()._on_mouse_scroll_up(event)

    def action_scroll_up(self) -> None:
        self.following = False
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self.following = False
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self.following = False
        super().action_scroll_home()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self.is_vertical_scrollbar_grabbed and new_value < old_value:
            self.following = False
        elif new_value >= self.max_scroll_y and self.max_scroll_y > 0:
            self.following = True


class ErrorPanel(Static):
    """Shown at once when the engine fails: its error in full and the finding that explains it."""

    def show(self, error: dict[str, Any] | None, status: str, findings: list[Finding], removed: bool = False) -> None:
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
        if removed:
            text.append("Nothing was trained, so its run dir was removed (as cockpit run does): fix the input "
                        "and start a new run (esc, then n).\n", style="bold")
        if error.get("traceback"):
            text.append(str(error["traceback"]).rstrip(), style="dim")
        self.update(text)
        self.display = True
