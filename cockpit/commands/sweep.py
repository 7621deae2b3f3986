"""`cockpit sweep`: many runs of one recipe that differ in a few keys (a grid, or an Optuna search),
one run dir per trial under sweeps/<name>-<timestamp>/, pruned by eval and by red findings, ending
in a comparison table.

The run options are those of `cockpit run` (one options table); here each takes a list or a range
too (`--lr 1e-5,5e-6`), as `--set` does. Exit codes: 0 a trial completed, 1 none did, 2 bad input
(before any trial starts), 130 interrupted (the same command, or --resume, continues it).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from engine.config.options import OPTIONS, Option

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
_LIST_OPTIONS = ("tag", "reward")


def _option_param(option: Option, helps: dict[str, str]) -> inspect.Parameter:
    """A typer parameter for one row of the options table: text, so that it can hold a list or a range."""
    text = (option.help or helps.get(option.key) or option.key)
    decls = [option.flag] + ([option.short] if option.short else [])
    if option.is_switch:
        kind, value = bool, typer.Option(False, *decls, help=text)
    elif option.name in _LIST_OPTIONS:
        kind, value = Optional[list[str]], typer.Option(None, *decls, help=text)
    else:
        kind, value = Optional[str], typer.Option(None, *decls, help=text + " A list (a,b,c) or a range sweeps it.")
    return inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=value, annotation=kind)


class ConsoleReporter:
    """A sweep on the terminal: one line per trial event, findings as they are raised, a progress bar per trial."""

    def __init__(self, out: Console):
        self.out = out
        self.progress = None
        self.tasks: dict[int, Any] = {}
        if out.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                     TextColumn("{task.fields[latest]}"), console=out, transient=True)

    def trial_line(self, run: Any, text: str, style: str = "") -> None:
        body = f"[{style}]{escape(text)}[/]" if style else escape(text)
        self.out.print(f"[bold]{run.name}[/]  {body}", highlight=False)

    def finding(self, run: Any, finding: Any) -> None:
        if finding.severity not in ("red", "amber"):
            return
        from cockpit.format import severity_style

        step = f" at step {finding.step}" if finding.step is not None else ""
        self.out.print(f"[bold]{run.name}[/]  [{severity_style(finding.severity)}]{finding.severity.upper()} {finding.code}[/]{step}: "
                       f"{escape(finding.title)}. {escape(finding.evidence_text)}", highlight=False)

    def tick(self, runs: list[Any]) -> None:
        if self.progress is None:
            return
        from cockpit.format import metric

        if not self.tasks:
            self.progress.start()
        live = {run.number for run in runs}
        for number in [n for n in self.tasks if n not in live]:
            self.progress.remove_task(self.tasks.pop(number))
        for run in runs:
            state = run.handle.state if run.handle is not None else None
            if state is None:
                continue
            if run.number not in self.tasks:
                self.tasks[run.number] = self.progress.add_task(run.name, total=None, latest="")
            self.progress.update(self.tasks[run.number], total=state.total_steps, completed=state.step or 0,
                                 latest=f"loss {metric(state.last_loss)}")
        if not self.tasks:
            self.progress.stop()

    def close(self) -> None:
        if self.progress is not None and self.tasks:
            self.progress.stop()


def sweep(
    file: Optional[Path] = typer.Argument(None, help="A sweep file (YAML): preset, set, params with values or ranges, trials, "
                                          "sampler, objective, pruner. The options below go over it."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Preset every trial starts from (`cockpit presets list`)."),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config file layered over the preset."),
    sets: list[str] = typer.Option([], "--set", "-s", help="section.key=value for every trial; section.key=a,b,c or a range "
                                   "('train.learning_rate=log-uniform 1e-6..1e-4', 'lora.r=int 8..64 step 8') to sweep it."),
    trials: Optional[int] = typer.Option(None, "--trials", "-n", help="How many trials: a search's count (default 20), a grid's cap."),
    max_trials: Optional[int] = typer.Option(None, "--max-trials", help="Allow a grid of more than 50 trials, running at most this many."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="grid (the default for lists), random, or tpe (the default with ranges)."),
    objective: Optional[str] = typer.Option(None, "--objective", help="Eval metric to optimise: eval_loss (default); GRPO: "
                                            "eval_answer_accuracy when its data has answers, else eval_reward."),
    direction: Optional[str] = typer.Option(None, "--direction", help="minimize or maximize (default: from the objective's name)."),
    pruner: Optional[str] = typer.Option(None, "--pruner", help="Optuna pruner on the eval reports: median (default), hyperband, "
                                         "successive-halving, none (options: in a sweep file)."),
    sampler_seed: Optional[int] = typer.Option(None, "--sampler-seed", help="Seed of the sampler (the grid's order, the search's draws)."),
    sweep_name: Optional[str] = typer.Option(None, "--sweep-name", help="Name of the sweep dir (default: the preset's run name)."),
    gpus_per_trial: Optional[int] = typer.Option(None, "--gpus-per-trial", help="GPUs each trial trains on, of those --gpus gives "
                                                 "the sweep (all visible by default); trials run side by side on the rest "
                                                 "(default 1; on a CPU machine one trial at a time)."),
    sweeps_dir: Path = typer.Option(Path("sweeps"), "--sweeps-dir", help="Where new sweep dirs are made."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="The sweep dir (default sweeps/<name>-<timestamp>)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue SWEEP_DIR: keep finished trials, resume the interrupted one, run the rest."),
    join: Optional[Path] = typer.Option(None, "--join", help="Add this machine as a worker of SWEEP_DIR (on a shared filesystem)."),
    new: bool = typer.Option(False, "--new", help="Start a new sweep even when an unfinished one of the same command exists."),
    **values: Any,
) -> None:
    """Run a grid or a search over config keys; one run dir per trial, pruned early, compared at the end."""
    from cockpit.sweep.space import SweepError

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True)
    if not out.is_terminal:
        out.width = max(out.width, 160)  # a log or a pipe: the table keeps its rows on one line

    def bad(message: str) -> None:
        err.print(f"[red]error:[/] {escape(message)}")
        raise typer.Exit(EXIT_BAD_INPUT)

    switches = {o.name for o in OPTIONS if o.is_switch}
    given = {k: v for k, v in values.items() if v is not None and v != [] and v != "" and not (k in switches and v is False)}
    cli = {"preset": preset, "config_file": config_file, "values": given, "sets": list(sets), "trials": trials, "max_trials": max_trials,
           "sampler": sampler, "objective": objective, "direction": direction, "pruner": pruner, "seed": sampler_seed, "name": sweep_name,
           "gpus_per_trial": gpus_per_trial}
    try:
        sweep_dir, spec, joined = _sweep_dir(file, cli, resume, join, new, sweeps_dir, output_dir, out)
    except SweepError as exc:
        bad(str(exc))
    from cockpit.sweep import devices
    from cockpit.sweep.spec import describe
    from cockpit.sweep.worker import Worker

    found, nvml = devices.visible_devices(spec.gpus)
    slots = devices.slots(found, spec.gpus_per_trial, nvml)
    out.print(f"sweep dir: {sweep_dir}")
    out.print(f"[dim]{escape(describe(spec))}; {len(slots)} trial{'s' if len(slots) > 1 else ''} at a time ({', '.join(s.label for s in slots)})[/]")
    reporter = ConsoleReporter(out)
    worker = Worker(sweep_dir, spec, slots, reporter, join=joined)
    try:
        worker.run()
    finally:
        reporter.close()
    code = _conclude(sweep_dir, worker, out, err)
    raise typer.Exit(code)


def _sweep_dir(file: Path | None, cli: dict[str, Any], resume: Path | None, join: Path | None, new: bool, sweeps_dir: Path,
               output_dir: Path | None, out: Console):
    """The sweep dir to work on (new, continued or joined) and its spec; SweepError for bad input."""
    from cockpit.sweep import claims, devices
    from cockpit.sweep import sweep_dir as layout
    from cockpit.sweep.space import SweepError
    from cockpit.sweep.checks import resolve
    from cockpit.sweep.spec import from_command
    from cockpit.sweep.worker import finished

    visible = len(devices.visible_devices()[0])
    existing = resume or join
    if existing is not None:
        if resume is not None and join is not None:
            raise SweepError("--resume and --join both name a sweep dir; give one")
        given = [k for k, v in cli.items() if v not in (None, [], {}, False)] + (["FILE"] if file else [])
        if given or output_dir is not None or new:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise SweepError(f"{'--resume' if resume else '--join'} continues {existing} with its saved sweep; drop {flags or '--output-dir/--new'}")
        spec = layout.read_spec(existing)
        live = claims.live_workers(existing)
        if resume is not None and live:
            raise SweepError(f"{existing} is running (pid {live[0].get('pid')} on {live[0].get('host')}); add a worker with "
                             f"cockpit sweep --join {existing}, or follow it with cockpit compare {existing}")
        resolve(spec, visible)  # its data and paths must hold on this machine too
        if finished(existing, spec):
            out.print(f"[dim]{existing}: every trial has ended; nothing to run[/]")
        return Path(existing), spec, join is not None
    spec = from_command(file, cli)
    base = resolve(spec, visible)
    if not new and output_dir is None:
        for candidate in layout.same_sweeps(sweeps_dir, spec.fingerprint()):
            if finished(candidate, spec):
                continue
            live = claims.live_workers(candidate)
            if live:
                raise SweepError(f"{candidate} is running this same sweep (pid {live[0].get('pid')} on {live[0].get('host')}); add a "
                                 f"worker with cockpit sweep --join {candidate}, or start another with --new")
            out.print(f"continuing {candidate} (the same sweep, unfinished; --new starts another)")
            return candidate, spec, False
    return layout.create(spec, base["run"]["name"], sweeps_dir, output_dir), spec, False


def _conclude(sweep_dir: Path, worker: Any, out: Console, err: Console) -> int:
    """The comparison table, and the exit code."""
    from cockpit.sweep.compare import compare_sweep, table

    comparison = compare_sweep(sweep_dir)
    try:
        out.print(table(comparison, title=f"sweep {sweep_dir}", base=sweep_dir))
        best = comparison.best
        if best is not None:
            out.print(f"best: {best.name} ({comparison.objective} {best.best:.4g} at step {best.best_step}); its config: "
                      f"cockpit compare {sweep_dir} --best-config > best.yaml")
    except OSError:
        pass  # a closed stdout: the study and the run dirs hold everything
    if worker.stopping:
        err.print(f"[dark_orange]stopped[/]; continue with: cockpit sweep --resume {sweep_dir} (or the same command)")
        return EXIT_INTERRUPTED
    return EXIT_OK if any(r.status == "completed" for r in comparison.rows) else EXIT_FAILED


def _signature() -> inspect.Signature:
    """sweep's signature with one keyword parameter per row of the options table (typer reads it)."""
    from engine.config.schema import field_help

    base = inspect.signature(sweep, eval_str=True)
    fixed = [p for p in base.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    helps = field_help()
    return base.replace(parameters=fixed + [_option_param(o, helps) for o in OPTIONS])


sweep.__signature__ = _signature()  # type: ignore[attr-defined]
