"""builtin:tiny: its tokenizer, chat template, seeded weights and the sample data it trains on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.model import tiny

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "toolcall_sample.jsonl"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def call(arguments, name: str = "get_weather", call_id: str = "call_1") -> dict:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        ],
    }


CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Oslo?"},
    call('{"city": "Oslo"}'),
    {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": '{"temp": 3}'},
    {"role": "assistant", "content": "It is 3 degrees in Oslo."},
    {"role": "user", "content": "And in Lima?"},
    call('{"city": "Lima"}', call_id="call_2"),
]


@pytest.fixture(scope="module")
def tokenizer():
    return tiny.load_tokenizer()


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]


def render(tokenizer, messages, tools=None, **kwargs) -> str:
    return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, **kwargs)


def token_ids(tokenizer, messages, tools=None, **kwargs) -> list[int]:
    return tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=True, return_dict=False, **kwargs
    )


# --- names ------------------------------------------------------------------------------------


def test_is_tiny_matches_only_the_builtin_id():
    assert tiny.is_tiny("builtin:tiny")
    assert tiny.is_tiny(" Builtin:Tiny ")
    assert not tiny.is_tiny("Qwen/Qwen2.5-0.5B-Instruct")
    assert not tiny.is_tiny("./builtin:tiny/model")
    assert not tiny.is_tiny(None)


# --- tokenizer --------------------------------------------------------------------------------


def test_tokenizer_files_are_small():
    files = [p for p in tiny.FILES_DIR.iterdir() if p.suffix in {".json", ".jinja"}]
    assert {p.name for p in files} >= {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}
    assert sum(p.stat().st_size for p in files) < 1_000_000


def test_tokenizer_special_tokens(tokenizer):
    assert 1000 <= len(tokenizer) <= 2100
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    for marker in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        assert len(tokenizer.encode(marker, add_special_tokens=False)) == 1
    assert tokenizer.chat_template


@pytest.mark.parametrize(
    "text", ["plain words", "Zürich → 東京 🚀 naïve", "\t  tabs\n\nand  spaces ", "\x00\x7f"]
)
def test_any_text_round_trips(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.unk_token_id is None or tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_build_tokenizer_reproduces_the_shipped_file():
    sys.path.insert(0, str(tiny.FILES_DIR))
    try:
        import build_tokenizer
    finally:
        sys.path.remove(str(tiny.FILES_DIR))
    built = json.loads(build_tokenizer.build().to_str())
    shipped = json.loads((tiny.FILES_DIR / "tokenizer.json").read_text(encoding="utf-8"))
    assert built == shipped
    config = json.loads((tiny.FILES_DIR / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config == build_tokenizer.tokenizer_config()


# --- chat template ----------------------------------------------------------------------------


def test_template_renders_every_role(tokenizer):
    text = render(tokenizer, CONVERSATION, tools=[WEATHER])
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
    assert json.dumps(WEATHER) in text
    assert "<|im_start|>user\nWeather in Oslo?<|im_end|>\n" in text
    assert (
        '<|im_start|>assistant\n<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}'
        "</tool_call><|im_end|>\n" in text
    )
    assert '<|im_start|>tool\n{"temp": 3}<|im_end|>\n' in text
    assert "<|im_start|>assistant\nIt is 3 degrees in Oslo.<|im_end|>\n" in text
    assert text.endswith('{"city": "Lima"}}</tool_call><|im_end|>\n')
    assert text.count("<|im_start|>system") == 1


def test_string_and_mapping_arguments_render_the_same(tokenizer):
    as_string = render(tokenizer, [{"role": "user", "content": "hi"}, call('{"city": "Oslo", "n": 2}')])
    as_mapping = render(tokenizer, [{"role": "user", "content": "hi"}, call({"city": "Oslo", "n": 2})])
    assert as_string == as_mapping
    assert '"arguments": {"city": "Oslo", "n": 2}}' in as_mapping


def test_several_calls_and_content_in_one_turn(tokenizer):
    message = call({"city": "Oslo"})
    message["content"] = "Checking."
    message["tool_calls"].append(
        {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": {}}}
    )
    text = render(tokenizer, [{"role": "user", "content": "hi"}, message])
    assert text.endswith(
        'Checking.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>\n'
        '<tool_call>{"name": "get_time", "arguments": {}}</tool_call><|im_end|>\n'
    )


def test_no_tools_means_no_tool_block(tokenizer):
    messages = [{"role": "user", "content": "hi"}]
    assert render(tokenizer, messages) == "<|im_start|>user\nhi<|im_end|>\n"
    assert render(tokenizer, messages, tools=[]) == render(tokenizer, messages)
    assert render(tokenizer, messages, tools=[WEATHER]).startswith("<|im_start|>system\n# Tools\n")


def test_generation_prompt(tokenizer):
    messages = [{"role": "user", "content": "hi"}]
    text = render(tokenizer, messages, add_generation_prompt=True)
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_none_valued_keys_are_tolerated(tokenizer):
    # What datasets/Arrow makes of messages whose keys differ: every key on every message.
    def with_nones(message):
        full = {"role": None, "content": None, "tool_calls": None, "tool_call_id": None, "name": None}
        return full | message

    plain = render(tokenizer, CONVERSATION, tools=[WEATHER])
    assert render(tokenizer, [with_nones(m) for m in CONVERSATION], tools=[WEATHER]) == plain


def test_arrow_rows_render_like_the_source(tokenizer, records):
    datasets = pytest.importorskip("datasets")
    rows = datasets.Dataset.from_list([{"messages": r["messages"]} for r in records[:40]])
    for record, row in zip(records, rows):
        assert any(m["tool_calls"] is None for m in row["messages"])  # Arrow filled the gaps
        assert render(tokenizer, row["messages"], tools=record["tools"]) == render(
            tokenizer, record["messages"], tools=record["tools"]
        )


def test_prompt_is_a_token_prefix_on_every_sample_record(tokenizer, records):
    for i, record in enumerate(records):
        full = token_ids(tokenizer, record["messages"], record["tools"])
        prompt = token_ids(tokenizer, record["messages"][:-1], record["tools"], add_generation_prompt=True)
        assert len(prompt) < len(full), i
        assert full[: len(prompt)] == prompt, f"record {i}"


def assistant_spans(tokenizer, messages, tools=None) -> list[str]:
    """The decoded runs of tokens that the assistant mask marks."""
    out = tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    spans, run = [], []
    for token, marked in zip(out["input_ids"], out["assistant_masks"]):
        if marked:
            run.append(token)
        elif run:
            spans.append(tokenizer.decode(run))
            run = []
    if run:
        spans.append(tokenizer.decode(run))
    return spans


def test_assistant_mask_marks_exactly_the_assistant_turns(tokenizer):
    assert assistant_spans(tokenizer, CONVERSATION, tools=[WEATHER]) == [
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call><|im_end|>',
        "It is 3 degrees in Oslo.<|im_end|>",
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Lima"}}</tool_call><|im_end|>',
    ]


def test_assistant_mask_on_sample_records(tokenizer, records):
    for record in records[:60]:
        expected = [
            render(tokenizer, [m])[len("<|im_start|>assistant\n") : -1]
            for m in record["messages"]
            if m["role"] == "assistant"
        ]
        assert assistant_spans(tokenizer, record["messages"], record["tools"]) == expected


def test_trl_accepts_the_template_for_training(tokenizer):
    chat_template_utils = pytest.importorskip("trl.chat_template_utils")
    assert chat_template_utils.has_generation_markers(tokenizer.chat_template)
    assert chat_template_utils.supports_tool_calling(tokenizer)
    assert chat_template_utils.is_chat_template_prefix_preserving(tokenizer)
    assert chat_template_utils.is_chat_template_stop_token_trained(tokenizer)
    # None: TRL sees nothing to patch and trains with this template as it is.
    assert chat_template_utils.get_training_chat_template(tokenizer) is None


# --- model ------------------------------------------------------------------------------------


def test_same_seed_same_weights_and_global_rng_untouched():
    torch = pytest.importorskip("torch")
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first, again, other = tiny.build_model(seed=0), tiny.build_model(seed=0), tiny.build_model(seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    a, b, c = first.state_dict(), again.state_dict(), other.state_dict()
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_model_shape_and_a_forward_pass(tokenizer, records):
    torch = pytest.importorskip("torch")
    model = tiny.build_model(seed=0)
    n_params = sum(p.numel() for p in model.parameters())
    assert 300_000 <= n_params <= 2_000_000
    assert model.config.max_position_embeddings >= 2048
    assert model.config.vocab_size == len(tokenizer)
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    ids = torch.tensor([token_ids(tokenizer, records[0]["messages"], records[0]["tools"])])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss.item()
    # An untrained model is close to uniform over the vocabulary.
    assert abs(loss - torch.log(torch.tensor(float(len(tokenizer)))).item()) < 1.0
    assert tiny.build_model(seed=0, dtype=torch.bfloat16).dtype == torch.bfloat16


def test_import_does_not_load_torch():
    code = (
        "import sys, engine.model.tiny; "
        "heavy = [m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- sample data ------------------------------------------------------------------------------


def test_sample_records_are_well_formed(records):
    splits = [r["metadata"] for r in records]
    assert set(splits) == {"train", "eval"} and splits.count("eval") >= 10
    multi_turn = 0
    for i, record in enumerate(records):
        assert set(record) == {"messages", "tools", "metadata"}, i
        names = {tool["function"]["name"] for tool in record["tools"]}
        last = record["messages"][-1]
        assert last["role"] == "assistant" and last["tool_calls"], i
        for message in record["messages"]:
            for tool_call in message.get("tool_calls") or []:
                assert tool_call["type"] == "function" and tool_call["id"]
                assert tool_call["function"]["name"] in names, i
                assert isinstance(json.loads(tool_call["function"]["arguments"]), dict)
        multi_turn += any(m["role"] == "tool" for m in record["messages"])
    assert 0 < multi_turn < len(records)


def test_sample_file_matches_its_generator(records):
    sys.path.insert(0, str(ROOT / "data"))
    try:
        import make_samples
    finally:
        sys.path.remove(str(ROOT / "data"))
    assert make_samples.make_toolcall_sample() == records
