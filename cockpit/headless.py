"""`cockpit run` without a TUI: a progress bar and one dense line per log, read from events.jsonl."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Collection
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cockpit.eval_view import ACCURACY_KEYS, accuracy_text
from cockpit.format import gib, metric, severity_style
from cockpit.logs import normalize_metrics
from cockpit.state import GRPO_KEYS, RunState
from cockpit.supervisor import RunHandle
from engine.events import number

POLL_S = 0.25


def metrics_line(event: dict[str, Any]) -> str:
    """One dense line per training log: step, epoch, loss, grad_norm, lr, tokens/s (GRPO: its rewards)."""
    logs = normalize_metrics(event)
    head = [f"step {event.get('step')}/{event.get('total_steps') or '?'}", f"epoch {metric(event.get('epoch'), '.2f')}"]
    if any(k in logs for k in GRPO_KEYS):
        body = grpo_parts(logs)
    else:
        body = [f"loss {metric(logs.get('loss'))}", f"grad_norm {metric(logs.get('grad_norm'))}"]
    parts = head + body + [f"lr {metric(logs.get('learning_rate'), '.3g')}"]
    if event.get("tokens_per_second") is not None:
        parts.append(f"tok/s {metric(event.get('tokens_per_second'), '.0f')}")
    return "  ".join(parts)


def grpo_parts(logs: dict[str, Any], prefix: str = "") -> list[str]:
    """GRPO's signal (its loss is ~0 by construction): reward in total and per function, its spread,
    KL, completion length and the share cut at max_completion_length."""
    fns = [(k[len(prefix) + len("rewards/"):-len("/mean")], v) for k, v in logs.items()
           if k.startswith(prefix + "rewards/") and k.endswith("/mean")]
    reward = f"reward {metric(logs.get(prefix + 'reward'))}"
    if fns:
        reward += " (" + ", ".join(f"{name} {metric(v)}" for name, v in fns) + ")"
    parts = [reward, f"std {metric(logs.get(prefix + 'reward_std'))}"]
    if logs.get(prefix + "kl") is not None:
        parts.append(f"kl {metric(logs.get(prefix + 'kl'))}")
    length, clipped = logs.get(prefix + "completions/mean_length"), number(logs.get(prefix + "completions/clipped_ratio"))
    if length is not None:
        parts.append(f"completion {metric(length, '.0f')} tok" + (f", {clipped:.0%} clipped" if clipped is not None else ""))
    return parts


def eval_line(event: dict[str, Any], evaluated: int | None = None) -> str:
    """One line per evaluation: its losses (SFT), or GRPO's answer and format accuracy and reward."""
    head = f"eval  step {event.get('step')}  "
    if any(k in event for k in ACCURACY_KEYS):
        parts = [accuracy_text(event)]
        if event.get("eval_reward") is not None:
            parts.append(f"reward {metric(event.get('eval_reward'))}")
        if evaluated:
            parts.append(f"on {evaluated} prompts")
        return head + "  ".join(parts)
    losses = [f"{k} {metric(v)}" for k, v in event.items() if k.startswith("eval_") and k.endswith("loss")]
    return head + "  ".join(losses or ["(no loss)"])


def dataset_lines(event: dict[str, Any], shown: Collection[str] = ()) -> list[str]:
    """The data line per split; `shown`: warnings already printed (by the launch's own data check)."""
    out = []
    grpo = event.get("run_type") == "grpo"
    for name, split in (event.get("splits") or {}).items():
        tokens = split.get("tokens") or {}
        if grpo:  # prompts only: their length against grpo.max_prompt_length, and what was dropped
            lengths = tokens.get("prompt") or {}
            out.append(
                f"data  {name}: {split.get('records')} prompts ({event.get('format')}), prompt tokens median {lengths.get('median')} "
                f"p95 {lengths.get('p95')} max {lengths.get('max')}, dropped {split.get('dropped', 0)} over max_prompt_length {event.get('max_length')}"
            )
            continue
        total = tokens.get("total") or {}
        out.append(
            f"data  {name}: {split.get('records')} records ({event.get('format')}), tokens median {total.get('median')} "
            f"p95 {total.get('p95')} max {total.get('max')}, truncated {split.get('truncated', 0)} at max_length {event.get('max_length')}"
        )
    out.extend(f"[yellow]warning[/] {escape(w)}" for w in event.get("warnings") or [] if w not in shown)
    return out


STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class Stopper:
    """Every way a user (or the system) asks `cockpit run` to stop ends in the same graceful stop.

    SIGINT (Ctrl-C), SIGTERM (a timeout, a scheduler), SIGHUP (the SSH session closed) and a broken
    stdout pipe (`| head`) ask the engine for a checkpoint and a clean end; the request is sent
    before anything is printed, so a dead terminal cannot lose it. A second SIGINT or SIGTERM kills.
    """

    def __init__(self, handle: RunHandle, console: Console):
        self.handle, self.console = handle, console
        self.requests = 0
        self.killed = False
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}
        console.on_broken_pipe = self.output_broken  # rich would raise SystemExit(1) and orphan the engine

    def __enter__(self) -> Stopper:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.requests and signum != getattr(signal, "SIGHUP", None):
            self.killed = True
            self.handle.kill()
            return
        self.stop(f"{name}: stopping, saving a checkpoint first ({'Ctrl-C' if name == 'SIGINT' else 'the signal'} again to kill)")

    def stop(self, why: str) -> None:
        self.requests += 1
        if self.requests > 1:
            return
        self.reason = why
        self.handle.request_stop()
        note(why)

    def output_broken(self) -> None:
        """stdout is gone (a closed pipe): stop the run, and send what is left to nowhere."""
        import os

        if self.console.quiet:
            return
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
        except OSError:
            pass
        self.console.quiet = True
        self.stop("stdout closed: stopping the run, saving a checkpoint first")


def note(text: str) -> None:
    """One line on stderr that never raises (the terminal may be gone)."""
    import sys

    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def follow(
    handle: RunHandle,
    console: Console,
    on_findings: Callable[[list[Any]], None] | None = None,
    stopper: Stopper | None = None,
    show_examples: bool = False,
    shown_warnings: Collection[str] = (),
) -> RunState:
    """Render a run until its engine exits; returns the handle's state. Stop requests: `Stopper`.

    Only fresh events are printed: what the handle folded before (a resumed run's history) and the
    steps a resume repeats are not shown again. `show_examples`: print the prepared training
    examples when the engine writes them (before training). `shown_warnings`: data warnings the
    caller printed already.
    """
    state = handle.state
    stopper = stopper or Stopper(handle, console)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epoch {task.fields[epoch]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[latest]}"),
        console=console,
        transient=False,
        refresh_per_second=4,
    )
    task = progress.add_task("starting", total=None, epoch="-", latest="", completed=state.step or 0)

    def drain() -> None:
        for event, fresh, changed in handle.poll():
            if fresh and not console.quiet:
                try:
                    _render_event(event, progress.console, state, show_examples, shown_warnings)
                except OSError:  # BrokenPipeError: `| head` has read enough
                    stopper.output_broken()
            if changed and on_findings is not None:
                on_findings(changed)

    with stopper:
        try:
            progress.start()
        except OSError:
            stopper.output_broken()
        try:
            while True:
                alive = handle.is_running()
                drain()
                latest = latest_text(state) if state.metrics else ""
                progress.update(
                    task,
                    description=state.phase,
                    total=state.total_steps,
                    completed=state.step or 0,
                    epoch=metric(state.epoch, ".2f") if state.epoch is not None else "-",
                    latest=latest,
                )
                if not alive:
                    drain()  # the last lines may land between the poll and the exit
                    break
                time.sleep(POLL_S)
        finally:
            try:
                progress.stop()
            except OSError:
                stopper.output_broken()
        handle.wait(timeout=5)
    return state


def latest_text(state: RunState) -> str:
    """The progress bar's tail: the latest loss and eval loss; GRPO's reward and eval accuracy."""
    if state.is_grpo:
        return f"reward {metric(state.metrics.get('reward'))} {accuracy_text(state.eval)}".rstrip()
    return f"loss {metric(state.metrics.get('loss'))} eval {metric(state.eval.get('eval_loss'))}"


def outcome_text(state: RunState) -> str:
    """How training moved, for the closing line: loss first -> last; GRPO's reward and last eval accuracy."""
    if state.is_grpo:
        rewards = state.series.get("reward")
        moved = f"reward {metric(rewards.first)} -> {metric(rewards.last)}" if rewards is not None and len(rewards) else ""
        return f"{moved} {accuracy_text(state.eval)}".strip()
    first, last = state.first_loss, state.last_loss
    return f"loss {first:.4g} -> {last:.4g}" if first is not None and last is not None else ""


def _render_event(event: dict[str, Any], console: Console, state: RunState, show_examples: bool = False,
                  shown_warnings: Collection[str] = ()) -> None:
    kind = event.get("type")
    if kind == "metrics":
        console.print(metrics_line(event), highlight=False, markup=False)
    elif kind == "eval":
        evaluated = ((state.dataset or {}).get("splits") or {}).get("eval", {}).get("records") if state.is_grpo else None
        console.print(eval_line(event, evaluated), highlight=False, markup=False)
    elif kind == "dataset":
        for line in dataset_lines(event, shown_warnings):
            console.print(line, highlight=False)
    elif kind == "samples" and show_examples:
        from cockpit.samples_view import print_samples, samples_title

        shown = [s for s in event.get("samples") or [] if isinstance(s, dict)]
        console.rule(samples_title(shown), style="dim")
        print_samples(console, shown)
        console.rule(style="dim")
    elif kind == "status" and event.get("message"):
        console.print(f"[dim]{event.get('phase')}: {event.get('message')}[/]", highlight=False)
    elif kind == "checkpoint":
        console.print(f"[dim]checkpoint saved: {event.get('path')}[/]", highlight=False)


def memory_lines(report: dict[str, Any] | None, estimate: dict[str, Any] | None = None) -> list[str]:
    """The end-of-run memory report: GPU, total, reserved at the start, peak, what training added;
    and how close the pre-run estimate came (its allocated bytes against torch's peak allocated)."""
    if not report:
        return []
    ranks = report.get("ranks") or []
    if report.get("device") == "cpu":
        peaks = [r.get("peak_rss_mb") for r in ranks if isinstance(r.get("peak_rss_mb"), (int, float))]
        if len(peaks) > 1:
            return [f"memory: no GPU; {len(peaks)} processes, peak RSS {', '.join(gib(p) for p in peaks)}"]
        return [f"memory: no GPU; peak RSS {gib(report.get('peak_rss_mb'))}"]
    lines = [
        f"memory: {report.get('device')}, {gib(report.get('total_mb'))}; {gib(report.get('start_reserved_mb'))} reserved at the start, "
        f"peak {gib(report.get('peak_reserved_mb'))} ({report.get('peak_pct')}%), training added {gib(report.get('training_mb'))} "
        f"({report.get('training_pct')}%)"
    ]
    rank_peaks = [r.get("peak_reserved_mb") for r in ranks if isinstance(r.get("peak_reserved_mb"), (int, float))]
    if len(rank_peaks) > 1:
        lines.append(f"  peak per GPU (rank 0..{len(rank_peaks) - 1}): {', '.join(gib(p) for p in rank_peaks)}")
    predicted, measured = (estimate or {}).get("allocated_bytes"), report.get("peak_allocated_mb")
    if isinstance(predicted, (int, float)) and isinstance(measured, (int, float)) and measured > 0:
        ratio = predicted / (measured * 2**20)
        lines.append(f"  estimate {gib(predicted / 2**20)} allocated vs measured peak {gib(measured)}: {ratio:.2f}x")
    return lines


def print_finding(console: Console, finding: Any) -> None:
    """A finding as it is raised: one line in its severity's colour, the fix on the next."""
    style = severity_style(finding.severity)
    step = f" at step {finding.step}" if finding.step is not None else ""
    console.print(f"[{style}]{finding.severity.upper():<5} {finding.code}[/]{step}: {finding.title}. {finding.evidence_text}", highlight=False)
    if finding.fix and finding.cause:  # the cause was printed with its fix already
        console.print(f"      caused by {finding.cause}: see its fix", highlight=False)
    elif finding.fix:
        console.print(f"      fix: {finding.fix}", highlight=False)


def print_findings_summary(console: Console, findings: list[Any]) -> None:
    """The findings at the end of a run: each cause first, the findings it explains indented under it."""
    if not findings:
        console.print("findings: none")
        return
    counts = {s: sum(1 for f in findings if f.severity == s) for s in ("red", "amber", "info")}
    console.print("findings: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n), highlight=False)
    for finding in findings:
        style = severity_style(finding.severity)
        if finding.cause:
            console.print(f"    [{style}]{finding.severity:<5}[/] {finding.code:<18} {finding.title} (caused by {finding.cause})", highlight=False)
        else:
            console.print(f"  [{style}]{finding.severity:<5}[/] {finding.code:<20} {finding.title}", highlight=False)
