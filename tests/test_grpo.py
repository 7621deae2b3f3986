"""Real tiny GRPO runs on the CPU: rewards, generations and eval events, user and broken reward files."""

from __future__ import annotations

from conftest import ROOT, SHARED_DATA, of_type

GSM8K = SHARED_DATA / "datasets" / "gsm8k" / "train.jsonl"

USER_REWARD = '''
def short(prompts, completions, answer, **kwargs):
    return [1.0 / (1 + len(c if isinstance(c, str) else c[0]["content"])) for c in completions]
'''


def test_grpo_quick_trains_and_writes_every_grpo_event(tmp_path, run_engine):
    user = tmp_path / "user_rewards.py"
    user.write_text(USER_REWARD, encoding="utf-8")
    demo = ROOT / "data" / "grpo_demo_rewards.py"
    files = f"grpo.reward_files=[{demo}:digit_share, {demo}:brevity, {user}:short]"
    code, events, run_dir = run_engine("grpo-quick", sets=[files, "train.max_steps=2"])
    assert code == 0, of_type(events, "error")

    (dataset,) = of_type(events, "dataset")
    assert dataset["run_type"] == "grpo" and dataset["format"] == "question-answer"
    assert dataset["splits"]["train"]["records"] == 200 and dataset["splits"]["eval"]["records"] == 16
    assert [r["name"] for r in dataset["rewards"]] == ["digit_share", "brevity", "short"]
    weights = {r["name"]: r["weight"] for r in dataset["rewards"]}
    (samples,) = of_type(events, "samples")
    assert "Answer with the digit only." in samples["samples"][0]["segments"][0]["text"]  # the preset's system prompt
    (check,) = of_type(events, "reward_check")  # sampled and scored before step 1
    assert check["zero_spread_groups"] < check["prompts"] and set(check["functions"]) == set(weights)

    metrics = of_type(events, "metrics")
    assert len(metrics) == 2
    for key in ("reward", "reward_std", "frac_reward_zero_std", "kl", "entropy", "completions/mean_length",
                "completions/clipped_ratio", "rewards/digit_share/mean", "rewards/short/std"):
        assert key in metrics[-1], key

    generations = of_type(events, "generations")
    assert generations and generations[0]["step"] == 1
    group = generations[0]["groups"][0]
    assert group["prompt"] and group["answer"].isdigit() and len(group["completions"]) == 4
    completion = group["completions"][0]
    assert set(completion) >= {"text", "rewards", "total", "clipped"}
    assert set(completion["rewards"]) == set(weights)
    assert completion["total"] == round(sum(weights[k] * v for k, v in completion["rewards"].items()), 4)

    (evaluation,) = of_type(events, "eval")
    assert 0.0 <= evaluation["eval_answer_accuracy"] <= 1.0 and 0.0 <= evaluation["eval_format_accuracy"] <= 1.0
    finished = of_type(events, "run_finished")[-1]
    assert finished["status"] == "completed" and finished["outputs"]["best"]
    assert (run_dir / "final" / "adapter_config.json").is_file()
    assert (run_dir / "best" / "cockpit_best.json").is_file()

    from cockpit.diagnose import Diagnoser

    diagnoser = Diagnoser()
    for event in events:
        diagnoser.feed(event)
    # GRPO's samples are prompts with nothing masked: no "all labels are masked" alarm.
    assert "labels-masked" not in {f.code for f in diagnoser.findings}


def test_grpo_gsm8k_preset_reads_the_truth_after_hashes(run_engine):
    code, events, _ = run_engine("grpo-gsm8k", flags={"data.path": str(GSM8K), "model.name_or_path": "builtin:tiny"},
                                 sets=["train.max_steps=1", "train.eval_strategy=no", "grpo.max_completion_length=8"])
    assert code == 0, of_type(events, "error")
    (dataset,) = of_type(events, "dataset")
    train = dataset["splits"]["train"]
    assert dataset["format"] == "question-answer" and train["with_answer"] == train["records"] > 4000
    assert train["dropped"] > 0  # long word problems over max_prompt_length=256
    group = of_type(events, "generations")[0]["groups"][0]
    assert group["answer"].lstrip("-").replace(".", "").isdigit()
    assert all(c["clipped"] for c in group["completions"])  # 8 new tokens cut off every random completion


def test_broken_reward_file_fails_before_training(tmp_path, run_engine):
    broken = tmp_path / "broken.py"
    broken.write_text("def f(prompts, completions, **kw):\n    return [0.0 for c in completions\n", encoding="utf-8")
    code, events, _ = run_engine("grpo-quick", sets=[f"grpo.reward_files=[{broken}:f]"])
    assert code == 2
    (error,) = of_type(events, "error")
    assert error["kind"] == "config" and "broken.py fails to import" in error["message"]
    assert not of_type(events, "metrics") and not any(e.get("phase") == "training" for e in of_type(events, "status"))


def test_reward_with_the_wrong_shape_fails_before_training(tmp_path, run_engine):
    user = tmp_path / "scalar.py"
    user.write_text("def total(prompts, completions, **kw):\n    return 1.0\n", encoding="utf-8")
    code, events, _ = run_engine("grpo-quick", sets=[f"grpo.reward_files=[{user}:total]"])
    assert code == 2
    assert "reward 'total' must return a list of 2 floats" in of_type(events, "error")[0]["message"]


def test_unknown_reward_and_missing_truth_are_clear(tmp_path, run_engine):
    code, events, _ = run_engine("grpo-quick", sets=["grpo.rewards={corectness: 1.0}"])
    assert code == 2 and "did you mean 'correctness'" in of_type(events, "error")[0]["message"]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(f'{{"prompt": "Say {i}", "expected": "{i}"}}\n' for i in range(8)), encoding="utf-8")
    code, events, _ = run_engine("grpo-quick", sets=[f"data.path={prompts}", "grpo.answer_field=expect"])
    assert code == 2 and "grpo.answer_field 'expect' is not a column" in of_type(events, "error")[0]["message"]


def test_prompt_and_answer_columns_map_with_answer_field(tmp_path, run_engine):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(f'{{"prompt": "Say {i}", "expected": "{i}"}}\n' for i in range(8)), encoding="utf-8")
    code, events, _ = run_engine("grpo-quick", sets=[f"data.path={prompts}", "grpo.answer_field=expected", "train.max_steps=1",
                                                     "data.eval_split=0", "train.eval_strategy=no"])
    assert code == 0, of_type(events, "error")
    assert of_type(events, "samples")[0]["samples"][0]["answer"].isdigit()
