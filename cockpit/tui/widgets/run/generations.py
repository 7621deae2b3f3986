"""GRPO generations: one group's completions with their rewards per function, for the latest steps.

A group is one prompt's num_generations completions. They stand side by side while each column
keeps MIN_COLUMN cells; more (eight or sixteen on a narrow screen) are listed one under another,
so no header is ever cut into a column of letters.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.events import number

MAX_COMPLETION_CHARS = 600
MIN_COLUMN = 18  # cells a side-by-side completion needs to read as text


def _fmt(value: Any) -> str:
    v = number(value)
    return "-" if v is None else f"{v:.3g}"


def _body(completion: dict[str, Any], limit: int = MAX_COMPLETION_CHARS) -> Text:
    body = Text(str(completion.get("text", ""))[:limit])
    if completion.get("clipped"):
        body.append(" ✂ clipped at max length", style="bold white on red")
    return body


def _rewards(completion: dict[str, Any], fns: list[str], sep: str) -> Text:
    rewards = completion.get("rewards") or {}
    return Text(sep.join(f"{fn} {_fmt(rewards.get(fn))}" for fn in fns), style="cyan")


def render_group(event: dict[str, Any], group_index: int, width: int = 120, position: str = "") -> Group:
    """The prompt, then each completion: its text (clipped ones marked), its total and its rewards.

    `position` says which of the kept steps this is (e.g. "3/8"), `width` the cells to lay out in.
    """
    groups = event.get("groups") or []
    index = group_index % len(groups) if groups else 0
    group = groups[index] if groups else {}
    completions = group.get("completions") or []
    totals = [number(c.get("total")) for c in completions]
    spread = [t for t in totals if t is not None]
    zero_spread = len(spread) > 1 and max(spread) == min(spread)
    best = max(spread) if spread and not zero_spread else None
    head = Text()
    head.append(f"step {event.get('step')}", style="bold")
    if position:
        head.append(f" ({position})", style="dim")
    head.append(f"  group {index + 1}/{len(groups)}  {len(completions)} completions", style="bold")
    head.append("  ([ ] step, g group)\n", style="dim")
    if zero_spread:
        head.append(" zero spread: every completion got the same reward, this group teaches nothing \n", style="bold black on dark_orange")
    head.append("prompt: ", style="bold")
    head.append(str(group.get("prompt", ""))[:MAX_COMPLETION_CHARS])
    fns = sorted({fn for c in completions for fn in (c.get("rewards") or {})})

    def header(i: int, total: float | None) -> Text:
        return Text(f"#{i + 1} total {_fmt(total)}", style="bold green" if best is not None and total == best else "bold")

    if completions and len(completions) * MIN_COLUMN <= width:
        table = Table(expand=True, show_lines=True)
        for i, total in enumerate(totals):
            table.add_column(header(i, total), ratio=1, overflow="fold")
        table.add_row(*[_body(c) for c in completions])
        table.add_row(*[_rewards(c, fns, "\n") for c in completions])
        return Group(head, table)
    listed = [head]
    for i, (completion, total) in enumerate(zip(completions, totals)):
        line = header(i, total)
        line.append("  ")
        line.append_text(_rewards(completion, fns, "  "))
        line.append("\n  ")
        line.append_text(_body(completion, limit=max(40, 3 * width)))
        listed.append(line)
    return Group(*listed)


class GenerationsPanel(VerticalScroll):
    """The kept `generations` events, newest shown until the user steps back; `g` steps through groups."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.events: list[dict[str, Any]] = []
        self.position: int | None = None  # which event is shown; None: always the newest
        self.group_index = 0
        self.border_title = "generations"

    def compose(self):
        yield Static(Text("generations: none logged yet", style="dim"), id="generations-text")

    @property
    def event(self) -> dict[str, Any] | None:
        """The event on screen."""
        if not self.events:
            return None
        return self.events[-1 if self.position is None else self.position]

    def show(self, generations: list[dict[str, Any]]) -> None:
        if not generations or (self.events and generations[-1] is self.events[-1] and len(generations) == len(self.events)):
            return
        shown = self.event
        self.events = generations
        if self.position is not None:  # keep the step the user went back to, while it is kept
            self.position = next((i for i, e in enumerate(generations) if e is shown), None)
        self._draw()

    def step(self, delta: int) -> None:
        """An older (-1) or newer (+1) step's generations; past the newest it follows new ones again."""
        if not self.events:
            return
        current = len(self.events) - 1 if self.position is None else self.position
        target = max(0, min(len(self.events) - 1, current + delta))
        self.position = None if target == len(self.events) - 1 else target
        self._draw()

    def next_group(self) -> None:
        self.group_index += 1
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        event = self.event
        if event is None or not self.is_mounted:
            return
        current = len(self.events) - 1 if self.position is None else self.position
        width = max(20, self.scrollable_content_region.width - 1)
        self.query_one("#generations-text", Static).update(
            render_group(event, self.group_index, width=width, position=f"{current + 1}/{len(self.events)}"))
