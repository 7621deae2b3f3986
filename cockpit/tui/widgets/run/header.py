"""The run's header: who it is, where it is, how fast it goes; two lines at any width.

Each line is built from fields with a priority: the most useful ones stay when the terminal is
narrow (80 columns keeps step/total, ETA, tok/s, elapsed and the loss), the rest drop out whole
rather than wrap or be cut mid-word.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from cockpit.format import bar, duration, metric as num
from cockpit.tui.feed import Snapshot

STATUS_STYLE = {
    "running": "bold green",
    "completed": "bold cyan",
    "stopped": "bold yellow",
    "failed": "bold white on red",
    "ended": "bold yellow",
}
SEP = "  "
BAR_CELLS = (16, 8)  # the progress bar's width where there is room, and at its narrowest


def fit(fields: list[tuple[int, Text]], width: int) -> Text:
    """The fields that fit in `width` cells, most important (lowest number) first, shown in their order."""
    kept: set[int] = set()
    used = 0
    for index, (_, text) in sorted(enumerate(fields), key=lambda item: item[1][0]):
        cost = text.cell_len + (len(SEP) if kept else 0)
        if used + cost <= width:
            kept.add(index)
            used += cost
    return Text(SEP).join(text for index, (_, text) in enumerate(fields) if index in kept)


def top_line(snap: Snapshot, width: int) -> Text:
    """Run name, type and status; then preset and model where they fit."""
    cfg = snap.config
    run, model = cfg.get("run") or {}, cfg.get("model") or {}
    kind = Text((run.get("type") or "sft").upper(), style="bold magenta")
    status = Text(f" {snap.status.upper()} ", style=STATUS_STYLE.get(snap.status, "bold"))
    name = Text(snap.title or "run", style="bold")
    room = width - kind.cell_len - status.cell_len - 2 * len(SEP)
    if name.cell_len > room:  # a long name gives way to type and status, from its start: its timestamp stays
        name = Text("…" + (snap.title or "run")[-(max(1, room - 1)):], style="bold")
    fields = [
        (0, name),
        (0, kind),
        (0, status),
        (2, Text(f"preset {run.get('name') or '-'}", style="dim")),
        (3, Text(f"model {model.get('name_or_path') or '-'} ({model.get('finetune') or '-'})", style="dim")),
    ]
    return fit(fields, width)


def progress_line(snap: Snapshot, width: int) -> Text:
    """Step/total with a bar, ETA, speed, elapsed and the latest loss (reward for GRPO); then the rest."""
    total = snap.total_steps
    training = snap.phase == "training" or snap.step > 0
    fraction = snap.step / total if total else 0.0
    if snap.is_grpo:
        latest = Text(f"reward {num(snap.last_reward)}")
    else:
        latest = Text(f"loss {num(snap.last_loss)}")
    step = Text(f"step {snap.step}/{total or '?'}")
    running = snap.status == "running"
    fields = [
        (0, step),
        (0, Text(f"ETA {duration(snap.eta_s)}")),
        (0, Text(f"{num(snap.tokens_per_s, ',.0f')} tok/s")),
        (0, Text(f"elapsed {duration(snap.elapsed_s)}")),
        (0, latest),
        (2, Text(f"epoch {num(snap.epoch, '.2f')}")),
        (3, Text(f"checkpoints {snap.checkpoints}", style="dim")),
    ]
    if snap.evaluation:  # GRPO's eval accuracies, a test result
        fields.append((2, Text(snap.evaluation, style="bold cyan")))
    if running and not training:  # loading the model, preparing the data
        fields.insert(0, (0, Text(snap.phase, style="bold")))
    if not running:  # the status says how it ended; an ETA would say nothing
        fields = [f for f in fields if not f[1].plain.startswith("ETA")]
    for cells in BAR_CELLS:  # the widest bar that fits, ahead of epoch and checkpoints
        progress = Text(bar(fraction, cells), style="green")
        line = fit([(1, progress), *fields], width)
        if progress.plain in line.plain:
            return line
    return line


class RunHeader(Static):
    """Two lines: run name, type, status (preset, model); then progress, ETA, speed, elapsed, loss."""

    DEFAULT_CSS = "RunHeader { height: 2; padding: 0 1; }"

    snap: Snapshot | None = None

    def show(self, snap: Snapshot) -> None:
        self.snap = snap
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        if self.snap is None:
            return
        width = max(20, self.content_region.width)
        self.update(Text("\n").join([top_line(self.snap, width), progress_line(self.snap, width)]))
