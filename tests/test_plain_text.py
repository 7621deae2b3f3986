"""Plain text (data.chat=false, or a model without a chat template): prompt and completion are joined
by a separator the tokenizer keeps, not glued together ("Is it?Yes")."""

from __future__ import annotations

import json

from conftest import of_type
from engine.data.formats import normalize_record


def _io_data(path):
    path.write_text("".join(json.dumps({"input": f"What is {i} plus {i}?", "output": f"It is {2 * i}."}) + "\n" for i in range(24)))
    return path


def _trained_text(events) -> str:
    sample = of_type(events, "samples")[-1]["samples"][0]
    return "".join(segment["text"] for segment in sample["segments"])


def test_the_separator_is_added_once():
    row = normalize_record({"input": "Is it?", "output": "Yes"}, "input-output", chat=False)
    assert row == {"prompt": "Is it?\n", "completion": "Yes"}
    assert normalize_record({"input": "Is it?\n", "output": "Yes"}, "input-output", chat=False)["prompt"] == "Is it?\n"
    assert normalize_record({"input": "Is it?", "output": " Yes"}, "input-output", chat=False)["prompt"] == "Is it?"
    assert normalize_record({"input": "Is it?", "output": "Yes"}, "input-output", chat=False, separator=" ")["prompt"] == "Is it? "


def test_plain_text_trains_prompt_newline_completion(run_engine, tmp_path):
    data = _io_data(tmp_path / "io.jsonl")
    code, events, _ = run_engine("quick-test", flags={"data.path": str(data)},
                                 sets=["data.chat=false", "train.max_steps=1", "train.eval_strategy=no"])
    assert code == 0, of_type(events, "error")
    text = _trained_text(events)
    assert "What is 0 plus 0?\nIt is 0." in text, text


def test_a_tokenizer_that_drops_newlines_gets_a_space(run_engine, tmp_path):
    """A model without a chat template whose tokenizer turns newlines into spaces (as some normalisers do)."""
    from tokenizers import normalizers

    from engine.model import tiny

    model_dir = tmp_path / "model"
    tiny.build_model(seed=0).save_pretrained(model_dir)
    tokenizer = tiny.load_tokenizer()
    tokenizer.backend_tokenizer.normalizer = normalizers.Replace("\n", " ")
    tokenizer.chat_template = None
    tokenizer.save_pretrained(model_dir)

    data = _io_data(tmp_path / "io.jsonl")
    code, events, _ = run_engine("quick-test", flags={"data.path": str(data), "model.name_or_path": str(model_dir)},
                                 sets=["train.max_steps=1", "train.eval_strategy=no"])
    assert code == 0, of_type(events, "error")
    warnings = of_type(events, "dataset")[-1]["warnings"]
    assert any("no chat template" in w for w in warnings), warnings
    assert "the tokenizer drops newlines: prompts and completions are joined by ' '" in warnings
    assert "What is 0 plus 0? It is 0." in _trained_text(events)
