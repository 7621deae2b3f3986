"""The dataset loader: every format, the shared real datasets, and each bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.data.load import DataError, Splits, detect_format, iter_records, load_splits

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "datasets"


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def chat(user: str, answer: str, **extra) -> dict:
    return {"messages": [{"role": "user", "content": user},
                         {"role": "assistant", "content": answer}], **extra}


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


# ------------------------------------------------------------------ formats


def test_messages_with_tools_and_metadata_split(tmp_path):
    call = {"id": "c1", "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    rec = {"messages": [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Weather in Paris?"},
                        {"role": "assistant", "content": None, "tool_calls": [call]}],
           "tools": tools}
    path = write_jsonl(tmp_path / "d.jsonl", [dict(rec, metadata="train"),
                                              dict(rec, metadata="train"),
                                              dict(rec, metadata="eval")])
    s = load_splits(path)
    assert isinstance(s, Splits) and s.format == "messages"
    assert (len(s.train), len(s.eval)) == (2, 1)
    row = s.train[0]
    assert set(row) == {"prompt", "completion", "tools"}
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    (done,) = row["completion"]
    assert done["content"] == "" and done["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    assert json.loads(row["tools"])[0]["function"]["name"] == "get_weather"
    assert set(row["prompt"][1]) == {"role", "content"}  # no invented keys


def test_messages_loss_on_assistant_keeps_the_conversation(tmp_path):
    rec = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                        {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}
    s = load_splits(write_jsonl(tmp_path / "d.jsonl", [rec] * 4), loss_on="assistant")
    assert set(s.train[0]) == {"messages", "tools"} and len(s.train[0]["messages"]) == 4


def test_sharegpt_function_call_and_observation(tmp_path):
    tools = json.dumps([{"name": "lookup", "parameters": {"type": "object"}}])
    rec = {"conversations": [
        {"from": "human", "value": "find x"},
        {"from": "function_call", "value": json.dumps({"name": "lookup", "arguments": {"q": "x"}})},
        {"from": "observation", "value": "{\"hit\": 1}"},
        {"from": "gpt", "value": "found it"}], "tools": tools}
    s = load_splits(write_jsonl(tmp_path / "d.jsonl", [rec] * 3), eval_split=1)
    assert s.format == "sharegpt"
    prompt = s.train[0]["prompt"]
    assert [m["role"] for m in prompt] == ["user", "assistant", "tool"]
    call = prompt[1]["tool_calls"][0]
    assert call["function"] == {"name": "lookup", "arguments": '{"q": "x"}'}
    assert prompt[2]["tool_call_id"] == call["id"]
    assert json.loads(s.train[0]["tools"])[0]["type"] == "function"


def test_messages_with_content_parts(tmp_path):
    rec = {"messages": [
        {"role": "user", "content": [{"type": "text", "value": "area of r=2?"}]},
        {"role": "assistant", "content": [
            {"type": "reasoning", "value": "use the tool"},
            {"type": "tool_call", "value": json.dumps({"name": "area", "arguments": {"r": 2}})}]}]}
    s = load_splits(write_jsonl(tmp_path / "d.jsonl", [rec] * 3))
    assert s.format == "messages-parts"
    done = s.train[0]["completion"][0]
    assert done["content"].startswith("<think>\nuse the tool")
    assert done["tool_calls"][0]["function"] == {"name": "area", "arguments": '{"r": 2}'}


@pytest.mark.parametrize("record, fmt, prompt, completion", [
    ({"prompt": "2+2=", "completion": "4"}, "prompt-completion", "2+2=", "4"),
    ({"instruction": "Add", "input": "2 and 2", "output": "4"}, "alpaca", "Add\n\n2 and 2", "4"),
    ({"instruction": "Say hi", "input": "", "output": "hi"}, "alpaca", "Say hi", "hi"),
    ({"input": "hello", "output": "hey"}, "input-output", "hello", "hey"),
    ({"question": "1+1?", "answer": "2\n#### 2"}, "question-answer", "1+1?", "2\n#### 2"),
    ({"premise": "A dog runs.", "hypothesis": "An animal moves.", "label": "entailment"}, "nli",
     "Premise: A dog runs.\nHypothesis: An animal moves.", "entailment"),
    ({"sentence1": "A", "sentence2": "B", "gold_label": "N"}, "nli",
     "Premise: A\nHypothesis: B", "N"),
])
def test_plain_formats_become_chat_or_stay_strings(tmp_path, record, fmt, prompt, completion):
    path = write_jsonl(tmp_path / "d.jsonl", [record] * 5)
    s = load_splits(path, system_prompt="You are terse.")
    assert s.format == fmt
    row = s.train[0]
    assert row["prompt"] == [{"role": "system", "content": "You are terse."},
                             {"role": "user", "content": prompt}]
    assert row["completion"] == [{"role": "assistant", "content": completion}]
    plain = load_splits(path, chat=False).train[0]  # joined by a newline, except TRL's own prompt/completion text
    assert plain == {"prompt": prompt + ("" if fmt == "prompt-completion" else "\n"), "completion": completion}


def test_text_format(tmp_path):
    s = load_splits(write_jsonl(tmp_path / "d.jsonl", [{"text": "a"}, {"text": "b"}, {"text": ""}]))
    assert s.format == "text" and s.train + s.eval and s.dropped == {"empty text": 1}
    assert all(set(r) == {"text"} for r in s.train + s.eval)


def test_mapped_templates_substitute_columns_only(tmp_path):
    rec = {"story": "Tom left {early}.", "query": "He left", "label": "entailment"}
    path = write_jsonl(tmp_path / "d.jsonl", [rec] * 3)
    s = load_splits(path, prompt_template="Story: {story}\\nClaim: {query}",
                    completion_template="{label}")
    assert s.format == "mapped"
    # a placeholder inside a value is not expanded again; \n typed on a command line is a newline
    assert s.train[0]["prompt"][-1]["content"] == "Story: Tom left {early}.\nClaim: He left"
    with pytest.raises(DataError) as exc:
        load_splits(path, prompt_template="{nope}", completion_template="{label}")
    assert "data.prompt_template names column '{nope}'" in one_line(exc)


def test_csv_multiline_cells_and_unnamed_index(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(',instruction,input,output\n0,Write,,"line one\nline two"\n'
                    '1,Sum,"1, 2",3\n2,Say,,ok\n', encoding="utf-8")
    assert [n for n, _ in iter_records(path)] == [2, 4, 5]  # 1-based line where a record starts
    s = load_splits(path, eval_split=0, eval_required=False)
    rows = {r["prompt"][-1]["content"]: r["completion"][0]["content"] for r in s.train}
    assert rows == {"Write": "line one\nline two", "Sum\n\n1, 2": "3", "Say": "ok"}
    assert "" not in dict(iter_records(path))[2]


def test_json_list_single_record_and_json_lines_named_json(tmp_path):
    recs = [{"input": f"q{i}", "output": f"a{i}"} for i in range(3)]
    (tmp_path / "list.json").write_text(json.dumps(recs, indent=2))
    assert [(n, r["input"]) for n, r in iter_records(tmp_path / "list.json")] == \
        [(0, "q0"), (1, "q1"), (2, "q2")]
    (tmp_path / "one.json").write_text(json.dumps(recs[0], indent=2))
    assert list(iter_records(tmp_path / "one.json")) == [(0, recs[0])]
    write_jsonl(tmp_path / "lines.json", recs)
    assert [n for n, _ in iter_records(tmp_path / "lines.json")] == [1, 2, 3]


def test_json_list_streams_across_chunks(tmp_path, monkeypatch):
    import engine.data.load as data

    monkeypatch.setattr(data, "_CHUNK", 7)  # every record straddles a chunk boundary
    recs = [{"input": "x" * i, "output": str(i)} for i in range(20)]
    (tmp_path / "d.json").write_text(json.dumps(recs))
    assert [r for _, r in iter_records(tmp_path / "d.json")] == recs


def test_ratio_split_is_seeded(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"input": str(i), "output": "o"} for i in range(50)])
    a, b = load_splits(path, eval_split=0.2, seed=1), load_splits(path, eval_split=0.2, seed=1)
    assert len(a.eval) == 10 and a.eval == b.eval
    assert load_splits(path, eval_split=0.2, seed=2).eval != a.eval
    none = load_splits(path, eval_split=0, eval_required=False)
    assert (len(none.train), len(none.eval)) == (50, 0)


def test_eval_path_is_the_eval_split(tmp_path):
    train = write_jsonl(tmp_path / "t.jsonl", [chat("a", "b")] * 4)
    evals = write_jsonl(tmp_path / "e.jsonl", [chat("c", "d")] * 2)
    s = load_splits(train, eval_path=evals)
    assert (len(s.train), len(s.eval)) == (4, 2)


def test_empty_completion_is_dropped_and_counted(tmp_path):
    recs = [chat("a", "b")] * 3 + [chat("a", "  ")]
    s = load_splits(write_jsonl(tmp_path / "d.jsonl", recs))
    assert s.dropped == {"empty completion": 1} and any("dropped" in w for w in s.warnings)


def test_detect_format_directly():
    assert detect_format({"question": "q", "answer": "a"}) == "question-answer"
    assert detect_format({"a": 1}, prompt_template="{a}", completion_template="{a}") == "mapped"
    with pytest.raises(DataError, match=r"columns \(a, b\)"):
        detect_format({"a": 1, "b": 2})


def test_module_imports_no_heavy_packages():
    code = ("import sys, engine.data.load, engine.data.formats; "
            "print([m for m in ('torch', 'datasets', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ bad input


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as exc:
        load_splits(tmp_path / "nope.jsonl")
    assert "nope.jsonl: file not found" in one_line(exc)


def test_invalid_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(chat("a", "b")) + "\n" + '{"messages": [\n')
    with pytest.raises(DataError) as exc:
        load_splits(path)
    assert f"{path}:2: invalid JSON" in one_line(exc)


def test_invalid_json_list_names_the_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n{"input": "a", "output": "b"},\n{"input": "a" "output": "b"}\n]')
    with pytest.raises(DataError) as exc:
        list(iter_records(path))
    assert f"{path}:3: invalid JSON" in one_line(exc)


@pytest.mark.parametrize("content, expect", [
    ('"just a string"', "top level must be a list of records or one record"),
    ("[1, 2]", "[0]: a record must be an object, found a number"),
    ("", "the file is empty"),
])
def test_wrong_top_level_type(tmp_path, content, expect):
    path = tmp_path / "d.json"
    path.write_text(content)
    with pytest.raises(DataError) as exc:
        load_splits(path)
    assert expect in one_line(exc)


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(chat("a", "b")) + "\n[1, 2]\n")
    with pytest.raises(DataError) as exc:
        load_splits(path)
    assert f"{path}:2: a record must be a JSON object, found a list" in one_line(exc)


def test_record_missing_a_field_of_its_format(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "a", "output": "b"}] * 2
                       + [{"instruction": "c", "answer": "d"}])
    with pytest.raises(DataError) as exc:
        load_splits(path)
    assert f"{path}:3: missing field 'output' of format alpaca" in one_line(exc)


def test_no_known_format_names_columns_and_fix(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"story": "s", "claim": "c", "verdict": "v"}])
    with pytest.raises(DataError) as exc:
        load_splits(path)
    msg = one_line(exc)
    assert "columns (story, claim, verdict)" in msg and "data.prompt_template=" in msg


def test_conversation_must_end_with_assistant(tmp_path):
    rec = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                        {"role": "user", "content": "c"}]}
    path = write_jsonl(tmp_path / "d.jsonl", [chat("a", "b"), rec])
    with pytest.raises(DataError) as exc:
        load_splits(path)
    assert f"{path}:2: the conversation ends with a 'user' message" in one_line(exc)


def test_metadata_values_must_be_exactly_train_or_eval(tmp_path):
    recs = ([chat("a", "b", metadata="train")] * 3 + [chat("a", "b", metadata="Eval")] * 2
            + [chat("a", "b", metadata="test")])
    path = write_jsonl(tmp_path / "d.jsonl", recs)
    with pytest.raises(DataError) as exc:
        load_splits(path)
    msg = one_line(exc)
    assert "case-sensitive" in msg and "'Eval' x2 (first at" in msg and "'test' x1" in msg


def test_empty_eval_split_while_eval_is_required(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [chat("a", "b", metadata="train")] * 3)
    with pytest.raises(DataError) as exc:
        load_splits(path)
    assert "eval split is empty" in one_line(exc) and "train.eval_strategy=no" in str(exc.value)
    assert len(load_splits(path, eval_required=False).train) == 3


def test_unknown_format_name(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [chat("a", "b")])
    with pytest.raises(DataError) as exc:
        load_splits(path, format="chatml")
    assert "data.format: unknown format 'chatml'" in one_line(exc)


def test_half_a_template_mapping(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"a": "x"}])
    with pytest.raises(DataError, match="data.completion_template is missing"):
        load_splits(path, prompt_template="{a}")


def test_bad_csv_row(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("input,output\na,b\nc,d,e\n")
    with pytest.raises(DataError) as exc:
        load_splits(path)
    assert f"{path}:3: 3 cells where the header has 2" in one_line(exc)


# ------------------------------------------------------------------ the shared real datasets

# Each loads with the format named, or fails with one line containing the text given.
SHARED_EXPECTED = {
    "chat/fastchat_dummy_conversation.json": "sharegpt",
    "chat/ganachan_GenAI-Autograding_training_set.jsonl": "messages",
    "chat/ganachan_GenAI-Autograding_validation_set.jsonl": "messages",
    "chat/openai_cookbook_toy_chat_fine_tuning.jsonl": "messages",
    "gsm8k/train.jsonl": "question-answer",
    "gsm8k/test.jsonl": "question-answer",
    "instruct/ghidav_safety-lora_alpaca.csv": "alpaca",
    "instruct/llamafactory_alpaca_en_demo.json": "alpaca",
    "instruct/llamafactory_identity.json": "alpaca",
    "instruct/seed_tasks.jsonl": "ERROR:nested records in 'instances' are not read",
    "nli/aristo_scitail_dev_answers.jsonl": "nli",
    "nli/aristo_tracie_train_uniform.jsonl":
        "ERROR:no known format in the columns (id, query, story, label)",
    "nli/openai_cookbook_snli_1.0_train_2k.csv": "nli",
    "nli/snli_train_2k_premise_hypothesis.jsonl": "nli",
    "toolcall/TeddyCr_daneel_training_set.jsonl": "messages",
    "toolcall/TeddyCr_daneel_validation_set.jsonl": "messages",
    "toolcall/glaive_toolcall_en_demo_as_openai_messages.jsonl": "messages",
    "toolcall/llamafactory_glaive_toolcall_en_demo.json": "sharegpt",
    "toolcall/llamafactory_reason_tool_use_demo_50.jsonl": "messages-parts",
}


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared datasets not present")
def test_every_shared_dataset_is_listed():
    found = {str(p.relative_to(SHARED)) for p in SHARED.rglob("*") if p.suffix in
             (".json", ".jsonl", ".csv")}
    assert found == set(SHARED_EXPECTED)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared datasets not present")
@pytest.mark.parametrize("name", sorted(SHARED_EXPECTED))
def test_shared_dataset_loads_or_fails_in_one_line(name):
    expected = SHARED_EXPECTED[name]
    if expected.startswith("ERROR:"):
        with pytest.raises(DataError) as exc:
            load_splits(SHARED / name)
        assert expected[6:] in one_line(exc) and str(SHARED / name) in str(exc.value)
        return
    s = load_splits(SHARED / name)
    assert s.format == expected and s.train and s.eval
    for row in s.train[:50]:
        if "completion" in row and isinstance(row["completion"], list):
            assert row["completion"][0]["role"] == "assistant"
            for m in row["prompt"] + row["completion"]:
                assert isinstance(m["content"], str)
                assert set(m) <= {"role", "content", "tool_calls", "tool_call_id", "name"}
                for call in m.get("tool_calls", []):
                    assert isinstance(call["function"]["arguments"], str)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared datasets not present")
def test_tracie_loads_through_a_mapping():
    s = load_splits(SHARED / "nli/aristo_tracie_train_uniform.jsonl",
                    prompt_template="Story: {story}\\nEvent: {query}", completion_template="{label}")
    assert s.format == "mapped" and len(s.train) + len(s.eval) == 860
    assert {r["completion"][0]["content"] for r in s.train} == {"entailment", "contradiction"}
