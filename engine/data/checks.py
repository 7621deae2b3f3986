"""What lint checks, and what it found: the check table, a finding, a file's report; and the token
findings (truncation), judged here once for `cockpit lint` and for the engine's pre-flight.

Standard library only. Codes are stable: tests, the diagnoses, the TUI and scripts match on them, and
a data error the engine refuses with carries the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.config.options import flags
from engine.data.tokens import suggest_max_length

MAX_PLACES = 5
_EVAL_OFF = "--set train.eval_strategy=no"
# truncation is an error (red) when a fifth of the records are cut: the model learns answers that
# stop mid-way (a cut tool call); a warning (amber) below that.
TRUNCATED_ERROR_SHARE = 0.20
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}

# code: (severity, title, fix). Codes are stable: tests, the TUI and scripts match on them.
CHECKS: dict[str, tuple[str, str, str]] = {
    # structure
    "unreadable": ("error", "the file cannot be read", "see the message"),
    "no_records": ("error", "the file has no records", "add records (one JSON object a line, a JSON list, or CSV rows under a header)"),
    "invalid_json": ("error", "invalid JSON lines or rows", "fix or remove these lines"),
    "wrong_type": ("error", "records that are not JSON objects",
                   "make each line (or list element) one JSON object"),
    "unknown_format": ("error", "records in no known format",
                       "map the columns: --set data.prompt_template='...{column}...' "
                       "--set data.completion_template='{column}'"),
    "missing_field": ("error", "records missing a field of their format",
                      "add the field, or keep one format per file"),
    "mixed_formats": ("error", "records in another format than the file's",
                      "keep one format per file: convert those records or move them out"),
    "bad_record": ("error", "malformed records", "fix the records as the detail says"),
    "empty_record": ("warning", "empty records (dropped)", "remove them"),
    "empty_message": ("warning", "empty messages", "fill in or remove the empty turns"),
    "role_order": ("warning", "roles out of order",
                   "start with system/user, alternate user and assistant; many chat templates "
                   "reject anything else"),
    "not_ending_with_assistant": ("error", "conversations not ending with an assistant message",
                                  "end each conversation with the assistant turn to train on "
                                  "(e.g. the tool call), or --set data.loss_on=assistant"),
    "no_assistant": ("error", "conversations with no assistant message", "add the assistant's reply"),
    "empty_completion": ("warning", "empty completions (dropped: they train nothing)",
                         "fill in the answer or remove the records"),
    # split
    "split_values": ("error", "split values other than exactly 'train' or 'eval'",
                     "use exactly 'train' or 'eval' (case-sensitive), or remove the field to split "
                     "by data.eval_split"),
    "no_eval": ("warning", "no eval records",
                f"mark some records 'eval', remove the field to use data.eval_split, or {_EVAL_OFF}"),
    "tiny_eval": ("warning", "a tiny eval split", "mark more records 'eval' (eval_loss on a handful "
                  "of records is noise)"),
    "split_overlap": ("warning", "prompts found in both train and eval",
                      "move each prompt to one split, or eval_loss flatters the model"),
    # tool calling
    "tool_args_invalid_json": ("error", "tool-call arguments that are not valid JSON",
                               "write the arguments as a JSON object"),
    "tool_args_double_encoded": ("error", "tool-call arguments JSON-encoded twice",
                                 "decode them once: arguments is one JSON string of an object"),
    "tool_args_object": ("warning", "tool-call arguments given as objects, not JSON strings",
                         "the OpenAI format wants a JSON string; the cockpit encodes them, other "
                         "tools may not"),
    "tool_args_template": ("error", "the chat template JSON-encodes the string arguments again",
                           "the model would learn escaped arguments: use a template that prints "
                           "string arguments as they are (--set model.chat_template=FILE)"),
    "tool_undeclared": ("warning", "calls to tools not declared in the record's tools",
                        "add the tool's spec to `tools`, or fix the function name"),
    "tool_args_schema": ("warning", "arguments that do not match the tool's JSON schema",
                         "fix the arguments or the schema (required fields, types)"),
    "tool_reply_unmatched": ("warning", "tool messages that answer no tool call",
                             "give each tool message the tool_call_id of the call it answers"),
    "tool_schema_invalid": ("warning", "tools that are not valid JSON schemas",
                            "each tool: a name and parameters {type: object, properties, required}"),
    # content
    "duplicate": ("warning", "exact duplicate records", "remove the copies: they overweight a few "
                  "examples and leak into eval"),
    "conflicting_answers": ("warning", "the same prompt with different answers",
                            "keep one answer per prompt, unless the variety is intended"),
    "placeholder": ("warning", "unrendered template placeholders",
                    "fill in the placeholders before training (the model learns them verbatim)"),
    "label_outlier": ("warning", "rare label values", "drop or relabel those records"),
    "long_record": ("info", "very long records (over 10x the median)", "check they are intended"),
    "short_record": ("info", "very short records (under a tenth of the median)",
                     "check they are intended"),
    # tokens
    "tokenizer_unavailable": ("warning", "token checks skipped", "pass --model with a local "
                              "directory or builtin:tiny"),
    "no_chat_template": ("error", "the tokenizer has no chat template",
                         "use an instruct model, or --set model.chat_template=FILE"),
    "template_error": ("error", "records the chat template cannot render", "fix the records (roles, "
                       "tools) or the template"),
    "truncated": ("warning", "records longer than max_length (truncated)", "raise max_length"),
    "too_long_dropped": ("warning", "records longer than max_length (dropped: data.too_long=drop)", "raise max_length to keep them"),
    "completion_lost": ("error", "records whose whole completion max_length cuts away",
                        "raise max_length: TRL drops such records and then fails"),
}


@dataclass
class LintFinding:
    """One check that fired: how often, where first, and the fix (in words and as overrides).

    `blocks`: a run refuses to start on it (structure errors, a completion cut away, any truncation
    under data.too_long=refuse); the other errors are red findings of a run that trains on.
    """

    code: str
    severity: str
    title: str
    fix: str
    count: int = 0
    places: list[str] = field(default_factory=list)
    detail: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    blocks: bool | None = None

    def __post_init__(self) -> None:
        if self.blocks is None:
            self.blocks = self.severity == "error"

    def line(self) -> str:
        """One line for a terminal or an error message."""
        where_ = f" (first at {', '.join(self.places[:3])})" if self.places else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.code}: {self.count} {self.title}{detail}{where_}; fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "title": self.title,
                "count": self.count, "places": self.places, "detail": self.detail,
                "fix": self.fix, "overrides": self.overrides, "blocks": self.blocks}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LintFinding:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class LintReport:
    """What lint found in one file. `fatal` is set when the file cannot be read at all."""

    path: str
    format: str | None = None
    records: int = 0
    findings: list[LintFinding] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    fatal: str | None = None

    def _of(self, severity: str) -> list[LintFinding]:
        return [f for f in self.findings if f.severity == severity]

    @property
    def errors(self) -> list[LintFinding]:
        return self._of("error")

    @property
    def warnings(self) -> list[LintFinding]:
        return self._of("warning")

    @property
    def infos(self) -> list[LintFinding]:
        return self._of("info")

    @property
    def blocking(self) -> list[LintFinding]:
        return [f for f in self.findings if f.blocks]

    @property
    def exit_code(self) -> int:
        """0: no errors; 1: errors; 2: the file cannot be read at all."""
        return 2 if self.fatal else 1 if self.errors else 0

    def get(self, code: str) -> LintFinding | None:
        return next((f for f in self.findings if f.code == code), None)

    def sort(self) -> None:
        order = list(CHECKS)
        self.findings.sort(key=lambda f: (_SEVERITY_ORDER[f.severity], order.index(f.code) if f.code in order else len(order)))

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "records": self.records,
                "fatal": self.fatal, "errors": len(self.errors), "warnings": len(self.warnings),
                "findings": [f.to_dict() for f in self.findings], "stats": self.stats}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LintReport:
        return cls(path=d.get("path", ""), format=d.get("format"), records=d.get("records", 0),
                   findings=[LintFinding.from_dict(f) for f in d.get("findings") or []],
                   stats=d.get("stats") or {}, fatal=d.get("fatal"))


def new_finding(code: str, *, count: int = 1, detail: str = "", places: list[str] | None = None) -> LintFinding:
    severity, title, fix = CHECKS[code]
    return LintFinding(code, severity, title, fix, count=count, detail=detail, places=list(places or [])[:MAX_PLACES])


def add_finding(report: LintReport, code: str, *, detail: str = "", count: int = 1) -> LintFinding:
    """Add a finding found outside the pass (e.g. the tokenizer could not load)."""
    finding = new_finding(code, count=count, detail=detail)
    report.findings.append(finding)
    return finding


def token_findings(length: dict[str, Any], place: Callable[[int], str], *, max_length: int, loss_on: str, too_long: str) -> list[LintFinding]:
    """What max_length does to the records, from `tokens.length_report`; `place(i)` names record i.

    The one judgement of truncation: `cockpit lint`, the engine's pre-flight and the diagnoses use
    its severity, its max_length suggestion (every record kept, or 99% with the outliers dropped)
    and whether the run refuses.
    """
    out: list[LintFinding] = []
    records = length["records"] or 1
    keep = length["keep_max_length"]
    suggested, outliers = suggest_max_length(keep)
    overrides: dict[str, Any] = {}
    if suggested and suggested > max_length:
        overrides["train.max_length"] = suggested
        if outliers:
            overrides["data.too_long"] = "drop"
    keeps = f"max_length {max_length}; {keep['p100']} keeps every record, {keep['p99']} keeps 99%"
    if outliers:
        keeps += f" (the longest {keep['p100']} is an outlier: keep 99% and drop the rest)"

    def at(indices: list[int]) -> list[str]:
        return [place(i) for i in indices[:MAX_PLACES]]

    lost = length["lost_index"]
    if lost:
        finding = new_finding("completion_lost", count=len(lost), detail=keeps, places=at(lost))
        finding.overrides = dict(overrides) or {"train.max_length": suggested or max_length * 2}
        finding.fix = f"raise max_length: {flags(finding.overrides)} (TRL drops records with no completion token)"
        if loss_on != "completion":  # other turns still train: a warning, not a refusal
            finding.severity, finding.blocks = "warning", False
        out.append(finding)
    cut = length["truncated_index"]
    if cut:
        code = "too_long_dropped" if too_long == "drop" else "truncated"
        finding = new_finding(code, count=len(cut), detail=keeps, places=at(cut))
        finding.overrides = dict(overrides)
        share = len(cut) / records
        if share >= TRUNCATED_ERROR_SHARE:
            finding.severity = "error"
        finding.blocks = too_long == "refuse"
        fix = f"{flags(overrides)}" if overrides else "shorten the longest records"
        if too_long == "refuse":
            fix += "; or let the run truncate them (--set data.too_long=truncate) or drop them (--set data.too_long=drop)"
        finding.fix = fix
        out.append(finding)
    return out
