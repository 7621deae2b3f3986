"""The run's header: who it is, where it is, how fast it goes."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from cockpit.tui.feed import Snapshot
from cockpit.format import bar, duration, metric as num

STATUS_STYLE = {
    "running": "bold green",
    "completed": "bold cyan",
    "stopped": "bold yellow",
    "failed": "bold white on red",
    "ended": "bold yellow",
}


class RunHeader(Static):
    """Two lines: run name, preset, model, status; then phase, progress, epoch, ETA, speed, elapsed."""

    def show(self, snap: Snapshot) -> None:
        cfg = snap.config
        run, model = cfg.get("run") or {}, cfg.get("model") or {}
        top = Text()
        top.append(snap.title or "run", style="bold")
        top.append(f"  preset {run.get('name') or '-'}", style="dim")
        top.append(f"  model {model.get('name_or_path') or '-'} ({model.get('finetune') or '-'})", style="dim")
        top.append(f"  {(run.get('type') or 'sft').upper()}  ", style="bold magenta")
        status = snap.status
        top.append(f" {status.upper()} ", style=STATUS_STYLE.get(status, "bold"))
        total = snap.total_steps
        fraction = snap.step / total if total else 0.0
        line = Text()
        line.append(f"{snap.phase:<14}", style="bold")
        line.append(bar(fraction, 16), style="green")
        line.append(f" step {snap.step}/{total or '?'}")
        line.append(f"  epoch {num(snap.epoch, '.2f')}")
        line.append(f"  ETA {duration(snap.eta_s)}")
        line.append(f"  {num(snap.tokens_per_s, ',.0f')} tok/s")
        line.append(f"  elapsed {duration(snap.elapsed_s)}")
        line.append(f"  loss {num(snap.last_loss)}")
        if snap.evaluation:  # GRPO's eval accuracies, a test result
            line.append(f"  {snap.evaluation}", style="bold cyan")
        line.append(f"  checkpoints {snap.checkpoints}", style="dim")
        self.update(Text("\n").join([top, line]))
