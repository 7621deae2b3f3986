"""What the cockpit says about real logs and about faults made on purpose, as a Markdown table.

Part 1: `cockpit doctor --json` on every training log in ../shared/data/logs (and ../shared/data/other):
what it read, its findings (cause first), and its exit code.
Part 2: each fault made for real on builtin:tiny with `cockpit run`: the step the fault began (from
the run's own events), the finding listed first, and when the live diagnosis first raised it
(replaying the events one by one, as `cockpit run` and the TUI fold them): data faults must be
named before step 1, metric faults within two logs of their onset.

    python bench/doctor_table.py [--logs-only] > table.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

from cockpit.diagnose import Diagnoser  # noqa: E402
from engine.events import read_events  # noqa: E402

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
SILENT_GRPO = ["--set", "grpo.end_bias=0", "--set", "grpo.reward_files=[]", "--set", "grpo.system_prompt=null",
               "--set", "grpo.rewards=[{name: exact_format, weight: 1.0}, {name: soft_format, weight: 1.0}, {name: correctness, weight: 1.0}]",
               "--set", "grpo.reasoning_start=<reasoning>", "--set", "grpo.reasoning_end=</reasoning>",
               "--set", "grpo.answer_start=<answer>", "--set", "grpo.answer_end=</answer>"]


def cockpit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=900)


def shown(findings: list[dict]) -> str:
    parts = []
    for f in findings:
        text = f"{f['severity']} {f['code']}"
        parts.append(f"↳ {text}" if f.get("cause") else text)
    return ", ".join(parts) or "nothing"


def logs_table() -> list[str]:
    rows = ["| log | read as | summary | findings (cause first) | exit |", "|---|---|---|---|---|"]
    files = sorted((SHARED / "logs").glob("*.json")) + sorted(p for p in (SHARED / "other").glob("*") if p.is_file())
    for path in files:
        result = cockpit("doctor", str(path), "--json")
        if result.returncode == 2:
            why = result.stderr.strip().splitlines()[-1].split("not a training log: ")[-1].split(";")[0][:70]
            rows.append(f"| {path.name} | - | not a training log: {why} | - | 2 |")
            continue
        data = json.loads(result.stdout)
        s = data["summary"]
        loss = f"loss {s['first_loss']:.3g} -> {s['last_loss']:.3g}" if s.get("first_loss") is not None else ""
        reward = f"reward {s['reward_first']:.3g} -> {s['reward_last']:.3g}" if s.get("reward_first") is not None else ""
        rows.append(f"| {path.name} | {data['source']} | {s.get('steps')} steps; {', '.join(x for x in (loss, reward) if x)} "
                    f"| {shown(data['findings'])} | {data['exit_code']} |")
    return rows


def _onset(events: list[dict], kind: str) -> int | None:
    """The step a metric fault began, from the events themselves."""
    for e in events:
        if e.get("type") != "metrics":
            continue
        if kind == "nan":
            grad, loss = e.get("grad_norm"), e.get("loss")
            bad = [v for v in (grad, loss) if isinstance(v, str) or (isinstance(v, float) and not math.isfinite(v))]
            if bad:
                return e["step"]
        if kind == "grpo" and e.get("frac_reward_zero_std") == 1.0:
            return e["step"]
    return None


def _raised(events: list[dict], code: str) -> tuple[str, int]:
    """(when the live fold first raised `code`: 'before step 1' or 'step N', logs folded by then)."""
    diagnoser = Diagnoser()
    for event in events:
        for finding in diagnoser.feed(event):
            if finding.code == code and finding.updates == 0:
                n = diagnoser.state.n_logs
                return ("before step 1" if n == 0 else f"step {diagnoser.state.step}"), n
    return "never", diagnoser.state.n_logs


def fault_rows(tmp: Path) -> list[str]:
    toy = SHARED / "datasets" / "chat" / "openai_cookbook_toy_chat_fine_tuning.jsonl"
    faults = [
        ("learning rate 5, NaN guard off (TRL's behaviour)", "nan",
         ["--preset", "quick-test", "--lr", "5", "--max-steps", "20", "--no-nan-guard"]),
        ("learning rate 5, NaN guard on", "nan", ["--preset", "quick-test", "--lr", "5", "--max-steps", "20"]),
        ("GRPO, the seed's format and correctness rewards on a model that never stops", "grpo", ["--preset", "grpo-quick", *SILENT_GRPO]),
        ("the same, --skip-reward-check", "grpo", ["--preset", "grpo-quick", *SILENT_GRPO, "--skip-reward-check"]),
        ("a 16k-token record in 5 (toy_chat), max_length 1024", "data", ["--preset", "quick-test", "--dataset", str(toy)]),
    ]
    rows = ["| fault | exit | fault began | first finding | raised | other findings |", "|---|---|---|---|---|---|"]
    for n, (name, kind, args) in enumerate(faults):
        run_dir = tmp / f"fault{n}"
        result = cockpit("run", "-o", str(run_dir), *args)
        events_file = run_dir / "events.jsonl"
        if not events_file.exists():  # refused before anything was written: the one line is the finding
            line = next((x for x in result.stderr.splitlines() if x.startswith("error:")), "").removeprefix("error: ")
            found = next((x.split()[1] for x in result.stdout.splitlines() if x.startswith("RED")), "")
            rows.append(f"| {name} | {result.returncode} | - | red {found} (refused: {line[:90]}...) | before step 1 | - |")
            continue
        events = list(read_events(events_file))
        report = json.loads(cockpit("doctor", str(run_dir), "--json").stdout)
        first, rest = report["findings"][0], report["findings"][1:]
        onset = _onset(events, kind) if kind != "data" else None
        when, logs = _raised(events, first["code"])
        began = "before step 1" if kind == "data" else (f"step {onset}" if onset is not None else "-")
        rows.append(f"| {name} | {result.returncode} | {began} | {first['severity']} {first['code']} (step {first['first_step']}) "
                    f"| {when} ({logs} logs) | {shown(rest)} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs-only", action="store_true", help="only part 1 (no training)")
    args = parser.parse_args()
    print("\n".join(logs_table()))
    if not args.logs_only:
        with tempfile.TemporaryDirectory() as tmp:
            print()
            print("\n".join(fault_rows(Path(tmp))))


if __name__ == "__main__":
    main()
