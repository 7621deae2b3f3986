"""`cockpit run`: a training run without the TUI, for terminals, scripts and CI.

Its options are generated from the one options table (engine/config/options.py), their help from
the schema's field docstrings; the run starts through cockpit/launch.py, as the TUI's do.
Exit codes: 0 completed, 1 failed, 2 bad input or config, 130 interrupted.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from engine import run_dir as names
from engine.config.options import OPTIONS, Option

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
_INT_KEYS = ("train.eval_steps",)  # keys whose default is None but whose values are whole numbers


def _option_param(option: Option, defaults: dict[str, Any], helps: dict[str, str]) -> inspect.Parameter:
    """A typer parameter for one row of the options table."""
    section, key = option.key.split(".", 1)
    default = defaults[section][key]
    text = option.help or helps.get(option.key) or option.key
    decls = [option.flag] + ([option.short] if option.short else [])
    if option.is_switch:
        kind, value = bool, typer.Option(False, *decls, help=text)
    elif option.kind is not None:
        kind, value = Optional[option.kind], typer.Option(None, *decls, help=text)
    elif isinstance(default, list) and option.name != "rewards" and option.name != "launcher_args":
        kind, value = Optional[list[str]], typer.Option(None, *decls, help=text)
    elif isinstance(default, bool):
        kind, value = Optional[bool], typer.Option(None, f"{option.flag}/--no-{option.flag[2:]}", help=text)
    elif isinstance(default, int) or option.key in _INT_KEYS:
        kind, value = Optional[int], typer.Option(None, *decls, help=text)
    elif isinstance(default, float):
        kind, value = Optional[float], typer.Option(None, *decls, help=text)
    else:
        kind, value = Optional[str], typer.Option(None, *decls, help=text)
    return inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=value, annotation=kind)


def run(
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Preset name (`cockpit presets list`)."),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config file layered over the preset."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="The run dir (default runs/<name>-<timestamp>)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue RUN_DIR from its last checkpoint."),
    partial_resume: bool = typer.Option(False, "--partial-resume", help="With --resume: go on from a checkpoint whose "
                                        "optimizer, scheduler or RNG state is missing; they start fresh."),
    sets: list[str] = typer.Option([], "--set", "-s", help="Any config key: section.key=value (repeatable)."),
    fail_on: str = typer.Option("never", "--fail-on", help="red: exit 1 when any red finding was raised (for CI)."),
    show_examples: bool = typer.Option(False, "--show-examples", help="Before training, print a few prepared training "
                                       "examples as the collator trains them (trained tokens marked); later: cockpit samples RUN_DIR."),
    **values: Any,
) -> None:
    """Train with no TUI: progress, metrics and findings on the terminal; the exit code says how it ended."""
    from cockpit import launch
    from cockpit.supervisor import RunDirError, RunHandle
    from engine.errors import EngineError
    from engine.run_dir import RunDirBusy

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True)

    def bad(message: str) -> None:
        err.print(f"[red]error:[/] {escape(message)}")
        raise typer.Exit(EXIT_BAD_INPUT)

    if fail_on not in ("never", "red"):
        bad(f"--fail-on takes red or never, got {fail_on!r}")
    switches = {o.name for o in OPTIONS if o.is_switch}
    given = {k: v for k, v in values.items() if v is not None and v != [] and v != "" and not (k in switches and v is False)}
    request = launch.Request(preset=preset, config_file=config_file, values=given, sets=list(sets), output_dir=output_dir)
    handle = None
    if resume is not None:
        flags = [next(o.flag for o in OPTIONS if o.name == k) for k in given]
        flags += (["--preset"] if preset else []) + (["--set"] if sets else [])
        flags += (["--config"] if config_file else []) + (["--output-dir"] if output_dir else [])
        if flags:
            bad(f"--resume continues {resume} with its saved config; drop {', '.join(flags)} (or start a new run)")
        request = launch.Request(resume=resume, partial_resume=partial_resume)
    elif partial_resume:
        bad("--partial-resume goes with --resume RUN_DIR")
    elif preset is None and config_file is None and not given.get("dataset"):
        bad("nothing to train: give --preset NAME (see `cockpit presets list`), --config FILE or --dataset PATH")
    try:
        prepared = launch.prepare(request)
        if resume is not None:  # the run's history, folded silently: findings cover the whole run, nothing is re-printed
            handle = RunHandle.attach(resume)
            handle.catch_up()
        for warning in prepared.warnings:
            err.print(f"[dark_orange]warning:[/] {escape(warning)}")
        for note in prepared.notes:
            out.print(f"[dim]{escape(note)}[/]")
        from cockpit.memory_estimate import print_estimate

        print_estimate(prepared.cfg, out, err)
        handle = launch.start(prepared, handle)
    except (EngineError, RunDirError, RunDirBusy) as exc:
        bad(str(exc))
    run_dir = handle.run_dir
    out.print(f"run dir: {run_dir}")
    from cockpit.diagnose import save_findings
    from cockpit.headless import Stopper, follow, memory_lines, print_finding, print_findings_summary

    stopper = Stopper(handle, out)

    def save() -> None:
        try:
            save_findings(run_dir, handle.diagnoser.findings)
        except OSError as exc:  # a full disk: the findings are still printed; say it once
            err.print(f"[dark_orange]warning:[/] findings not saved: {escape(str(exc))}")

    def on_findings(changed: list[Any]) -> None:
        try:
            for finding in changed:
                if finding.updates == 0 and not out.quiet:
                    print_finding(out, finding)
        except OSError:
            stopper.output_broken()
        save()

    state = follow(handle, out, on_findings=on_findings, stopper=stopper, show_examples=show_examples,
                   shown_warnings=prepared.warnings)
    if state.finished is None:  # the engine died without a word (kill -9): the whole-run rules still judge
        handle.diagnoser.finish()
    code = _conclude(state, handle.returncode, run_dir, resume is None, out, err)
    if stopper.requests and code == EXIT_FAILED and stopper.killed:
        code = EXIT_INTERRUPTED  # killed on a second request: interrupted, as the README says
    if code != EXIT_BAD_INPUT:
        findings = handle.diagnoser.findings
        save()
        try:
            for line in memory_lines((state.finished or {}).get("memory"), state.estimate):
                out.print(line, highlight=False)
            print_findings_summary(out, findings)
        except OSError:
            stopper.output_broken()
        if code == EXIT_OK and fail_on == "red" and any(f.severity == "red" for f in findings):
            err.print("[red]failing: red findings (--fail-on red)[/]")
            code = EXIT_FAILED
    raise typer.Exit(code)


def _signature() -> inspect.Signature:
    """run's signature with one keyword parameter per row of the options table (typer reads it)."""
    from engine.config.schema import defaults, field_help

    base = inspect.signature(run, eval_str=True)
    fixed = [p for p in base.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    defaults_, helps = defaults(), field_help()
    return base.replace(parameters=fixed + [_option_param(o, defaults_, helps) for o in OPTIONS])


run.__signature__ = _signature()  # type: ignore[attr-defined]


def _conclude(state: Any, code: int | None, run_dir: Path, created: bool, out: Console, err: Console) -> int:
    """Print how the run ended and choose the exit code."""
    finished = state.finished or {}
    status = finished.get("status")
    error = state.error
    if code == EXIT_BAD_INPUT or (error and error.get("kind") in ("config", "data") and not state.checkpoints):
        message = (error or {}).get("message") or "the engine refused the config"
        err.print(f"[red]error:[/] {escape(str(message))}")
        if created:
            from cockpit import launch

            launch.discard_if_refused(state, run_dir, code)  # nothing trained: leave no half-made run behind
        return EXIT_BAD_INPUT
    if status == "completed":
        from cockpit.headless import outcome_text

        outputs = finished.get("outputs") or {}
        out.print(f"[green]completed[/] at step {finished.get('step')} {escape(outcome_text(state))}")
        for key in ("final", "best"):
            if outputs.get(key):
                out.print(f"  {key}: {outputs[key]}")
        return EXIT_OK
    if status == "stopped" or code == EXIT_INTERRUPTED:
        err.print(f"[dark_orange]stopped[/] at step {finished.get('step', state.step)}; resume with: cockpit run --resume {run_dir}")
        return EXIT_INTERRUPTED
    if error:
        err.print(f"[red]failed ({error.get('kind')}):[/] {escape(str(error.get('message')))}")
    elif code is not None and code < 0:
        import signal

        err.print(f"[red]failed:[/] the engine was killed ({signal.Signals(-code).name}) at step {state.step}")
    else:
        err.print(f"[red]failed:[/] the engine exited with code {code} without saying why")
    err.print(f"  engine log: {run_dir / names.LOG}")
    if state.checkpoints and (error or {}).get("kind") != "nan":
        err.print(f"  resume with: cockpit run --resume {run_dir}")
    return EXIT_FAILED
