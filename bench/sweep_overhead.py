"""The sweep's own cost between trials: seconds from one trial's end (its run_finished) to the next
trial's first step, against the engine alone on a prepared run dir (config.yaml, lint.json): its
exit after run_finished (the sweep waits for it: a GPU is free only once the process is gone) plus
its start-up (spawning `python -m engine RUN_DIR` to its first step). The difference is what the
sweep adds: telling and asking the study, the launch path's checks of the config and data, and the
worker's polling.

    python bench/sweep_overhead.py [--trials 4] [--repeats 3]

Both are measured on quick-test (builtin:tiny), in one run of this script, and printed with the
`uptime` load; run it under the CPU lock on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.events import read_events  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "PYTHONUNBUFFERED": "1"}


def first_step_time(events_path: Path) -> float | None:
    for event in read_events(events_path) if events_path.exists() else []:
        if event.get("type") == "metrics":
            return float(event["time"])
    return None


def sweep_gaps(workdir: Path, trials: int) -> list[float]:
    """Run a grid of `trials` learning rates; the seconds from each trial's end to the next one's first step."""
    rates = ",".join(f"{(i + 1) * 1e-3:g}" for i in range(trials))
    cmd = [sys.executable, "-m", "cockpit.cli", "sweep", "--preset", "quick-test", "--set", f"train.learning_rate={rates}",
           "--sweeps-dir", str(workdir / "sweeps")]
    result = subprocess.run(cmd, cwd=workdir, env=ENV, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"the sweep failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    (sweep_dir,) = (workdir / "sweeps").iterdir()
    trial_dirs = sorted(sweep_dir.glob("trial-*"))
    gaps = []
    for done, following in zip(trial_dirs, trial_dirs[1:]):
        ended = [e for e in read_events(done / "events.jsonl") if e.get("type") == "run_finished"][-1]["time"]
        first = first_step_time(following / "events.jsonl")
        gaps.append(first - float(ended))
    return gaps


def engine_alone(workdir: Path, index: int) -> tuple[float, float]:
    """(seconds from spawning the engine on a ready run dir to its first step, from its run_finished to its exit)."""
    from cockpit import launch
    from cockpit.supervisor import write_config
    from engine.train.preflight import write_lint

    prepared = launch.prepare(launch.Request(preset="quick-test", sets=["train.learning_rate=1e-3"]))
    run_dir = workdir / f"engine-{index}"
    write_config(run_dir, prepared.cfg)
    write_lint(run_dir, prepared.reports)
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "engine", str(run_dir)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = None
    while first is None and proc.poll() is None:
        time.sleep(0.02)
        first = first_step_time(run_dir / "events.jsonl")
    proc.wait()
    exited = time.time()
    first = first or first_step_time(run_dir / "events.jsonl")
    if first is None:
        raise SystemExit(f"the engine logged no step; see {run_dir}")
    ended = [e for e in read_events(run_dir / "events.jsonl") if e.get("type") == "run_finished"][-1]["time"]
    return first - started, exited - float(ended)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4, help="trials per sweep (trials - 1 gaps)")
    parser.add_argument("--repeats", type=int, default=3, help="sweeps, and engine start-ups, interleaved")
    args = parser.parse_args()
    gaps: list[float] = []
    startups: list[float] = []
    exits: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            workdir = Path(tmp) / f"r{r}"
            workdir.mkdir()
            gaps += sweep_gaps(workdir, args.trials)
            startup, exit_s = engine_alone(workdir, r)
            startups.append(startup)
            exits.append(exit_s)
    load = os.getloadavg()
    gap, startup, exit_s = statistics.median(gaps), statistics.median(startups), statistics.median(exits)
    print(f"between trials: {gap:.2f} s median (from one trial's end to the next one's first step; {len(gaps)} gaps, "
          f"{min(gaps):.2f}-{max(gaps):.2f})")
    print(f"engine alone: {exit_s + startup:.2f} s median: exit after run_finished {exit_s:.2f} s + start-up to the first step "
          f"{startup:.2f} s ({len(startups)} runs; start-up {min(startups):.2f}-{max(startups):.2f})")
    own = gap - exit_s - startup
    print(f"the sweep's own cost: {own:+.2f} s per trial ({gap / (exit_s + startup):.2f}x the engine alone)")
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
