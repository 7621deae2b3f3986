"""Runs for bench/gpu_check.py: `cockpit run` as a user starts it (a subprocess), time-boxed, and the
figures read back from the run dir's events.jsonl. Standard library only, like the cockpit's side.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import run_dir as names  # noqa: E402
from engine.events import read_events  # noqa: E402

GIB = 2**30
STOP_GRACE_S = 30  # a stopped engine saves a checkpoint first; then it is killed


def child_env() -> dict[str, str]:
    """The environment of every run: the repo importable (installed or not), nothing fetched."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    return env


@dataclass
class Run:
    """One `cockpit run`: its exit code, what it printed, its events, and how long it took."""

    run_dir: Path
    rc: int | None = None
    seconds: float = 0.0
    timed_out: bool = False
    stopped_at: int | None = None  # the step at which a stop was asked for
    log: Path | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log and self.log.exists() else ""

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    def last(self, kind: str) -> dict[str, Any]:
        found = self.of(kind)
        return found[-1] if found else {}

    @property
    def status(self) -> str:
        """completed / stopped / failed from run_finished; 'timeout' or 'no run' otherwise."""
        if self.timed_out:
            return "timeout"
        return self.last("run_finished").get("status") or f"no run (exit {self.rc})"

    def losses(self) -> dict[int, float]:
        """Training loss by step (a resumed run's repeated steps: the last one logged)."""
        return {e["step"]: e["loss"] for e in self.of("metrics") if e.get("loss") is not None}

    def tokens_per_second(self, skip: int = 5) -> float | None:
        """Median tokens/s over the logs after the first `skip` (compilation and warm-up out)."""
        rates = [e["tokens_per_second"] for e in self.of("metrics") if e.get("tokens_per_second")]
        rates = rates[skip:] if len(rates) > skip + 2 else rates[1:] or rates
        return statistics.median(rates) if rates else None

    def error_line(self) -> str:
        """Why the run failed, in one line: its error event, else the end of its output."""
        error = self.last("error")
        if error:
            return f"{error.get('kind')}: {error.get('message')}"
        tail = [line for line in self.output.splitlines() if line.strip()]
        return tail[-1][:300] if tail else f"exit {self.rc}"


def fresh_dir(parent: Path, name: str) -> Path:
    """A run dir path that does not exist yet (the cockpit never overwrites one)."""
    parent.mkdir(parents=True, exist_ok=True)
    path, n = parent / name, 1
    while path.exists():
        n += 1
        path = parent / f"{name}-{n}"
    return path


def _engine_pid(run_dir: Path) -> int | None:
    for event in _read(run_dir):
        if event.get("type") == "run_started" and event.get("pid"):
            return int(event["pid"])
    return None


def _read(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / names.EVENTS
    return list(read_events(path)) if path.exists() else []


def _kill(pid: int | None, sig: int) -> None:
    if pid is None:
        return
    try:
        os.killpg(pid, sig)
    except OSError:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def cockpit_run(args: list[str], run_dir: Path, timeout_s: float, stop_at_step: int | None = None, resume: bool = False) -> Run:
    """`cockpit run ARGS -o RUN_DIR` (or `--resume RUN_DIR`), stopped through RUN_DIR/control at
    `stop_at_step`, and stopped (then killed) when it runs past `timeout_s`."""
    run = Run(run_dir=run_dir, log=run_dir.parent / f"{run_dir.name}{'-resume' if resume else ''}.log")
    where = ["--resume", str(run_dir)] if resume else ["-o", str(run_dir)]
    command = [sys.executable, "-m", "cockpit.cli", "run", *args, *where]
    start = time.monotonic()
    with open(run.log, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        # Its own session: a timeout can stop the cockpit and everything it started, and nothing else.
        proc = subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        asked_stop = False
        while proc.poll() is None:
            time.sleep(0.1)  # a stop must land within a step or two, and a CPU step takes a fraction of a second
            elapsed = time.monotonic() - start
            if stop_at_step is not None and not asked_stop:
                steps = [e.get("step") or 0 for e in _read(run_dir) if e.get("type") == "metrics"]
                if steps and max(steps) >= stop_at_step:
                    (run_dir / names.CONTROL).write_text("stop\n", encoding="utf-8")
                    asked_stop, run.stopped_at = True, max(steps)
            if elapsed > timeout_s and not run.timed_out:
                run.timed_out = True
                _kill(proc.pid, signal.SIGINT)  # the cockpit's Ctrl-C: the engine saves and ends
            if run.timed_out and elapsed > timeout_s + STOP_GRACE_S:
                _kill(proc.pid, signal.SIGKILL)
                _kill(_engine_pid(run_dir), signal.SIGKILL)  # the engine runs in its own process group
                proc.wait()
        run.rc = proc.returncode
    run.seconds = round(time.monotonic() - start, 1)
    run.events = _read(run_dir)
    return run


# ---- figures from the events --------------------------------------------------------------


def memory_figures(run: Run) -> dict[str, Any]:
    """NVML readings and torch peaks as the memory events carry them, and the end-of-run report."""
    memory = run.of("memory")
    gpu_rows = [g for e in memory for g in (e.get("gpus") or [])]
    nvml_keys = ("used_mb", "total_mb", "util_pct", "temp_c", "power_w")
    logged_steps = {e["step"] for e in run.of("metrics")}
    peaks_at = {e["step"] for e in memory if e.get("torch") and e.get("step") in logged_steps}
    report = run.last("run_finished").get("memory") or {}
    estimate = run.last("estimate")
    out: dict[str, Any] = {
        "memory_events": len(memory),
        "nvml_rows": len(gpu_rows),
        "nvml_fields": {k: sum(1 for g in gpu_rows if g.get(k) is not None) for k in nvml_keys},
        "logs": len(logged_steps),
        "logs_with_torch_peaks": len(peaks_at),
        "report": report,
        "estimate_line": estimate.get("line"),
        "estimate_allocated_gib": _gib(estimate.get("allocated_bytes")),
        "peak_allocated_gib": _gib_mb(report.get("peak_allocated_mb")),
        "peak_reserved_gib": _gib_mb(report.get("peak_reserved_mb")),
        "report_lines": [line.strip() for line in run.output.splitlines() if line.strip().startswith(("memory:", "estimate "))],
    }
    if gpu_rows:
        last = gpu_rows[-1]
        out["nvml_last"] = {k: last.get(k) for k in ("name", *nvml_keys)}
    if out["estimate_allocated_gib"] and out["peak_allocated_gib"]:
        out["estimate_vs_peak"] = round(out["estimate_allocated_gib"] / out["peak_allocated_gib"], 2)
    return out


def _gib(n: float | None) -> float | None:
    return round(n / GIB, 2) if n else None


def _gib_mb(mb: float | None) -> float | None:
    return round(mb / 1024, 2) if mb else None


def training_figures(run: Run) -> dict[str, Any]:
    losses = run.losses()
    steps = sorted(losses)
    return {
        "run": run.status,
        "seconds": run.seconds,
        "steps": steps[-1] if steps else 0,
        "loss_first": losses[steps[0]] if steps else None,
        "loss_last": losses[steps[-1]] if steps else None,
        "tokens_per_second": run.tokens_per_second(),
        "run_dir": str(run.run_dir),
    }
