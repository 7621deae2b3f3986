"""`cockpit run`: a training run without the TUI, for terminals, scripts and CI.

Exit codes: 0 completed, 1 failed, 2 bad input or config, 130 interrupted.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

# First-class flags -> config keys. Everything else: --set section.key=value.
FLAG_KEYS = {
    "dataset": "data.path",
    "eval_dataset": "data.eval_path",
    "model": "model.name_or_path",
    "name": "run.name",
    "epochs": "train.num_train_epochs",
    "max_steps": "train.max_steps",
    "batch_size": "train.per_device_train_batch_size",
    "grad_accum": "train.gradient_accumulation_steps",
    "lr": "train.learning_rate",
    "weight_decay": "train.weight_decay",
    "warmup_ratio": "train.warmup_ratio",
    "max_length": "train.max_length",
    "eval_split": "data.eval_split",
    "eval_steps": "train.eval_steps",
    "save_steps": "train.save_steps",
    "seed": "train.seed",
    "lora_r": "lora.r",
    "lora_alpha": "lora.alpha",
    "loss_on": "data.loss_on",
    "report_to": "train.report_to",
    "optim": "train.optim",
    "longest_first": "train.longest_first",
    "gpus": "run.gpus",
    "distributed": "run.distributed",
}


def build_config(preset: str | None, config_file: Path | None, flags: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """Resolve the layers into one config; raises engine.config.ConfigError."""
    from engine import config as config_mod

    dotted = {FLAG_KEYS[k]: v for k, v in flags.items() if k in FLAG_KEYS and v is not None}
    if flags.get("full"):
        dotted["model.finetune"] = "full"
    if flags.get("qlora"):
        dotted["model.finetune"] = "qlora"
    if flags.get("bf16"):
        dotted["model.dtype"] = "bf16"
    if flags.get("fp16"):
        dotted["model.dtype"] = "fp16"
    if flags.get("reward"):
        # path.py:function, the path relative to where the command runs
        dotted["grpo.reward_files"] = [config_mod.resolve_reward_file(spec, Path.cwd()) for spec in flags["reward"]]
    if flags.get("launcher_args"):
        import shlex

        dotted["run.launcher_args"] = shlex.split(flags["launcher_args"])
    if isinstance(dotted.get("data.path"), Path):
        dotted["data.path"] = str(dotted["data.path"])
    if isinstance(dotted.get("data.eval_path"), Path):
        dotted["data.eval_path"] = str(dotted["data.eval_path"])
    return config_mod.resolve(preset=preset, config_file=config_file, flags=dotted, sets=sets)


def check_data(cfg: dict[str, Any]) -> list[str]:
    """Read and lint the data the way the engine will, before any model loads; returns the warnings.

    Raises EngineError (kind data) for data that would fail or train nothing.
    """
    from engine import lint  # light: the loader and lint (without a tokenizer) are standard library only
    from engine.errors import EngineError
    from engine.sft import load_data

    if cfg["run"]["type"] == "grpo":  # prompts + ground truth, e.g. through grpo.answer_field
        from engine.grpo_data import load as load_data
    splits = load_data(cfg)
    warnings = list(splits.warnings)
    if cfg["run"]["type"] == "grpo":
        return warnings
    for path in filter(None, (cfg["data"]["path"], cfg["data"]["eval_path"])):
        report = lint.lint_file(path, **{**lint.options_from_config(cfg), "max_length": None})
        if report.errors:
            first = report.errors[0]
            more = f" (and {len(report.errors) - 1} more problems)" if len(report.errors) > 1 else ""
            raise EngineError("data", f"{first.line()}{more}; `cockpit lint {path}` lists them all")
    # Lint's warnings are printed by the engine's dataset event, with the token figures.
    return warnings


def check_launch(cfg: dict[str, Any]) -> list[str]:
    """Refuse a multi-process launch that cannot start (EngineError kind config); notes to print otherwise."""
    from engine import distributed
    from engine.errors import EngineError

    run = cfg["run"]
    gpus, strategy = run["gpus"], run["distributed"]
    if gpus <= 1 and not run["launcher_args"]:
        return []
    distributed.check_strategy(cfg)
    from cockpit.supervisor import MULTI_NODE_OPTIONS
    from engine.estimate import visible_gpus

    multi_node = any(str(a).split("=")[0] in MULTI_NODE_OPTIONS for a in run["launcher_args"])

    visible = len(visible_gpus())
    here = f"{gpus} process{'es' if gpus > 1 else ''} on this machine"
    if multi_node:
        here += f", joined to the others by torchrun ({' '.join(run['launcher_args'])})"
    if visible == 0:
        return [f"no CUDA GPU here: {here}, on the CPU, talking over gloo"]
    if gpus > visible:  # per machine, also when several machines join
        raise EngineError("config", f"--gpus {gpus} but {visible} GPU(s) are visible; use --gpus {visible} (or CUDA_VISIBLE_DEVICES)")
    return [f"{here} under torchrun, {strategy}"]


def run(
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Preset name (`cockpit presets list`)."),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config file layered over the preset."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", "-d", help="Training data: JSON, JSONL or CSV."),
    eval_dataset: Optional[Path] = typer.Option(None, "--eval-dataset", help="A separate eval file."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Hub id, local directory, or builtin:tiny."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="The run dir (default runs/<name>-<timestamp>)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue RUN_DIR from its last checkpoint."),
    sets: list[str] = typer.Option([], "--set", "-s", help="Any config key: section.key=value (repeatable)."),
    name: Optional[str] = typer.Option(None, "--name", help="Run name (the run dir's prefix)."),
    epochs: Optional[float] = typer.Option(None, "--epochs", help="train.num_train_epochs"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="train.max_steps"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="train.per_device_train_batch_size"),
    grad_accum: Optional[int] = typer.Option(None, "--grad-accum", help="train.gradient_accumulation_steps"),
    lr: Optional[float] = typer.Option(None, "--lr", help="train.learning_rate"),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="train.weight_decay"),
    warmup_ratio: Optional[float] = typer.Option(None, "--warmup-ratio", help="train.warmup_ratio"),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="train.max_length"),
    eval_split: Optional[float] = typer.Option(None, "--eval-split", help="data.eval_split"),
    eval_steps: Optional[int] = typer.Option(None, "--eval-steps", help="train.eval_steps"),
    save_steps: Optional[int] = typer.Option(None, "--save-steps", help="train.save_steps"),
    seed: Optional[int] = typer.Option(None, "--seed", help="train.seed"),
    lora_r: Optional[int] = typer.Option(None, "--lora-r", help="lora.r"),
    lora_alpha: Optional[int] = typer.Option(None, "--lora-alpha", help="lora.alpha"),
    loss_on: Optional[str] = typer.Option(None, "--loss-on", help="data.loss_on: completion, assistant or all."),
    full: bool = typer.Option(False, "--full", help="Full fine-tuning instead of LoRA."),
    qlora: bool = typer.Option(False, "--qlora", help="QLoRA: 4-bit base model (CUDA)."),
    bf16: bool = typer.Option(False, "--bf16", help="Force bf16 (default: chosen automatically)."),
    fp16: bool = typer.Option(False, "--fp16", help="Force fp16 (default: chosen automatically)."),
    report_to: Optional[str] = typer.Option(None, "--report-to", help="none, tensorboard, wandb or trackio."),
    optim: Optional[str] = typer.Option(None, "--optim", help="train.optim: adamw_torch, or adamw_8bit / paged_adamw_8bit (bitsandbytes, CUDA)."),
    longest_first: Optional[bool] = typer.Option(None, "--longest-first/--no-longest-first", help="train.longest_first: the longest batch first, so a run that will not fit fails in its first step."),
    reward: Optional[list[str]] = typer.Option(None, "--reward", help="GRPO: your reward function as path.py:function (repeatable); grpo.reward_files."),
    gpus: Optional[int] = typer.Option(None, "--gpus", help="run.gpus: processes, one per GPU; more than 1 runs under torchrun."),
    distributed: Optional[str] = typer.Option(None, "--distributed", help="run.distributed: ddp, fsdp, deepspeed-zero2 or deepspeed-zero3."),
    launcher_args: Optional[str] = typer.Option(None, "--launcher-args", help="torchrun options for several machines, e.g. '--nnodes=2 --node-rank=0 --master-addr=HOST --master-port=29500'."),
    fail_on: str = typer.Option("never", "--fail-on", help="red: exit 1 when any red finding was raised (for CI)."),
) -> None:
    """Train with no TUI: progress, metrics and findings on the terminal; the exit code says how it ended."""
    from engine import config as config_mod
    from engine.errors import EngineError

    from cockpit.supervisor import RunDirError, RunHandle, new_run_dir, write_config

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True)
    flags = {k: v for k, v in locals().items() if k in FLAG_KEYS or k in ("full", "qlora", "bf16", "fp16", "reward", "launcher_args")}

    def bad(message: str) -> None:
        err.print(f"[red]error:[/] {message}")
        raise typer.Exit(EXIT_BAD_INPUT)

    if fail_on not in ("never", "red"):
        bad(f"--fail-on takes red or never, got {fail_on!r}")
    created = False
    if resume is not None:
        given = [k for k, v in flags.items() if v not in (None, False)] + (["--preset"] if preset else []) + (["--set"] if sets else [])
        if config_file is not None or output_dir is not None:
            given.append("--config/--output-dir")
        if given:
            bad(f"--resume continues {resume} with its saved config; drop {', '.join(given)} (or start a new run)")
        run_dir = resume
        if not (run_dir / "config.yaml").is_file():
            bad(f"{run_dir} is not a run dir (no config.yaml); give the dir `cockpit run` printed")
        try:
            cfg = config_mod.load_run_config(run_dir)
            check_data(cfg)
            check_launch(cfg)
        except (config_mod.ConfigError, EngineError) as exc:
            bad(str(exc))
    else:
        if preset is None and config_file is None and dataset is None:
            bad("nothing to train: give --preset NAME (see `cockpit presets list`), --config FILE or --dataset PATH")
        try:
            cfg = build_config(preset, config_file, flags, sets)
            for warning in check_data(cfg):
                err.print(f"[yellow]warning:[/] {warning}")
            for note in check_launch(cfg):
                out.print(f"[dim]{note}[/]")
            run_dir = new_run_dir(cfg, output_dir)
        except (config_mod.ConfigError, EngineError, RunDirError) as exc:
            bad(str(exc))
        write_config(run_dir, cfg)
        created = True

    from cockpit.memory_estimate import print_estimate

    print_estimate(cfg, out, err)
    out.print(f"run dir: {run_dir}")
    handle = RunHandle.start(run_dir, resume=resume is not None)
    from cockpit.diagnose import Diagnoser, save_findings
    from cockpit.headless import follow, memory_lines, print_finding, print_findings_summary

    diagnoser = Diagnoser()
    if resume is not None:  # findings cover the whole run, from its first event
        from engine.events import read_events

        for event in read_events(run_dir / "events.jsonl"):
            diagnoser.feed(event)

    def on_event(event: dict[str, Any]) -> None:
        changed = diagnoser.feed(event)
        for finding in changed:
            if finding.updates == 0:
                print_finding(out, finding)
        if changed:
            save_findings(run_dir, diagnoser.findings)

    state = follow(handle, out, on_event=on_event)
    code = _conclude(state, handle.returncode, run_dir, created, out, err)
    if code != EXIT_BAD_INPUT:
        for line in memory_lines((state.finished or {}).get("memory"), state.estimate):
            out.print(line, highlight=False)
        save_findings(run_dir, diagnoser.findings)
        print_findings_summary(out, diagnoser.findings)
        if code == EXIT_OK and fail_on == "red" and any(f.severity == "red" for f in diagnoser.findings):
            err.print("[red]failing: red findings (--fail-on red)[/]")
            code = EXIT_FAILED
    raise typer.Exit(code)


def _conclude(state: Any, code: int | None, run_dir: Path, created: bool, out: Console, err: Console) -> int:
    """Print how the run ended and choose the exit code."""
    finished = state.finished or {}
    status = finished.get("status")
    error = state.error
    if code == EXIT_BAD_INPUT or (error and error.get("kind") in ("config", "data") and not state.checkpoints):
        message = (error or {}).get("message") or "the engine refused the config"
        err.print(f"[red]error:[/] {message}")
        if created and not state.checkpoints:
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing trained: leave no half-made run behind
        return EXIT_BAD_INPUT
    if status == "completed":
        outputs = finished.get("outputs") or {}
        first, last = state.first_loss, state.last_loss
        loss = f"loss {first:.4g} -> {last:.4g}" if first is not None and last is not None else ""
        out.print(f"[green]completed[/] at step {finished.get('step')} {loss}")
        for key in ("final", "best"):
            if outputs.get(key):
                out.print(f"  {key}: {outputs[key]}")
        return EXIT_OK
    if status == "stopped" or code == EXIT_INTERRUPTED:
        out.print(f"[yellow]stopped[/] at step {finished.get('step', state.step)}; resume with: cockpit run --resume {run_dir}")
        return EXIT_INTERRUPTED
    if error:
        from rich.markup import escape  # allocator messages carry [brackets] that rich would eat

        err.print(f"[red]failed ({error.get('kind')}):[/] {escape(str(error.get('message')))}")
    else:
        err.print(f"[red]failed:[/] the engine exited with code {code} without saying why")
    err.print(f"  engine log: {run_dir / 'engine.log'}")
    return EXIT_FAILED
