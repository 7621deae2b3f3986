"""`cockpit lint DATA`: check a dataset before any GPU time is spent on it.

Reads the file with the engine's own loader, format detection and token counter (engine/data), so what lint
accepts is what a run accepts. Exit 0: no errors; 1: errors; 2: the file or options are unusable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def lint(
    data: Path = typer.Argument(..., help="Dataset file: JSON, JSONL or CSV."),
    model: Optional[str] = typer.Option(
        None, "--model", help="Tokenizer for the token checks: hub id, local dir or builtin:tiny "
        "(default: the preset's model, else builtin:tiny)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Take data options, max_length "
                                         "and model from this preset."),
    config: Optional[Path] = typer.Option(None, "--config", help="A run config file (YAML)."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="max_length to check "
                                             "truncation against (default: the config's)."),
    output: str = typer.Option("text", "--format", help="Output: text or json."),
    no_tokens: bool = typer.Option(False, "--no-tokens", help="Skip the token checks (no "
                                   "tokenizer is loaded)."),
    sets: list[str] = typer.Option([], "--set", help="section.key=value, e.g. "
                                   "data.prompt_template='{question}'. Repeatable."),
) -> None:
    """Check a dataset: structure, split, tool calls, content and token lengths."""
    from rich.console import Console

    from engine import config as config_mod
    from engine.data import lint as lint_mod

    err = Console(stderr=True, highlight=False)
    if output not in ("text", "json"):
        err.print(f"[red]error:[/] --format {output!r}: use text or json")
        raise typer.Exit(2)
    flags = {"data.path": str(data), "model.name_or_path": model, "train.max_length": max_length}
    try:
        cfg = config_mod.resolve(preset=preset, config_file=config, flags=flags, sets=sets)
    except config_mod.ConfigError as exc:
        err.print(f"[red]error:[/] {exc}", markup=True)
        raise typer.Exit(2)
    if model is None and not preset and not config:
        model = "builtin:tiny"
    model = model or cfg["model"]["name_or_path"] or "builtin:tiny"
    cfg["model"]["name_or_path"] = model
    tokenizer, token_problem = None, None
    if not no_tokens:
        from engine.model.load import load_tokenizer  # the engine's loader: revision, remote code, template

        try:
            tokenizer = load_tokenizer(cfg)
        except Exception as exc:  # no network, no such model: lint the rest, say why
            token_problem = f"cannot load the tokenizer of {model!r}: {str(exc).splitlines()[0]}"
    report = lint_mod.lint_file(data, tokenizer=tokenizer, **lint_mod.options_from_config(cfg))
    if token_problem:
        from engine.data.checks import add_finding

        add_finding(report, "tokenizer_unavailable", detail=token_problem)
    if output == "json":
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print_report(report, model if tokenizer is not None else None)
    raise typer.Exit(report.exit_code)


def print_report(report, model: str | None) -> None:
    """The summary: one block per finding (worst first), token lengths, a length histogram."""
    from rich.console import Console

    from cockpit.format import severity_style

    out = Console(highlight=False, soft_wrap=True)
    if report.fatal:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[red]error:[/] {report.fatal}", markup=True)
        return
    splits = report.stats.get("splits") or {}
    split_text = (", ".join(f"{v} {k}" for k, v in splits.items()) if splits else "no split field")
    out.print(f"[bold]{report.path}[/]: {report.records} records, format "
              f"{report.format or 'unknown'}, {split_text}")
    for f in report.findings:
        style = severity_style(f.severity)
        out.print(f"[{style}]{f.severity:<7}[/] [bold]{f.code}[/] x{f.count}: {f.title}")
        if f.detail:
            out.print(f"         {f.detail}", markup=False)
        if f.places:
            out.print(f"         at {', '.join(_short(p, report.path) for p in f.places)}",
                      markup=False)
        out.print(f"         fix: {f.fix}", markup=False)
    tokens = report.stats.get("tokens")
    if tokens:
        out.print(f"tokens ({model}, max_length {tokens['max_length']}):")
        for part in ("prompt", "completion", "total"):
            s = tokens[part]
            out.print(f"  {part:<10} min {s['min']:>6}  median {s['median']:>6}  "
                      f"p95 {s['p95']:>6}  max {s['max']:>6}")
        keep = tokens["keep_max_length"]
        out.print(f"  truncated {tokens['truncated']}, completion lost {tokens['completion_lost']};"
                  f" max_length {keep['p100']} keeps 100%, {keep['p99']} keeps 99%")
    hist = report.stats.get("histogram") or []
    while hist and hist[0][2] == 0:
        hist = hist[1:]
    if hist:
        unit = "tokens" if tokens else "characters"
        top = max(c for _, _, c in hist) or 1
        out.print(f"length histogram ({unit}):")
        for lo, hi, count in hist:
            out.print(f"  {lo:>6}-{hi:<6} {'#' * max(1 if count else 0, round(30 * count / top)):<30}"
                      f" {count}", markup=False)
    n_err, n_warn = len(report.errors), len(report.warnings)
    verdict = f"[{severity_style('error')}]errors[/]" if n_err else f"[{severity_style('warning')}]warnings[/]" if n_warn else "[green]clean[/]"
    out.print(f"{verdict}: {n_err} error checks, {n_warn} warning checks")


def _short(place: str, path: str) -> str:
    """`file:12` -> `line 12`, `file[3]` -> `record [3]`: the file is named once, above."""
    if not place.startswith(path):
        return place
    rest = place[len(path):]
    return f"line {rest[1:]}" if rest.startswith(":") else f"record {rest}"
