"""A finding: one named problem of a run, its evidence, and its fix in words and as config overrides."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.run_dir import FINDINGS as FINDINGS_FILE

SEVERITIES = ("red", "amber", "info")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def severity_rank(severity: str) -> int:
    """0 for red, 1 for amber, 2 for info (unknown severities sort last)."""
    return _RANK.get(severity, len(SEVERITIES))


@dataclass
class Finding:
    """One diagnosis of a run.

    `code` is stable (tests, docs and the TUI key on it); `severity` is red (the run is wasting its
    time or broken), amber (worth a look before trusting the result) or info. `evidence` holds the
    numbers that triggered it, `evidence_text` the same in one line. `overrides` is the fix as config
    keys (`{"train.max_length": 2048}`) that a new run can apply; `fix` says it in words with the flag.
    `first_step` is when it was raised, `updated_step` when its evidence last changed, `updates` how
    many times it changed since it was raised. `cause` is the code of the finding that explains this
    one (NaN weights explain a NaN eval_loss): the cause is listed first, and this one points to it.
    """

    code: str
    severity: str
    title: str
    step: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    evidence_text: str = ""
    fix: str = ""
    overrides: dict[str, object] = field(default_factory=dict)
    first_step: int | None = None
    updated_step: int | None = None
    updates: int = 0
    cause: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        known.setdefault("code", "unknown")
        known.setdefault("severity", "info")
        known.setdefault("title", known["code"])
        return cls(**known)

    def same_content(self, other: Finding) -> bool:
        """True when nothing a reader would see changed (severity, title, evidence, fix)."""
        return (
            self.severity == other.severity
            and self.title == other.title
            and self.evidence == other.evidence
            and self.evidence_text == other.evidence_text
            and self.fix == other.fix
            and self.overrides == other.overrides
        )


def _order(f: Finding) -> tuple[int, int, str]:
    return severity_rank(f.severity), f.first_step if f.first_step is not None else -1, f.code


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Causes first (most severe, then earliest), each followed by the findings it explains."""
    codes = {f.code for f in findings}
    roots = sorted((f for f in findings if f.cause not in codes), key=_order)
    out: list[Finding] = []
    placed: set[str] = set()

    def place(finding: Finding) -> None:
        out.append(finding)
        placed.add(finding.code)
        for child in sorted((f for f in findings if f.cause == finding.code and f.code not in placed), key=_order):
            place(child)

    for root in roots:
        place(root)
    return out


def save_findings(run_dir: str | os.PathLike[str], findings: list[Finding]) -> Path:
    """Write RUN_DIR/findings.json atomically, so the TUI and `doctor` never read half a file."""
    path = Path(run_dir) / FINDINGS_FILE
    tmp = path.with_suffix(f".json.{os.getpid()}.tmp")  # per process: the TUI and run_end may both write at a run's end
    payload = {"v": 1, "findings": [f.to_dict() for f in sort_findings(findings)]}
    try:
        tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk: no empty .tmp left behind; the caller says so
        raise
    return path


def load_findings(run_dir: str | os.PathLike[str]) -> list[Finding]:
    """The findings stored in RUN_DIR/findings.json; an empty list when there is none or it is unreadable."""
    path = Path(run_dir) / FINDINGS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    items = data.get("findings", []) if isinstance(data, dict) else data
    if not isinstance(items, list):
        return []
    return [Finding.from_dict(d) for d in items if isinstance(d, dict)]
