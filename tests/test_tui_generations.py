"""GRPO's generations: each group the engine logs is one prompt's num_generations completions, even
when the batch draws the same prompt twice, and the panel shows them as such at any width."""

from __future__ import annotations

import io
import json

from rich.console import Console

from tests.conftest import of_type

NUM_GENERATIONS = 4


def test_a_step_logs_groups_of_num_generations_even_when_a_prompt_repeats(run_engine, tmp_path, monkeypatch):
    """Every prompt of the data is the same text: batches draw it twice in a row, and a grouping by
    prompt text would log groups of 8. Real GRPO on builtin:tiny."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data = tmp_path / "same_prompt.jsonl"
    data.write_text("".join(json.dumps({"question": "Copy this digit: 5", "answer": "5"}) + "\n" for _ in range(12)), encoding="utf-8")
    code, events, _ = run_engine(
        "grpo-demo",
        flags={"data.path": str(data)},
        sets=[f"grpo.num_generations={NUM_GENERATIONS}", "grpo.generations_to_log=2", "grpo.max_completion_length=4",
              "train.max_steps=2", "train.logging_steps=1", "train.per_device_train_batch_size=2", "train.eval_strategy=no",
              "train.save_steps=100", "data.eval_split=0"],
    )
    assert code == 0, [e for e in events if e["type"] == "error"]
    generations = of_type(events, "generations")
    assert generations
    for event in generations:
        groups = event["groups"]
        assert len(groups) == 2  # per_device_train_batch_size 2 prompts: two groups, not one of 8
        assert [g["group"] for g in groups] == [0, 1]
        assert all(len(g["completions"]) == NUM_GENERATIONS for g in groups), [len(g["completions"]) for g in groups]


def _text(renderable, width: int) -> str:
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(renderable)
    return console.export_text()


def _event(completions: int) -> dict:
    return {"type": "generations", "step": 7, "groups": [
        {"group": 0, "prompt": "Copy this digit: 5", "completions": [
            {"text": f"answer {i}", "rewards": {"digit_share": i / 10}, "total": i / 10, "clipped": i == 0} for i in range(completions)]},
        {"group": 1, "prompt": "Copy this digit: 5", "completions": [
            {"text": "5", "rewards": {"digit_share": 1.0}, "total": 1.0, "clipped": False} for _ in range(completions)]},
    ]}


def test_the_panel_shows_one_group_with_its_completions_side_by_side_or_listed():
    from cockpit.tui.widgets.run.generations import render_group

    wide = _text(render_group(_event(4), 0, width=120), 120)
    assert "group 1/2" in wide and "4 completions" in wide
    assert "#4 total 0.3" in wide  # four columns, each header on one line
    narrow = _text(render_group(_event(16), 1, width=60), 60)
    assert "group 2/2" in narrow and "16 completions" in narrow
    # Sixteen columns cannot fit in 60: one completion a line, no header cut into letters.
    assert sum(1 for line in narrow.splitlines() if line.lstrip().startswith("#")) == 16
    assert "zero spread" in narrow  # every total the same: this group teaches nothing
