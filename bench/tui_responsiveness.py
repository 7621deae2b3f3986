"""How the TUI holds up: opening a finished 24,000-step run, and watching a run that logs every step.

    python bench/tui_responsiveness.py                 # both parts, about 80 s
    python bench/tui_responsiveness.py --live-seconds 120 --rate 50

Part 1 writes the events.jsonl of a finished 24,000-step run (the real log in
../shared/data/logs when it is there, else a synthetic curve), opens it with `cockpit watch`'s app
(headless, 120x40) and times the first drawn screen, everything drawn (every event folded, findings
final, charts redrawn), key presses afterwards (toggling panels, stepping samples, scrolling the log)
and resizing to 80x24 and back (the layout changes, the log re-wraps).
Part 2 starts a writer process that appends a metrics and a memory event per step at --rate steps a
second, and the Trainer's line per step to engine.log, watches it, and samples the UI process's CPU
share and memory (RSS) every few seconds.
The UI runs headless here: Textual composes every frame as in a terminal, only the write to the
terminal is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_LOG = ROOT.parent / "shared/data/logs/adu3110__LLM-Project-to-Build-and-Fine-Tune-a-Large-Language-Model__1.json"
SIZE = (120, 40)
SMALL = (80, 24)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def config(total: int) -> dict:
    from engine import config as config_mod

    cfg = config_mod.defaults()
    cfg["run"]["name"] = "bench"
    cfg["data"]["path"] = "data/toolcall_sample.jsonl"
    cfg["train"].update(max_steps=total, logging_steps=1)
    return cfg


def event(kind: str, t: float, step: int | None = None, **payload) -> str:
    return json.dumps({"v": 1, "type": kind, "time": round(t, 3), "step": step, **payload}) + "\n"


def write_finished_run(run_dir: Path) -> int:
    """events.jsonl of a finished 24,000-step run; returns the number of events."""
    if SHARED_LOG.is_file():
        logs = json.loads(SHARED_LOG.read_text())["log_history"]
    else:  # a falling, noisy curve of the same length
        rng = random.Random(0)
        logs = [{"step": s, "loss": 3.7 * math.exp(-s / 4000) + 0.05 + rng.random() * 0.1, "learning_rate": 1e-5 * (1 - s / 64000), "epoch": s / 1558} for s in range(1, 24001)]
    total = logs[-1]["step"]
    run_dir.mkdir(parents=True)
    t0 = 1_700_000_000.0
    lines = [
        event("run_started", t0, config=config(total), versions={}, devices=[], run_dir=str(run_dir), pid=None, world_size=1),
        event("status", t0 + 1, 0, phase="training", message=f"training for {total} steps", plan={"total_steps": total}),
    ]
    for i, log in enumerate(logs):
        t = t0 + 2 + i * 0.5
        lines.append(event("metrics", t, log["step"], **{k: v for k, v in log.items() if k != "step"}, total_steps=total, tokens_per_second=5000.0))
        if i % 50 == 0:
            lines.append(event("memory", t, log["step"], gpus=[{"index": 0, "name": "GPU", "used_mb": 30000, "total_mb": 81920, "util_pct": 97}],
                               torch={"peak_allocated_mb": 28000, "peak_reserved_mb": 29000}, process={"rss_mb": 3000}))
        if log["step"] % 1000 == 0:
            lines.append(event("eval", t, log["step"], eval_loss=log["loss"] * 1.1))
    lines.append(event("run_finished", t0 + 3 + len(logs) * 0.5, total, status="completed", total_steps=total, runtime_s=len(logs) * 0.5))
    (run_dir / "events.jsonl").write_text("".join(lines))
    (run_dir / "engine.log").write_text("".join(f"{{'loss': {log.get('loss')}, 'step': {log['step']}}}\n" for log in logs[-2000:]))
    return len(lines)


async def open_finished(run_dir: Path) -> dict[str, float]:
    from cockpit.tui.app import CockpitApp
    from cockpit.tui.screens.run import RunScreen

    app = CockpitApp(run_dir=run_dir)
    start = time.perf_counter()
    first = None
    async with app.run_test(size=SIZE) as pilot:
        while not (isinstance(app.screen, RunScreen) and app.screen.settled):
            if first is None and isinstance(app.screen, RunScreen) and app.screen.last is not None:
                first = time.perf_counter() - start
            await pilot.pause(0.01)
        drawn = time.perf_counter() - start
        keys = ["4", "4", "1", "1", "right_square_bracket", "left_square_bracket"] * 5
        app.screen.query_one("#log").focus()
        keys += ["pageup"] * 10 + ["pagedown"] * 10
        latencies = []
        for key in keys:
            t = time.perf_counter()
            await pilot.press(key)
            await pilot.pause()
            latencies.append(time.perf_counter() - t)
        slowest = keys[latencies.index(max(latencies))]
        latencies.sort()
        resizes = []
        for size in (SMALL, SIZE) * 3:
            t = time.perf_counter()
            await pilot.resize_terminal(*size)
            await pilot.pause()
            resizes.append(time.perf_counter() - t)
    return {
        "first_screen_s": first or drawn,
        "all_drawn_s": drawn,
        "key_median_ms": latencies[len(latencies) // 2] * 1000,
        "key_max_ms": latencies[-1] * 1000,
        "slowest_key": slowest,
        "resize_max_ms": max(resizes) * 1000,
        "rss_mb": rss_mb(),
    }


WRITER = r"""
import json, sys, time, math, random
path, log_path, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
rng = random.Random(0)
with open(path, "a") as f, open(log_path, "a") as log:
    start = time.time(); step = 0
    while time.time() - start < seconds:
        step += 1
        t = time.time()
        f.write(json.dumps({"v": 1, "type": "metrics", "time": t, "step": step, "loss": 3 * math.exp(-step / 3000) + rng.random() * 0.1,
                            "grad_norm": 1 + rng.random(), "learning_rate": 1e-4, "epoch": step / 1000, "total_steps": 10**7,
                            "tokens_per_second": 5000.0}) + "\n")
        f.write(json.dumps({"v": 1, "type": "memory", "time": t, "step": step, "gpus": [], "torch": None, "process": {"rss_mb": 900}}) + "\n")
        f.flush()
        log.write(str({"loss": "%.4g" % (3 * math.exp(-step / 3000)), "grad_norm": "1.2", "learning_rate": "0.0001", "entropy": "2.9",
                       "mean_token_accuracy": "0.61", "num_tokens": str(step * 1400), "epoch": "%.4g" % (step / 1000)}) + "\n")
        log.flush()
        time.sleep(max(0.0, start + step / rate - time.time()))
"""


async def watch_live(run_dir: Path, rate: float, seconds: float, every: float) -> list[dict[str, float]]:
    from cockpit.tui.app import CockpitApp

    run_dir.mkdir(parents=True)
    events = run_dir / "events.jsonl"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(events), str(run_dir / "engine.log"), str(rate), str(seconds)])
    t0 = time.time()
    events.write_text(
        event("run_started", t0, config=config(10**7), versions={}, devices=[], run_dir=str(run_dir), pid=writer.pid, world_size=1)
        + event("status", t0, 0, phase="training", message="training", plan={"total_steps": 10**7})
    )
    app = CockpitApp(run_dir=run_dir)
    rows = []
    async with app.run_test(size=SIZE) as pilot:
        start = time.monotonic()
        last_cpu, last_t = time.process_time(), time.monotonic()
        while writer.poll() is None:
            await pilot.pause(every)
            cpu, now = time.process_time(), time.monotonic()
            screen = app.screen
            rows.append({
                "t_s": now - start,
                "steps": getattr(getattr(screen, "last", None), "step", 0),
                "cpu_pct": 100 * (cpu - last_cpu) / (now - last_t),
                "rss_mb": rss_mb(),
            })
            last_cpu, last_t = cpu, now
    writer.wait()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--live-seconds", type=float, default=60.0, help="how long the live run logs")
    parser.add_argument("--rate", type=float, default=20.0, help="steps logged per second in the live run")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples of CPU and memory")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        n = write_finished_run(Path(tmp) / "finished")
        size = (Path(tmp) / "finished" / "events.jsonl").stat().st_size / 2**20
        source = "real log" if SHARED_LOG.is_file() else "synthetic"
        print(f"\n1. open a finished 24,000-step run ({n} events, {size:.1f} MiB, {source})")
        r = asyncio.run(open_finished(Path(tmp) / "finished"))
        print(f"   {'first screen':<28}{r['first_screen_s']:8.2f} s")
        print(f"   {'all drawn (findings final)':<28}{r['all_drawn_s']:8.2f} s")
        print(f"   {'key press, median':<28}{r['key_median_ms']:8.1f} ms")
        print(f"   {'key press, slowest':<28}{r['key_max_ms']:8.1f} ms ({r['slowest_key']})")
        print(f"   {'resize 120x40 <-> 80x24':<28}{r['resize_max_ms']:8.1f} ms (slowest of 6)")
        print(f"   {'UI process RSS':<28}{r['rss_mb']:8.0f} MiB")
        print(f"\n2. watch a run logging every step at {args.rate:g} steps/s for {args.live_seconds:g} s (UI process)")
        rows = asyncio.run(watch_live(Path(tmp) / "live", args.rate, args.live_seconds, args.every))
        print(f"   {'t (s)':>8}{'step shown':>12}{'CPU % of a core':>18}{'RSS (MiB)':>12}")
        for row in rows:
            print(f"   {row['t_s']:8.0f}{row['steps']:12d}{row['cpu_pct']:18.1f}{row['rss_mb']:12.0f}")
        steady = rows[1:] or rows
        print(f"   mean CPU after the first sample: {sum(r['cpu_pct'] for r in steady) / len(steady):.1f}% of a core; "
              f"RSS {steady[0]['rss_mb']:.0f} -> {steady[-1]['rss_mb']:.0f} MiB; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
