"""GRPO generations: one group's completions side by side, each with its rewards per function."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.events import number

MAX_COMPLETION_CHARS = 600


def _fmt(value: Any) -> str:
    v = number(value)
    return "-" if v is None else f"{v:.3g}"


def render_group(event: dict[str, Any], group_index: int) -> Group:
    """The prompt, then a column per completion: its text (clipped ones marked) and its rewards."""
    groups = event.get("groups") or []
    group = groups[group_index % len(groups)] if groups else {}
    completions = group.get("completions") or []
    totals = [number(c.get("total")) for c in completions]
    spread = [t for t in totals if t is not None]
    zero_spread = len(spread) > 1 and max(spread) == min(spread)
    head = Text()
    head.append(f"step {event.get('step')}  group {group_index % max(1, len(groups)) + 1}/{len(groups)}", style="bold")
    head.append("  (g next group)\n", style="dim")
    if zero_spread:
        head.append(" zero spread: every completion got the same reward, this group teaches nothing \n", style="bold black on dark_orange")
    head.append("prompt: ", style="bold")
    head.append(str(group.get("prompt", ""))[:MAX_COMPLETION_CHARS])
    table = Table(expand=True, show_lines=True)
    best = max(spread) if spread else None
    for i, completion in enumerate(completions):
        total = number(completion.get("total"))
        style = "bold green" if best is not None and total == best and not zero_spread else ""
        table.add_column(Text(f"#{i + 1} total {_fmt(total)}", style=style), ratio=1, overflow="fold")
    if completions:
        texts = []
        for completion in completions:
            body = Text(str(completion.get("text", ""))[:MAX_COMPLETION_CHARS])
            if completion.get("clipped"):
                body.append(" ✂ clipped at max length", style="bold white on red")
            texts.append(body)
        table.add_row(*texts)
        fns = sorted({fn for c in completions for fn in (c.get("rewards") or {})})
        table.add_row(*[Text("\n".join(f"{fn} {_fmt((c.get('rewards') or {}).get(fn))}" for fn in fns), style="cyan") for c in completions])
    return Group(head, table)


class GenerationsPanel(VerticalScroll):
    """The latest `generations` event; `g` steps through its groups."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.event: dict[str, Any] | None = None
        self.group_index = 0
        self.border_title = "generations"

    def compose(self):
        yield Static(Text("generations: none logged yet", style="dim"), id="generations-text")

    def show(self, generations: list[dict[str, Any]]) -> None:
        if not generations or generations[-1] is self.event:
            return
        self.event = generations[-1]
        self._draw()

    def next_group(self) -> None:
        self.group_index += 1
        self._draw()

    def _draw(self) -> None:
        if self.event is None:
            return
        self.query_one("#generations-text", Static).update(render_group(self.event, self.group_index))
