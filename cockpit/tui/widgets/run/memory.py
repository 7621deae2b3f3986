"""GPU memory and utilisation per GPU; the process's memory on a machine without one."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from cockpit.tui.widgets.run.format import bar, mib
from engine.events import number


class MemoryPanel(Static):
    """A memory bar per GPU (used/total), utilisation and torch's peak; or the process RSS on CPU."""

    def show(self, memory: dict[str, Any] | None) -> None:
        if not memory:
            self.update(Text("memory: no reading yet", style="dim"))
            return
        out = Text()
        gpus = memory.get("gpus") or []
        torch = memory.get("torch") or {}
        for gpu in gpus:
            used, total = number(gpu.get("used_mb")) or 0.0, number(gpu.get("total_mb")) or 0.0
            frac = used / total if total else 0.0
            style = "red" if frac > 0.92 else "yellow" if frac > 0.8 else "green"
            out.append(f"GPU{gpu.get('index', '?')} ", style="bold")
            out.append(bar(frac, 14), style=style)
            out.append(f" {mib(used)}/{mib(total)}")
            if gpu.get("util_pct") is not None:
                out.append(f"  util {number(gpu.get('util_pct')) or 0:.0f}%")
            out.append("\n")
        if torch:
            out.append(f"torch peak {mib(torch.get('peak_allocated_mb'))} allocated, {mib(torch.get('peak_reserved_mb'))} reserved\n", style="dim")
        rss = (memory.get("process") or {}).get("rss_mb")
        if not gpus:
            out.append("no GPU: ", style="bold")
        out.append(f"process RSS {mib(rss)}")
        self.update(out)
