"""Each fault made for real on builtin:tiny, and what the cockpit says about it: the root cause is the
first finding, its onset step is the step the fault began, and it is raised within two logs of it
(data faults before step 1)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from cockpit.diagnose import Diagnoser, diagnose_events, load_findings

from conftest import ROOT, SAMPLE, of_type


def _raised_at(events: list[dict], code: str) -> tuple[int | None, int]:
    """(the step the live Diagnoser was at when it first raised `code`, the logs folded by then)."""
    diagnoser = Diagnoser()
    for event in events:
        for finding in diagnoser.feed(event):
            if finding.code == code and finding.updates == 0:
                return diagnoser.state.step, diagnoser.state.n_logs
    return None, diagnoser.state.n_logs


def _first_nonfinite_grad(events: list[dict]) -> int:
    for e in of_type(events, "metrics"):
        grad = e.get("grad_norm")
        if isinstance(grad, str) or (isinstance(grad, float) and not math.isfinite(grad)):
            return e["step"]
    raise AssertionError("no NaN grad_norm logged")


def test_nan_weights_are_the_cause_and_named_at_their_onset(run_engine):
    """learning rate 5 with the NaN guard off, as TRL trains: grad_norm explodes, then NaN; the
    cause is loss-nan at that step, NaN eval and NaN grads point to it, no fp16 advice on fp32."""
    code, events, _ = run_engine("quick-test", sets=["train.learning_rate=5.0", "train.max_steps=12", "train.nan_guard=false"])
    assert code == 0  # TRL trains on to the end
    onset = _first_nonfinite_grad(events)
    findings = diagnose_events(events)
    first = findings[0]
    assert first.code == "loss-nan" and first.severity == "red" and first.cause is None
    assert first.first_step == onset and first.title == "The weights turned NaN"
    assert f"from step {onset}" in first.evidence_text and "grad_norm" in first.evidence_text
    for f in findings[1:]:
        if f.severity == "red":
            assert f.cause == "loss-nan" and f.fix.startswith("caused by loss-nan"), f
    grad_nan = next(f for f in findings if f.code == "grad-nan")
    assert grad_nan.first_step == onset and "loss scaler skipping" not in grad_nan.fix
    assert not any("bf16" in f.fix for f in findings)  # an fp32 CPU run: no bf16 advice
    eval_nan = next(f for f in findings if f.code == "eval-missing")
    assert "the weights are NaN" in eval_nan.evidence_text and "eval split" not in eval_nan.fix
    raised_step, _ = _raised_at(events, "loss-nan")
    assert raised_step is not None and raised_step <= onset + 2  # within two logs (logging_steps 1)


def test_the_nan_guard_names_the_blow_up_before_it(run_engine):
    code, events, run_dir = run_engine("quick-test", sets=["train.learning_rate=5.0", "train.max_steps=12"])
    assert code == 1
    finding, *symptoms = [f for f in diagnose_events(events) if f.severity == "red"]
    assert all(f.cause == "loss-nan" for f in symptoms)
    assert finding.code == "loss-nan" and finding.title in ("The weights turned NaN", "The gradients turned NaN")
    assert "grad_norm" in finding.evidence_text and "x its median before" in finding.evidence_text
    assert "--lr" in finding.fix and "bf16" not in finding.fix


def test_grpo_without_signal_is_refused_before_step_1(tmp_path):
    """The seed trainer's format and correctness rewards on a random model that never stops: every
    group identical, every completion cut. Refused in one line before training, no run dir left."""
    run_dir = tmp_path / "silent"
    cmd = [sys.executable, "-m", "cockpit.cli", "run", "--preset", "grpo-quick", "-o", str(run_dir),
           "--set", "grpo.end_bias=0", "--set", "grpo.reward_files=[]", "--set", "grpo.system_prompt=null",
           "--set", "grpo.rewards=[{name: exact_format, weight: 1.0}, {name: soft_format, weight: 1.0}, {name: correctness, weight: 1.0}]",
           "--set", "grpo.reasoning_start=<reasoning>", "--set", "grpo.reasoning_end=</reasoning>",
           "--set", "grpo.answer_start=<answer>", "--set", "grpo.answer_end=</answer>"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no learning signal before training" in errors[0] and "--skip-reward-check" in errors[0]
    assert "zero reward spread" in errors[0] and "training for" not in result.stdout
    assert "RED   reward-check" in result.stdout  # the finding, before any step
    assert not run_dir.exists()


def test_grpo_without_signal_is_judged_from_the_first_log(run_engine):
    """The same run, told to train anyway: the certain signal (every group identical, every
    completion cut, on every log so far) is red at the first log, not after five."""
    sets = ["grpo.end_bias=0", "grpo.reward_files=[]", "grpo.system_prompt=null", "grpo.reward_check=false",
            "grpo.rewards=[{name: exact_format, weight: 1.0}, {name: soft_format, weight: 1.0}]",
            "grpo.reasoning_start=<reasoning>", "grpo.reasoning_end=</reasoning>", "grpo.answer_start=<answer>", "grpo.answer_end=</answer>"]
    code, events, _ = run_engine("grpo-quick", sets=sets)
    assert code == 0
    check = of_type(events, "reward_check")[0]
    assert check["zero_spread_groups"] == check["prompts"] and check["problems"]
    first_log = of_type(events, "metrics")[0]["step"]
    for code_ in ("reward-zero-std", "completions-clipped"):
        step, logs = _raised_at(events, code_)
        assert step == first_log and logs == 1, (code_, step, logs)
    findings = diagnose_events(events)
    assert findings[0].code == "reward-check" and findings[0].severity == "red"  # before step 1
    zero = next(f for f in findings if f.code == "reward-zero-std")
    assert zero.evidence["groups"] == "all_wrong" and "too hard" in zero.evidence_text + zero.fix or zero.cause


def _split_file(path: Path, train: int, evals: int) -> Path:
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    with path.open("w") as f:
        for i, row in enumerate(rows[: train + evals]):
            f.write(json.dumps({**row, "metadata": "train" if i < train else "eval"}) + "\n")
    return path


def test_a_tiny_eval_split_and_the_gap_it_hides(run_engine, tmp_path):
    """4 training records, 1 eval record, many epochs: the train loss falls far and the one eval
    record's loss does not follow it. Both are said: the split is too small, and it overfits."""
    data = _split_file(tmp_path / "tiny.jsonl", 4, 1)
    code, events, _ = run_engine("small-dataset", sets=[f"data.path={data}", "train.num_train_epochs=40", "train.eval_steps=10"])
    assert code == 0
    codes = {f.code: f for f in diagnose_events(events)}
    small = codes["eval-small"]
    assert small.severity == "amber" and "1 record" in small.evidence_text and small.first_step == 0
    overfit = codes["overfitting"]  # the eval loss rising after its best, or never following the train loss
    assert overfit.evidence["kind"] in ("rising", "gap") and overfit.severity == "amber"


def test_findings_json_lists_the_cause_first(tmp_path):
    """cockpit run writes findings.json in the same order the terminal shows: causes first."""
    run_dir = tmp_path / "nan"
    result = subprocess.run([sys.executable, "-m", "cockpit.cli", "run", "--preset", "quick-test", "-o", str(run_dir),
                             "--lr", "5", "--max-steps", "9", "--no-nan-guard"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    stored = load_findings(run_dir)
    assert stored[0].code == "loss-nan" and all(f.cause == "loss-nan" for f in stored if f.severity == "red" and f is not stored[0])
    summary = result.stdout[result.stdout.index("findings:"):].splitlines()
    assert "loss-nan" in summary[1] and all("caused by loss-nan" in line for line in summary[2:] if "red" in line)
