"""The most severe finding in two lines: what and where, then its fix. Shown when the findings panel is not."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from cockpit.diagnose import Finding
from cockpit.format import SEVERITY_MARK, SEVERITY_STYLE


def top_finding_text(findings: list[Finding], width: int, running: bool = True) -> Text:
    """The first finding (they come most severe first) with its fix, each line cut to `width`."""
    if not findings:
        return Text("findings: none so far" if running else "findings: none", style="dim")
    finding = findings[0]
    style = SEVERITY_STYLE.get(finding.severity, "bold")
    first = Text()
    first.append(f"{SEVERITY_MARK.get(finding.severity, '-')} {finding.title}", style=style)
    if finding.step is not None:
        first.append(f"  step {finding.step}", style="dim")
    more = len(findings) - 1
    first.append(f"  (+{more} more: 3)" if more else "  (3: details)", style="dim")
    second = Text()
    if finding.fix:
        second.append("fix: ", style="bold")
        second.append(finding.fix)
        if finding.overrides:
            second.append("  (f: new run with it)", style="dim")
    else:
        second.append(finding.evidence_text or "")
    for line in (first, second):
        line.truncate(max(1, width), overflow="ellipsis")
    return Text("\n").join([first, second]) if second.plain else first


class TopFinding(Static):
    """A strip under the header: the finding a user must see, when the findings panel is out of sight."""

    DEFAULT_CSS = "TopFinding { height: auto; max-height: 2; padding: 0 1; background: $boost; }"

    findings: list[Finding] = []
    running = True

    def show(self, findings: list[Finding], running: bool = True) -> None:
        self.findings, self.running = findings, running
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        self.update(top_finding_text(self.findings, max(10, self.content_region.width), self.running))
