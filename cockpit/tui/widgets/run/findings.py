"""The findings: a list in severity colours, the selected one in detail with its fix."""

from __future__ import annotations

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from cockpit.diagnose import Finding
from cockpit.diagnose.fixes import flags
from cockpit.format import SEVERITY_MARK, SEVERITY_STYLE


def finding_line(finding: Finding) -> Text:
    style = SEVERITY_STYLE.get(finding.severity, "bold")
    line = Text()
    line.append(f"{SEVERITY_MARK.get(finding.severity, '-')} ", style=style)
    line.append(finding.title, style=style)
    if finding.step is not None:
        line.append(f"  step {finding.step}", style="dim")
    return line


def finding_detail(finding: Finding) -> Text:
    text = Text()
    text.append(f"{finding.code} ({finding.severity})\n", style=SEVERITY_STYLE.get(finding.severity, "bold"))
    if finding.evidence_text:
        text.append("evidence: ", style="bold")
        text.append(finding.evidence_text + "\n")
    if finding.fix:
        text.append("fix: ", style="bold")
        text.append(finding.fix + "\n")
    if finding.overrides:
        text.append("as flags: ", style="bold")
        text.append(flags(finding.overrides), style="cyan")
        text.append("\npress f to start a new run with this fix", style="dim")
    return text


class FindingsPanel(Vertical):
    """The run's findings, most severe first; the highlighted one is the one `f` applies."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.findings: list[Finding] = []
        self.border_title = "findings"

    def compose(self):
        yield OptionList(id="finding-list")
        yield Static(Text("no findings yet", style="dim"), id="finding-detail")

    @property
    def selected(self) -> Finding | None:
        option_list = self.query_one(OptionList)
        index = option_list.highlighted
        if index is None or not 0 <= index < len(self.findings):
            return None
        return self.findings[index]

    def show(self, findings: list[Finding]) -> None:
        option_list = self.query_one(OptionList)
        current = self.selected
        self.findings = findings
        option_list.clear_options()
        option_list.add_options([Option(finding_line(f), id=f.code) for f in findings])
        reds = sum(1 for f in findings if f.severity == "red")
        self.border_title = f"findings ({len(findings)}, {reds} red)" if findings else "findings"
        if findings:
            codes = [f.code for f in findings]
            option_list.highlighted = codes.index(current.code) if current and current.code in codes else 0
        self._detail()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        self._detail()

    def _detail(self) -> None:
        finding = self.selected
        detail = self.query_one("#finding-detail", Static)
        detail.update(finding_detail(finding) if finding else Text("no findings: nothing looks wrong so far", style="dim"))
