"""`builtin:tiny`: a small randomly initialised causal LM built on the spot, for demos and tests.

Its tokenizer (byte-level BPE, ChatML-like chat template with tools and generation markers) ships
in `engine/model/builtin_tiny/`; the weights come from a seed, so no download is ever needed. It is sized
to train for real with TRL on a CPU in seconds. torch and transformers are imported inside the
functions, so importing this module stays cheap.
"""

from __future__ import annotations

from pathlib import Path

TINY_ID = "builtin:tiny"
FILES_DIR = Path(__file__).resolve().parent / "builtin_tiny"

# Small enough for a two-core CPU, big enough to learn the sample tool-calling set.
HIDDEN_SIZE = 128
INTERMEDIATE_SIZE = 384
NUM_LAYERS = 2
NUM_HEADS = 4
NUM_KV_HEADS = 2
MAX_POSITIONS = 2048
# Weight std at init. The LoRA default leaves the (tied) embeddings and the final norm frozen, so
# the output layer's random scale bounds how confident the model can get: at the usual 0.02 the
# logits span about 2.5 and the loss stalls near 5; at 0.1 it falls to about 1 on the sample set.
INITIALIZER_RANGE = 0.1


def is_tiny(name: object) -> bool:
    """Whether a `--model` value names the built-in tiny model."""
    return isinstance(name, str) and name.strip().lower() == TINY_ID


def load_tokenizer():
    """The shipped tokenizer as a `PreTrainedTokenizerFast`, with pad, eos and chat template set."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(FILES_DIR))
    if not tokenizer.chat_template:  # older transformers do not read chat_template.jinja
        tokenizer.chat_template = (FILES_DIR / "chat_template.jinja").read_text(encoding="utf-8")
    return tokenizer


def model_config(vocab_size: int, pad_token_id: int, eos_token_id: int):
    """The `LlamaConfig` of builtin:tiny."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=INTERMEDIATE_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        initializer_range=INITIALIZER_RANGE,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        bos_token_id=None,
    )


def build_model(seed: int = 0, dtype=None):
    """A freshly initialised builtin:tiny causal LM; the same seed gives the same weights.

    The seed is applied inside a forked RNG, so the caller's global torch RNG state is untouched.
    `dtype` (a torch dtype, default float32) is the dtype of the returned weights.
    """
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer()
    config = model_config(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    if dtype is not None:
        model = model.to(dtype)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model
