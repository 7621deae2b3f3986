"""What SFT and GRPO check before any model loads: the data's lint findings and its token lengths.

Lint runs once per run: the cockpit lints the data files before it starts the engine and hands the
reports over in RUN_DIR/lint.json; an engine started without it (``python -m engine RUN_DIR``)
lints the files itself. Token lengths are counted by `engine.data.tokens.TokenCounter` and judged
by `engine.data.checks.token_findings`, the same counter and judgement as `cockpit lint`, so a run
and lint agree on every number, severity and suggested max_length.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine import run_dir as names
from engine.data.checks import LintFinding, LintReport, token_findings
from engine.errors import DataError


def data_files(cfg: dict[str, Any]) -> list[str]:
    return [p for p in (cfg["data"]["path"], cfg["data"].get("eval_path")) if p]


def lint_reports(cfg: dict[str, Any], run_dir: Path) -> list[LintReport]:
    """The structure lint of the run's data files: the cockpit's (lint.json), else computed here."""
    handed = run_dir / names.LINT
    if handed.is_file():
        try:
            return [LintReport.from_dict(d) for d in json.loads(handed.read_text())]
        except (OSError, ValueError, TypeError, KeyError):
            pass  # a damaged hand-over: lint again rather than trust it
    from engine.data import lint

    options = {**lint.options_from_config(cfg), "max_length": None}
    return [lint.lint_file(path, **options) for path in data_files(cfg)]


def write_lint(run_dir: Path, reports: list[LintReport]) -> None:
    """Hand the launch path's lint over to the engine (atomically: a reader never sees half)."""
    target = run_dir / names.LINT
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps([r.to_dict() for r in reports]))
    tmp.replace(target)


def blocking_error(findings: list[LintFinding], more: str = "") -> DataError | None:
    """The first finding a run must not start on, as the error the engine (or launch) refuses with."""
    for f in findings:
        if f.blocks:
            return DataError(f.line() + more, code=f.code, data={"count": f.count, "places": f.places}, overrides=f.overrides)
    return None


def token_check(cfg: dict[str, Any], tokenizer: Any, splits: Any) -> tuple[dict[str, Any], list[LintFinding]]:
    """Token lengths of every split and what max_length does to them, judged as lint judges them.

    Refuses (DataError with the finding's code and overrides) where lint's finding blocks. With
    data.too_long=drop the records over max_length leave the splits here, and are counted.
    """
    from engine.data.tokens import RenderError, TokenCounter, length_report

    train_cfg = cfg["train"]
    max_length, mode, too_long = train_cfg["max_length"], train_cfg["truncation_mode"], cfg["data"]["too_long"]
    report: dict[str, Any] = {}
    findings: list[LintFinding] = []
    for name in ("train", "eval"):
        rows, places = getattr(splits, name), getattr(splits, f"{name}_places") or []
        if not rows:
            continue
        counter = TokenCounter(tokenizer, strict=True)
        try:
            for i, row in enumerate(rows):
                counter.add(row, i)
            counter.finish()
        except RenderError as exc:
            where = places[exc.place] if exc.place < len(places) else f"{name} record {exc.place + 1}"
            raise DataError(
                f"{where}: the chat template of '{cfg['model']['name_or_path']}' cannot render this record: {exc}; "
                "use a model whose template knows these roles/tools, or set model.chat_template",
                code="template_error", data={"place": where},
            ) from None
        length = length_report(counter.prompt_lens, counter.total_lens, max_length, mode)
        found = token_findings(length, lambda i, p=places, n=name: p[i] if i < len(p) else f"{n} record {i + 1}",
                               max_length=max_length, loss_on=cfg["data"]["loss_on"], too_long=too_long)
        split_report = {k: v for k, v in length.items() if not k.endswith("_index")}
        if too_long == "drop" and length["truncated_index"]:
            cut = set(length["truncated_index"])
            setattr(splits, name, [r for i, r in enumerate(rows) if i not in cut])
            setattr(splits, f"{name}_places", [p for i, p in enumerate(places) if i not in cut])
            split_report["dropped"] = len(cut)
            split_report.setdefault("dropped_reasons", {})[f"longer than max_length ({max_length} tokens)"] = len(cut)
        report[name] = split_report
        if name == "train":
            findings.extend(found)
        error = blocking_error(found)
        if error is not None:
            raise error
    if not splits.train:
        raise DataError(f"{splits.path}: every training record is longer than max_length {max_length} (data.too_long=drop); "
                        f"raise --max-length", code="train_empty", key="train.max_length")
    return report, findings
