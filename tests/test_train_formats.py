"""Real tiny trainings on the CPU, one per dataset format: each trains, and its events say what it saw."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import SHARED_DATA, of_type

N = 12


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _rows(kind: str):
    out = []
    for i in range(N):
        a, b = i % 7, i % 5
        if kind == "prompt-completion":
            out.append({"prompt": f"Add {a} and {b}.", "completion": f"{a + b}"})
        elif kind == "input-output":
            out.append({"input": f"Greet customer {i}", "output": f"Hello customer {i}, how can I help?"})
        elif kind == "question-answer":
            out.append({"question": f"What is {a} plus {b}?", "answer": f"{a} + {b} = {a + b}\n#### {a + b}"})
        elif kind == "alpaca":
            out.append({"instruction": "Reverse the word.", "input": f"word{i}", "output": f"{i}drow"})
        elif kind == "nli":
            out.append({"premise": f"A man plays {a} songs.", "hypothesis": "A man plays music.", "label": ["entailment", "neutral"][i % 2]})
        elif kind == "text":
            out.append({"text": f"Line {i}: the quick brown fox jumps over {a} lazy dogs."})
        elif kind == "sharegpt":
            out.append({"conversations": [{"from": "human", "value": f"Say {i}"}, {"from": "gpt", "value": f"{i}"}]})
        elif kind == "mapped":
            out.append({"sentence": f"It rained {a} times.", "tag": "weather"})
    return out


FORMATS = ["prompt-completion", "input-output", "question-answer", "alpaca", "nli", "text", "sharegpt"]


@pytest.mark.parametrize("kind", FORMATS)
def test_each_format_trains(kind, tmp_path, run_engine):
    path = _jsonl(tmp_path / f"{kind}.jsonl", _rows(kind))
    code, events, run_dir = run_engine(sets=[f"data.path={path}", "data.eval_split=0.25", "train.max_steps=2"])
    assert code == 0, of_type(events, "error")
    (dataset,) = of_type(events, "dataset")
    assert dataset["format"] == kind
    assert dataset["splits"]["train"]["records"] == 9 and dataset["splits"]["eval"]["records"] == 3
    samples = of_type(events, "samples")[0]["samples"]
    assert samples and all(any(seg["trained"] for seg in s["segments"]) for s in samples)
    if kind != "text":  # completion-only loss: the prompt is shown, masked
        assert all(any(not seg["trained"] for seg in s["segments"]) for s in samples)
    assert of_type(events, "run_finished")[-1]["status"] == "completed"
    assert (run_dir / "final" / "adapter_config.json").is_file()


def test_messages_with_tools_and_metadata_split(run_engine):
    """The seed's format: the split comes from metadata, the tool call is what is trained."""
    code, events, _ = run_engine(sets=["train.max_steps=2"])
    assert code == 0
    (dataset,) = of_type(events, "dataset")
    assert dataset["format"] == "messages"
    assert dataset["splits"]["eval"]["records"] > 0
    sample = of_type(events, "samples")[0]["samples"][0]
    trained = "".join(seg["text"] for seg in sample["segments"] if seg["trained"])
    masked = "".join(seg["text"] for seg in sample["segments"] if not seg["trained"])
    assert "tool_call" in trained and '"name"' in trained
    assert "<|im_start|>user" in masked and "tool_call" not in masked.split("<|im_start|>assistant")[-1]


def test_csv_alpaca_with_index_column(tmp_path, run_engine):
    path = tmp_path / "data.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["", "instruction", "input", "output"])
        for i, r in enumerate(_rows("alpaca")):
            w.writerow([i, r["instruction"], r["input"], "line one\nline two " + r["output"]])
    code, events, _ = run_engine(sets=[f"data.path={path}", "data.eval_split=0.25", "train.max_steps=1"])
    assert code == 0
    assert of_type(events, "dataset")[0]["format"] == "alpaca"


def test_mapped_columns_with_templates(tmp_path, run_engine):
    path = _jsonl(tmp_path / "m.jsonl", _rows("mapped"))
    code, events, _ = run_engine(
        sets=[f"data.path={path}", "data.eval_split=0.25", "train.max_steps=1",
              "data.prompt_template=Classify: {sentence}", "data.completion_template={tag}"]
    )
    assert code == 0
    assert of_type(events, "dataset")[0]["format"] == "mapped"
    trained = "".join(seg["text"] for seg in of_type(events, "samples")[0]["samples"][0]["segments"] if seg["trained"])
    assert "weather" in trained


def test_all_assistant_turns_loss(run_engine):
    code, events, _ = run_engine(sets=["train.max_steps=1", "data.loss_on=assistant"])
    assert code == 0
    assert of_type(events, "dataset")[0]["loss_on"] == "assistant"


def test_full_finetune_saves_model(run_engine):
    code, events, run_dir = run_engine(sets=["train.max_steps=1", "model.finetune=full", "train.eval_strategy=no"])
    assert code == 0
    assert (run_dir / "final" / "config.json").is_file()
    assert not (run_dir / "final" / "adapter_config.json").exists()


@pytest.mark.parametrize(
    "relpath, sets",
    [
        ("datasets/toolcall/TeddyCr_daneel_validation_set.jsonl", []),
        ("datasets/chat/openai_cookbook_toy_chat_fine_tuning.jsonl", ["data.eval_split=0.4"]),
        ("datasets/nli/aristo_scitail_dev_answers.jsonl", []),
        ("datasets/toolcall/llamafactory_glaive_toolcall_en_demo.json", ["train.max_length=6500"]),
    ],
)
def test_shared_datasets_train(relpath, sets, run_engine):
    path = SHARED_DATA / relpath
    code, events, _ = run_engine(sets=[f"data.path={path}", "train.max_steps=1", "train.max_length=4096", "train.per_device_train_batch_size=1", "train.eval_strategy=no", *sets])
    assert code == 0, of_type(events, "error")


def test_completions_cut_away_fail_before_training(run_engine):
    """TRL silently drops such records and later fails cryptically: refuse with the max_length that fits."""
    path = SHARED_DATA / "datasets/toolcall/llamafactory_glaive_toolcall_en_demo.json"
    code, events, _ = run_engine(sets=[f"data.path={path}", "train.max_length=256"])
    assert code == 2
    (error,) = of_type(events, "error")
    assert error["kind"] == "data" and "\n" not in error["message"]
    assert "llamafactory_glaive_toolcall_en_demo.json" in error["message"] and "--max-length" in error["message"]
    assert not of_type(events, "metrics")


def test_lint_warnings_are_recorded_in_the_dataset_event(tmp_path, run_engine):
    rows = _rows("prompt-completion")
    path = _jsonl(tmp_path / "dups.jsonl", rows + rows[:2])
    code, events, _ = run_engine(sets=[f"data.path={path}", "data.eval_split=0.25", "train.max_steps=1"])
    assert code == 0
    lint = of_type(events, "dataset")[0]["lint"]  # lint's findings as data: code, count, places, fix
    (duplicate,) = [f for f in lint if f["code"] == "duplicate"]
    assert duplicate["count"] == 2 and duplicate["severity"] == "warning"
    assert all("dups.jsonl:" in place for place in duplicate["places"]) and duplicate["fix"]
