"""Real tiny trainings on the CPU (builtin:tiny) that produce each SFT fault for real, and the
finding that names it; a healthy run raises nothing red."""

from __future__ import annotations

import json
from pathlib import Path

from cockpit.diagnose import diagnose_events

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "toolcall_sample.jsonl"
# Short runs: no checkpoints, no best/ copy, a log every step.
FAST = ["train.save_strategy=no", "train.save_best=false", "train.logging_steps=1"]


def findings(events):
    return {f.code: f for f in diagnose_events(events)}


def write_sample(path: Path, train: int, evals: int, eval_mark: str = "eval") -> Path:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    out = []
    for i, row in enumerate(rows[: train + evals]):
        row = dict(row, metadata="train" if i < train else eval_mark)
        out.append(json.dumps(row))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def test_healthy_run_raises_nothing_red(run_engine):
    code, events, _ = run_engine("quick-test", sets=FAST)
    assert code == 0
    found = findings(events)
    assert not [f for f in found.values() if f.severity == "red"], found
    assert found["too-few-steps"].severity == "info"  # quick-test sets max_steps on purpose


def test_every_completion_truncated(run_engine):
    code, events, _ = run_engine("quick-test", sets=FAST + ["train.max_length=32"])
    assert code != 0
    found = findings(events)
    assert found["truncation"].severity == "red" and "crash" not in found
    assert found["truncation"].overrides["train.max_length"] > 32


def test_empty_eval_split(run_engine, tmp_path):
    data = write_sample(tmp_path / "train_only.jsonl", train=40, evals=0)
    code, events, _ = run_engine("quick-test", sets=FAST + [f"data.path={data}"])
    assert code != 0
    found = findings(events)
    assert found["eval-missing"].severity == "red" and "crash" not in found
    assert found["eval-missing"].overrides == {"data.eval_split": 0.1}


def test_learning_rate_so_high_the_loss_diverges(run_engine):
    sets = FAST + ["train.max_steps=30", "train.learning_rate=3.0", "train.eval_strategy=no", "data.eval_split=0"]
    code, events, _ = run_engine("quick-test", sets=sets)
    found = findings(events)
    diverged = found.get("divergence") or found.get("loss-nan")
    assert diverged is not None and diverged.severity == "red", found
    assert diverged.overrides["train.learning_rate"] < 3.0


def test_overfitting_on_a_tiny_dataset_over_many_epochs(run_engine, tmp_path):
    data = write_sample(tmp_path / "tiny.jsonl", train=8, evals=8)
    sets = FAST + [f"data.path={data}", "train.max_steps=-1", "train.num_train_epochs=40",
                   "train.per_device_train_batch_size=8", "train.learning_rate=1e-2", "train.eval_steps=4",
                   "train.logging_steps=2"]
    code, events, _ = run_engine("quick-test", sets=sets)
    assert code == 0
    found = findings(events)
    assert "overfitting" in found, found
    overfit = found["overfitting"]
    assert overfit.evidence["best_step"] < events[-1]["step"]
    assert overfit.overrides["train.num_train_epochs"] < 40


def test_too_few_steps_known_before_training(run_engine, tmp_path):
    data = write_sample(tmp_path / "forty.jsonl", train=40, evals=8)  # 40 records, 64 per step: one step
    sets = FAST + [f"data.path={data}", "train.max_steps=-1", "train.num_train_epochs=1", "train.per_device_train_batch_size=16",
                   "train.gradient_accumulation_steps=4"]
    code, events, _ = run_engine("quick-test", sets=sets)
    assert code == 0
    plan_index = next(i for i, e in enumerate(events) if e.get("plan"))
    early = findings(events[: plan_index + 1])  # before the first optimizer step
    assert early["too-few-steps"].severity == "amber"
    assert early["too-few-steps"].overrides["train.gradient_accumulation_steps"] == 1
