"""GRPO as a user reads it without the TUI: rewards rather than a loss of 0, eval accuracies, prompt
lengths, an eval subset taken from the prompts that fit, and best/ chosen by answer accuracy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import SHARED_DATA, of_type

from cockpit.eval_view import percent
from engine.events import read_events
from engine.train import best

GSM8K = SHARED_DATA / "datasets" / "gsm8k" / "train.jsonl"


def cockpit(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`cockpit run --preset grpo-demo`, shortened: builtin:tiny with rewards that give partial credit."""
    run_dir = tmp_path_factory.mktemp("grpo") / "r"
    result = cockpit("run", "--preset", "grpo-demo", "--max-steps", "10", "--eval-steps", "5",
                     "--set", "grpo.eval_prompts=4", "--set", "train.logging_steps=5", "-o", str(run_dir))
    assert result.returncode == 0, result.stderr
    return result, run_dir


def test_grpo_lines_show_rewards_not_a_zero_loss(demo):
    result, run_dir = demo
    out = result.stdout
    step = next(line for line in out.splitlines() if line.startswith("step 5/10"))
    assert "loss" not in step and "grad_norm" not in step
    metrics = of_type(list(read_events(run_dir / "events.jsonl")), "metrics")[1]
    functions = [k[len("rewards/"):-len("/mean")] for k in metrics if k.startswith("rewards/") and k.endswith("/mean")]
    assert len(functions) >= 2
    for name in functions:  # the total, then each function
        assert f"{name} {metrics[f'rewards/{name}/mean']:.4g}" in step, name
    assert f"reward {metrics['reward']:.4g} (" in step and f"std {metrics['reward_std']:.4g}" in step
    assert f"completion {metrics['completions/mean_length']:.0f} tok, {metrics['completions/clipped_ratio']:.0%} clipped" in step


def test_grpo_eval_and_data_lines(demo):
    result, run_dir = demo
    out = result.stdout
    events = list(read_events(run_dir / "events.jsonl"))
    evaluation = of_type(events, "eval")[0]
    line = next(line for line in out.splitlines() if line.startswith("eval  step 5"))
    assert f"answer accuracy {evaluation['eval_answer_accuracy']:.0%}" in line and "format accuracy" in line
    assert line.endswith("on 4 prompts") and "eval_loss" not in line
    (dataset,) = of_type(events, "dataset")
    lengths = dataset["splits"]["train"]["tokens"]["prompt"]
    assert f"data  train: 200 prompts (question-answer), prompt tokens median {lengths['median']} p95 {lengths['p95']}" in out
    assert "median None" not in out
    # The eval subset: said once (the engine's dataset event; the launch's own data check no longer repeats it).
    both = out + result.stderr
    assert both.count("evaluating on 4 of the 16 eval prompts that fit") == 1
    assert "completed at step 10 reward " in out


def test_best_is_the_evaluation_with_the_best_answers(demo):
    _, run_dir = demo
    evals = of_type(list(read_events(run_dir / "events.jsonl")), "eval")
    assert len(evals) == 2 and all("eval_answer_accuracy" in e for e in evals)
    winner = max(evals, key=lambda e: (best.score(e, best.GRPO), -e["step"]))  # the earlier one wins a tie
    info = json.loads((run_dir / "best" / "cockpit_best.json").read_text())
    assert info == {"step": winner["step"], **{k: winner[k] for k in best.GRPO}}


def test_doctor_reports_grpo_accuracies(demo):
    _, run_dir = demo
    result = cockpit("doctor", str(run_dir), "--json")
    summary = json.loads(result.stdout)["summary"]
    last = of_type(list(read_events(run_dir / "events.jsonl")), "eval")[-1]
    assert summary["eval_accuracy"] == {k: last[k] for k in ("eval_answer_accuracy", "eval_format_accuracy")}
    info = json.loads((run_dir / "best" / "cockpit_best.json").read_text())
    assert summary["best_eval"] == {"key": "eval_answer_accuracy", "value": info["eval_answer_accuracy"], "step": info["step"]}
    text = cockpit("doctor", str(run_dir)).stdout.splitlines()[0]
    assert "last eval answer accuracy" in text and "format accuracy" in text and "eval_loss" not in text


def test_ranking_puts_answers_before_format_and_reward():
    keys = best.GRPO
    right = {"eval_answer_accuracy": 0.5, "eval_format_accuracy": 0.1, "eval_reward": -3.0, "eval_loss": 0.0}
    tidy = {"eval_answer_accuracy": 0.25, "eval_format_accuracy": 1.0, "eval_reward": 2.0, "eval_loss": 0.0}
    assert best.better(best.score(right, keys), best.score(tidy, keys))
    assert not best.better(best.score(right, keys), best.score(right, keys))  # a tie keeps the earlier best/
    no_truth = {"eval_format_accuracy": 0.5, "eval_reward": 1.0}  # user rewards without ground truth
    assert best.score(no_truth, keys) == (0.5, 1.0)
    assert best.better(best.score({"eval_loss": 1.0}, best.SFT), best.score({"eval_loss": 2.0}, best.SFT))


def test_eval_subset_comes_from_the_prompts_that_fit(run_engine):
    """GSM8K: 374 eval prompts, many over max_prompt_length=256; grpo.eval_prompts=4 evaluates 4 of those that fit."""
    _, events, _ = run_engine("grpo-gsm8k", flags={"data.path": str(GSM8K), "model.name_or_path": "builtin:tiny"},
                              sets=["train.max_steps=1", "grpo.max_completion_length=8"])
    (dataset,) = of_type(events, "dataset")  # written before training (and before any check that may refuse it)
    evals = dataset["splits"]["eval"]
    assert evals["dropped"] > 0 and evals["records"] == 4
    assert evals["available"] == 374 - evals["dropped"]
    assert f"evaluating on 4 of the {evals['available']} eval prompts that fit (grpo.eval_prompts=4; 0 evaluates all)" in dataset["warnings"]


def test_cockpit_eval_scores_a_grpo_model_with_its_rewards(demo):
    """A test split for GRPO: the final model answers every prompt; answer and format accuracy and each reward."""
    _, run_dir = demo
    test = run_dir.parent / "digits.jsonl"
    test.write_text("".join(json.dumps({"question": f"Say the digit {d}.", "answer": f"#### {d}"}) + "\n" for d in range(6)))
    result = cockpit("eval", str(run_dir), "--dataset", str(test), "--checkpoint", "final", "--limit", "4")
    assert result.returncode == 0, result.stderr
    saved = json.loads((run_dir / "eval" / "digits-final.json").read_text())
    assert saved["run_type"] == "grpo" and saved["records"] == 6 and saved["evaluated"] == 4
    metrics = saved["metrics"]
    assert all(0 <= metrics[k] <= 1 for k in ("eval_answer_accuracy", "eval_format_accuracy"))
    functions = [k for k in metrics if k.startswith("eval_rewards/") and k.endswith("/mean")]
    assert len(functions) >= 2 and "eval_reward" in metrics
    # Generated as the run generates (grpo.end_bias included): some completions end before the limit.
    assert metrics["eval_completions/clipped_ratio"] < 1
    assert result.stdout.startswith("digits-final: final (step 10) on ") and "answer accuracy" in result.stdout
    assert "test digits-final: final (step 10)" in cockpit("doctor", str(run_dir)).stdout


@pytest.mark.anyio
async def test_the_tui_header_shows_grpo_eval_accuracies(demo):
    from test_eval import header_shows

    _, run_dir = demo
    last = of_type(list(read_events(run_dir / "events.jsonl")), "eval")[-1]
    await header_shows(run_dir, f"eval answer {percent(last['eval_answer_accuracy'])}  format {percent(last['eval_format_accuracy'])}")
