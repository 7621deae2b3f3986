"""The memory estimate as `cockpit run` prints it and the new-run form shows it (engine/memory/estimate.py computes it)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from engine.memory import estimate as estimate_mod


def print_estimate(cfg: dict[str, Any], out: Console, err: Console) -> estimate_mod.Estimate:
    """The estimate's line on stdout; when the run likely runs out of memory, a yellow warning with the fix on stderr.

    It warns and never refuses: an estimate can be wrong both ways.
    """
    est = estimate_mod.estimate(cfg)
    line = escape(est.line(with_fix=False))
    out.print(f"[yellow]{line}[/]" if est.warn else (line if est.known else f"[dim]{line}[/]"), highlight=False)
    if est.warn:
        what = "will likely run out of memory" if est.verdict == "will_not_fit" else "is close to the memory it has"
        err.print(f"[yellow]warning:[/] this run {what}; {escape(est.fix_text())}", highlight=False)
    return est


def form_markup(est: estimate_mod.Estimate) -> str:
    """The estimate for the new-run form, as Rich markup: yellow with the fix when it warns."""
    line = escape(est.line(with_fix=False))
    if est.warn:
        return f"[yellow]{line}[/]\n[yellow]{escape(est.fix_text())}[/]"
    return line if est.known else f"[dim]{line}[/]"
