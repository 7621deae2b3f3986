"""Numbers and durations as the panels show them."""

from __future__ import annotations

from typing import Any

from engine.events import number


def duration(seconds: float | None) -> str:
    """1h02m, 3m05s, 42s; "-" when unknown."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def num(value: Any, spec: str = ".4g") -> str:
    v = number(value)
    return "-" if v is None else format(v, spec)


def mib(mb: Any) -> str:
    """Megabytes as GiB above 1 GiB."""
    v = number(mb)
    if v is None:
        return "-"
    return f"{v / 1024:.1f} GiB" if v >= 1024 else f"{v:.0f} MiB"


def bar(fraction: float, width: int) -> str:
    """A text bar of `width` cells filled to `fraction`."""
    fraction = min(max(fraction, 0.0), 1.0)
    full = int(round(fraction * width))
    return "█" * full + "░" * (width - full)
