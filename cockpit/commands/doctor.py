"""`cockpit doctor PATH`: the findings of a run, from its run dir, its events.jsonl, or any Hugging
Face trainer_state.json (runs the cockpit never started included).

Exit codes: 0 nothing red, 1 something red, 2 not a training log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

def _summary_line(label: str, summary: dict[str, Any]) -> str:
    from cockpit.format import num

    parts = [label + ":"]
    steps = summary.get("steps")
    if steps is None and summary.get("logs") == 0 and summary.get("evaluations") == 0:
        parts.append("no training logs")
    else:
        total = summary.get("total_steps")
        step_text = f"{steps if steps is not None else 0}" + (f"/{total}" if total and total != steps else "") + " steps"
        if summary.get("epoch"):
            step_text += f" (epoch {num(summary['epoch'], 2)})"
        parts.append(step_text + ",")
        grpo = summary.get("reward_first") is not None and summary.get("kind") == "grpo"
        if summary.get("first_loss") is not None and not grpo:  # GRPO's loss is ~0 by construction
            parts.append(f"loss {num(summary['first_loss'])} -> {num(summary['last_loss'])}"
                         f" (min {num(summary['min_loss'])} at step {summary['min_loss_step']}),")
        if summary.get("reward_first") is not None:
            parts.append(f"reward {num(summary['reward_first'])} -> {num(summary['reward_last'])},")
        best = summary.get("best_eval")
        if summary.get("eval_accuracy"):  # GRPO: the last eval's accuracies, and the one best/ keeps
            from cockpit.eval_view import accuracy_text, percent

            parts.append(f"last eval {accuracy_text(summary['eval_accuracy'])},")
            if best:
                parts.append(f"best {best['key'][len('eval_'):].replace('_', ' ')} {percent(best['value'])} at step {best['step']}")
        elif best:
            parts.append(f"best {best['key']} {num(best['value'])} at step {best['step']}")
        elif summary.get("eval_nan"):
            parts.append(f"eval_loss NaN ({summary['eval_nan']} evaluations)")
        elif summary.get("evaluations"):
            parts.append(f"{summary['evaluations']} evaluations")
        else:
            parts.append("no eval")
    return " ".join(parts).rstrip(",")


def _grpo_eval(summary: dict[str, Any], state: Any) -> None:
    """GRPO's evaluations are judged by their answers, not by an eval loss (~0 by construction):
    the summary's best is the evaluation best/ keeps (engine/train/best.py)."""
    from cockpit.eval_view import ACCURACY_KEYS

    last = {k: state.eval[k] for k in ACCURACY_KEYS if state.eval.get(k) is not None}
    if not (state.is_grpo and last):
        return
    summary["eval_accuracy"] = last
    pick = state.best_eval or {}
    key = next((k for k in pick if k != "step"), None)
    summary["best_eval"] = {"key": key, "value": pick[key], "step": pick["step"]} if key else None


def _exit_code(findings: list[Any]) -> int:
    return 1 if any(f.severity == "red" for f in findings) else 0


def doctor(
    path: Path = typer.Argument(..., help="A run dir, an events.jsonl, a trainer_state.json (any name), a JSON list of log entries, or a checkpoint dir."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary and findings as JSON."),
) -> None:
    """Diagnose a training run: what went wrong, the evidence, and the fix."""
    from rich.console import Console

    from cockpit.diagnose import Diagnoser
    from cockpit.diagnose.fixes import clean
    from cockpit.format import severity_style
    from cockpit.doctor_input import NotATrainingLog, load_events

    try:
        events, source = load_events(path)
    except NotATrainingLog as exc:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/] {exc}", markup=True)
        raise typer.Exit(2) from None
    diagnoser = Diagnoser()
    for event in events:
        diagnoser.feed(event)
    diagnoser.finish()
    findings = diagnoser.findings
    summary = diagnoser.summary()
    _grpo_eval(summary, diagnoser.state)
    tests = list(diagnoser.state.tests.values())
    if tests:
        summary["tests"] = tests
    summary = clean(summary)
    code = _exit_code(findings)

    if json_output:
        payload = {"path": str(path), "source": source, "summary": summary,
                   "findings": [clean(f.to_dict()) for f in findings], "exit_code": code}
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        raise typer.Exit(code)

    console = Console(highlight=False)
    console.print(_summary_line(f"{path} ({source})", summary), markup=False, soft_wrap=True)
    if tests:
        from cockpit.eval_view import result_text

        for result in tests:
            console.print(f"test {result_text(result)}", markup=False, soft_wrap=True)
    if not findings:
        console.print("no findings: nothing looks wrong in this log", style="green")
        raise typer.Exit(code)
    from rich.table import Table

    table = Table(show_lines=True, expand=False)
    table.add_column("severity", no_wrap=True)
    table.add_column("code", no_wrap=True)
    table.add_column("step", justify="right", no_wrap=True)
    table.add_column("evidence", ratio=3)
    table.add_column("fix", ratio=2)
    for f in findings:
        style = severity_style(f.severity)
        step = "" if f.first_step is None else str(f.first_step)
        table.add_row(f"[{style}]{f.severity}[/]", f"[{style}]{f.code}[/]", step,
                      _escape(f"{f.title}: {f.evidence_text}"), _escape(f.fix))
    console.print(table)
    reds = sum(1 for f in findings if f.severity == "red")
    ambers = sum(1 for f in findings if f.severity == "amber")
    console.print(f"{reds} red, {ambers} amber, {len(findings) - reds - ambers} info", markup=False)
    raise typer.Exit(code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
