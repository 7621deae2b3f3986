"""GPU memory and utilisation per GPU; the process's memory on a machine without one."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from cockpit.format import bar, mib
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
            if gpu.get("temp_c") is not None:
                out.append(f"  {number(gpu.get('temp_c')) or 0:.0f}°C")
            if gpu.get("power_w") is not None:
                out.append(f"  {number(gpu.get('power_w')) or 0:.0f} W")
            out.append("\n")
        if torch:
            out.append(f"torch peak {mib(torch.get('peak_allocated_mb'))} allocated, {mib(torch.get('peak_reserved_mb'))} reserved\n", style="dim")
        ranks = memory.get("ranks") or []
        if len(ranks) > 1:  # a run of several processes: each rank's own torch peak (or RSS on CPU)
            key = "peak_reserved_mb" if any(r.get("peak_reserved_mb") is not None for r in ranks) else "rss_mb"
            label = "torch peak reserved" if key == "peak_reserved_mb" else "RSS"
            out.append(f"{label} by rank: " + ", ".join(f"{r.get('rank')}: {mib(r.get(key))}" for r in ranks) + "\n", style="dim")
        rss = (memory.get("process") or {}).get("rss_mb")
        if not gpus:
            out.append("no GPU: ", style="bold")
        out.append(f"process RSS {mib(rss)}")
        self.update(out)
