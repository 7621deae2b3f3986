"""Build the tokenizer files of builtin:tiny in this folder; the same inputs give the same files.

    python engine/model/builtin_tiny/build_tokenizer.py

A byte-level BPE (every byte is in the base alphabet, so any text tokenizes) trained with the
`tokenizers` library on the text of data/toolcall_sample.jsonl, the chat template's own strings and
a little general English below. Writes tokenizer.json and tokenizer_config.json; the chat template
lives next to them in chat_template.jinja.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]  # engine/model/builtin_tiny -> the project
SAMPLE = ROOT / "data" / "toolcall_sample.jsonl"

VOCAB_SIZE = 1024
MODEL_MAX_LENGTH = 2048
PAD = "<|endoftext|>"
SPECIAL_TOKENS = [PAD, "<|im_start|>", "<|im_end|>"]
# Single tokens for the tool-call markers keep the sequences short; they are not special, so
# decode(skip_special_tokens=True) still shows them.
ADDED_TOKENS = ["<tool_call>", "</tool_call>", "<tools>", "</tools>"]

GENERAL_TEXT = """\
The quick brown fox jumps over the lazy dog. A small model learns the shape of its data first:
brackets, quotes, names and numbers. Hello! How can I help you today? Sure, here is the answer.
I'm sorry, I can't do that. Please tell me more about what you need. Thank you, that was useful.
What is the capital of France? Paris is the capital of France. Two plus two is four.
Write a short poem about the sea. The sea is wide and grey, it breathes against the stone.
Summarise this paragraph in one sentence. Translate "good morning" into Spanish: buenos dias.
Is this review positive or negative? The film was long but the ending made it worth it.
Premise: a man is playing a guitar. Hypothesis: a person makes music. Label: entailment.
Question: Tom has 3 apples and buys 5 more. How many apples does he have? Answer: 8.
def add(a, b):
    return a + b
for i in range(10):
    print(i)
{"key": "value", "list": [1, 2, 3], "nested": {"ok": true, "none": null}}
0 1 2 3 4 5 6 7 8 9 10 12 15 20 25 30 50 100 1000 2024 2025 3.14 0.5
Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June
July August September October November December morning afternoon evening tonight tomorrow
"""


def training_texts() -> list[str]:
    """The texts the BPE merges are learnt from."""
    texts = [GENERAL_TEXT, (HERE / "chat_template.jinja").read_text(encoding="utf-8")]
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        texts.extend(json.dumps(tool, ensure_ascii=False) for tool in record["tools"])
        for message in record["messages"]:
            if message.get("content"):
                texts.append(message["content"])
            for call in message.get("tool_calls") or []:
                function = call["function"]
                texts.append(
                    '{"name": "%s", "arguments": %s}' % (function["name"], function["arguments"])
                )
    return texts


def build():
    """Train the tokenizer and return it (a `tokenizers.Tokenizer`)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    # Untrimmed offsets, so character spans (assistant masks) map onto whole tokens.
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_texts(), trainer=trainer)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED_TOKENS])
    return tokenizer


def tokenizer_config() -> dict:
    """tokenizer_config.json: which tokens are pad/eos, and the length the model supports."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        # Generation stops at the end of the assistant turn.
        "eos_token": "<|im_end|>",
        "pad_token": PAD,
        "unk_token": None,
        "model_max_length": MODEL_MAX_LENGTH,
        "padding_side": "right",
        "clean_up_tokenization_spaces": False,
        "add_bos_token": False,
        "add_eos_token": False,
    }


def main() -> None:
    tokenizer = build()
    tokenizer.save(str(HERE / "tokenizer.json"))
    (HERE / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config(), indent=2) + "\n", encoding="utf-8"
    )
    print(f"wrote {HERE / 'tokenizer.json'} (vocab {tokenizer.get_vocab_size()})")


if __name__ == "__main__":
    main()
