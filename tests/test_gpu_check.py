"""bench/gpu_check.py --smoke: the GPU check's every part runs on the CPU with builtin:tiny through
real `cockpit run` subprocesses, so the script cannot rot before a GPU runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT

CHECK = ROOT / "bench" / "gpu_check.py"


@pytest.mark.slow
def test_smoke_runs_every_part_and_reports(tmp_path):
    out = tmp_path / "check"
    done = subprocess.run([sys.executable, str(CHECK), str(out), "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    printed = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert [line[:5] for line in printed] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]  # one line as each part ends
    report = json.loads((out / "gpu_check.json").read_text(encoding="utf-8"))
    parts = {p["name"]: p for p in report["parts"]}
    assert report["smoke"] is True and report["environment"]["cuda"] is False
    assert parts["qlora"]["status"] == parts["oom"]["status"] == "skipped"
    assert parts["qlora"]["line"] == parts["oom"]["line"] == "skipped: no CUDA"

    lora = parts["lora"]
    assert lora["status"] == "ok" and lora["run"] == "completed" and lora["steps"] == 6
    assert lora["memory"]["report"]["device"] == "cpu" and lora["memory"]["logs"] == 6

    speed = parts["throughput"]
    assert speed["status"] == "ok", speed["line"]
    assert speed["checks"]["the same losses on the CPU"] is True  # train.fast changes nothing without CUDA
    fast_lines = speed["variants"]["fast"]["fast_lines"]
    assert fast_lines == ["fast settings: none on this machine (no CUDA GPU); training as configured"]
    assert speed["variants"]["trl-defaults"]["fast_lines"] == []
    assert all(speed["variants"][v]["median_tokens_per_second"] > 0 for v in ("fast", "trl-defaults"))

    resume = parts["resume"]
    assert resume["status"] == "ok", resume["line"]
    assert resume["stopped"]["run"] == "stopped" and resume["stopped"]["checkpoint"] < 10
    assert resume["bitwise"] is True and len(resume["compared_steps"]) >= 2

    text = (out / "gpu_check.md").read_text(encoding="utf-8")
    assert "skipped: no CUDA" in text and "stop and resume" in text and "bitwise equal" in text
    for name in ("1-lora", "4-fast", "4-trl-defaults", "5-reference", "5-stopped"):
        assert (out / "runs" / name / "events.jsonl").is_file(), name


def test_bad_arguments_are_one_line_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, str(CHECK), str(tmp_path), "--smoke", "--parts", "lora,warp"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --parts: unknown part 'warp'; the parts are lora, qlora, oom, throughput, resume"
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = subprocess.run([sys.executable, str(CHECK), str(blocker / "out"), "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "cannot make the output dir" in done.stderr
