"""How the cockpit writes numbers, sizes, durations and severities: one place for `cockpit run`,
doctor, lint and the TUI (standard library only)."""

from __future__ import annotations

from typing import Any

from engine.config.options import num  # noqa: F401  (numbers as a person writes them)
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


def metric(value: Any, spec: str = ".4g") -> str:
    """A logged metric (NaN/Inf strings included) in a fixed format; "-" when absent."""
    v = number(value)
    return "-" if v is None else format(v, spec)


def mib(mb: Any) -> str:
    """Megabytes as GiB above 1 GiB."""
    v = number(mb)
    if v is None:
        return "-"
    return f"{v / 1024:.1f} GiB" if v >= 1024 else f"{v:.0f} MiB"


def gib(mb: Any) -> str:
    """Megabytes as GiB with one decimal ("?" when unknown)."""
    v = number(mb)
    return "?" if v is None else f"{v / 1024:.1f} GiB"


def bar(fraction: float, width: int) -> str:
    """A text bar of `width` cells filled to `fraction`."""
    fraction = min(max(fraction, 0.0), 1.0)
    full = int(round(fraction * width))
    return "█" * full + "░" * (width - full)


# Finding severities (red, amber, info) and lint severities (error, warning, info): one colour each.
SEVERITY_STYLE = {"red": "bold red", "amber": "bold dark_orange", "info": "bold blue"}
LINT_STYLE = {"error": "bold red", "warning": "bold dark_orange", "info": "bold blue"}
SEVERITY_MARK = {"red": "●", "amber": "▲", "info": "i"}


def severity_style(severity: str) -> str:
    """The style of a finding's or a lint finding's severity."""
    return SEVERITY_STYLE.get(severity) or LINT_STYLE.get(severity, "bold")
