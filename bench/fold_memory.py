"""Memory of the one fold (RunState + Diagnoser) as a run grows: bytes per training log.

A long run is made of the logs of a recorded run (tests/fixtures: SFT and GRPO) repeated with
rising steps, so every key and value is one the engine really writes. The fold's memory is
measured with tracemalloc after N and after 4N logs, in this process; the figure is the growth
between the two, per log. Bounded means about 0 B per log, however long the run.

    python bench/fold_memory.py [--logs 20000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cockpit.diagnose import Diagnoser  # noqa: E402


def recorded(name: str) -> tuple[list[dict], list[dict]]:
    """(the events before the first log, one cycle of logs and evals) of a recorded run."""
    events = [json.loads(line) for line in (ROOT / "tests" / "fixtures" / name / "events.jsonl").read_text().splitlines() if line]
    first = next(i for i, e in enumerate(events) if e["type"] == "metrics")
    body = [e for e in events[first:] if e["type"] in ("metrics", "eval", "generations")]
    return events[:first], body


def stream(name: str, logs: int):
    head, body = recorded(name)
    yield from head
    per_cycle = sum(1 for e in body if e["type"] == "metrics")
    top = max(e["step"] for e in body)
    for cycle in range(logs // per_cycle + 1):
        for event in body:
            yield {**event, "step": event["step"] + cycle * top}


def measure(name: str, logs: int) -> tuple[float, int]:
    """(bytes per log between N and 4N logs, bytes held at 4N)."""
    diagnoser = Diagnoser()
    tracemalloc.start()
    marks = {}
    seen = 0
    for event in stream(name, 4 * logs):
        diagnoser.feed(event)
        if event["type"] == "metrics":
            seen += 1
            if seen in (logs, 4 * logs):
                marks[seen] = tracemalloc.get_traced_memory()[0]
            if seen >= 4 * logs:
                break
    tracemalloc.stop()
    return (marks[4 * logs] - marks[logs]) / (3 * logs), marks[4 * logs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=20_000)
    args = parser.parse_args()
    for name, label in (("sft_run", "SFT"), ("grpo_run", "GRPO")):
        per_log, held = measure(name, args.logs)
        print(f"{label:<5} fold of {4 * args.logs} logs: {held / 2**20:.1f} MiB held, {per_log:+.1f} B per log after the first {args.logs}")


if __name__ == "__main__":
    main()
