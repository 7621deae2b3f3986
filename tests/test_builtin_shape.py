"""builtin:shape:NAME: the shipped configs have the real models' sizes, the model built from one
has exactly the parameters the estimate counts, the builtin tokenizer's ids fit its vocabulary, and
an unknown name is refused in one line before anything starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine import config as config_mod
from engine.memory import estimate
from engine.model import builtin_shape, shape, tiny

from conftest import ROOT, SAMPLE

# Parameter counts of the models whose config.json is shipped (their model cards' figures).
REAL_PARAMS = {"qwen2.5-0.5b": 494_032_768, "llama-3.2-1b": 1_235_814_400, "mistral-7b": 7_248_023_552}
H200 = [{"index": 0, "name": "NVIDIA H200", "total_mb": 143771.0, "used_mb": 0.0, "bf16": True}]


def test_the_shipped_shapes_count_like_the_real_models():
    assert builtin_shape.names() == sorted(REAL_PARAMS)
    for name, params in REAL_PARAMS.items():
        found = shape.model_shape(builtin_shape.PREFIX + name)
        assert found.params == params, name
        assert found.source == "builtin shape (config.json)"


@pytest.mark.parametrize("name", sorted(REAL_PARAMS))
def test_the_built_model_is_what_the_estimate_counts(name):
    import torch

    tokenizer = tiny.load_tokenizer()
    # On the meta device: the real construction, without drawing 7 billion weights on two cores.
    model = builtin_shape.build_model(builtin_shape.PREFIX + name, tokenizer, seed=0, dtype=torch.bfloat16, device="meta")
    assert sum(p.numel() for p in model.parameters()) == REAL_PARAMS[name]
    assert model.config.vocab_size > len(tokenizer)  # every id the tokenizer makes has an embedding row
    assert (model.config.eos_token_id, model.config.pad_token_id) == (tokenizer.eos_token_id, tokenizer.pad_token_id)
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id


def test_the_seeded_build_leaves_the_callers_rng_alone_and_trains():
    """A resumed run rebuilds the base model from the seed, drawn in a forked RNG as builtin:tiny's is: the
    same seed giving the same weights is checked on builtin:tiny (tests/test_tiny.py), whole runs resumed on a
    GPU by the GPU check; one half-billion-weight build here (two would cost 10 s on two cores) checks the
    caller's RNG is untouched and the model computes."""
    import torch

    tokenizer = tiny.load_tokenizer()
    cfg = builtin_shape.config_dict("builtin:shape:qwen2.5-0.5b")
    assert cfg["vocab_size"] == 151936
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = builtin_shape.build_model("builtin:shape:qwen2.5-0.5b", tokenizer, seed=3, dtype=torch.bfloat16, device="cpu")
    assert torch.equal(torch.get_rng_state(), state)
    ids = torch.tensor([tokenizer("get_weather(city='Oslo')")["input_ids"]])
    loss = first(input_ids=ids, labels=ids).loss
    assert torch.isfinite(loss) and loss.item() > 5  # random weights over a 151,936-token vocabulary


def test_the_estimate_reads_the_shipped_config():
    cfg = config_mod.resolve(preset="mistral-nli-qlora", flags={"data.path": str(SAMPLE), "model.name_or_path": "builtin:shape:mistral-7b"})
    est = estimate.estimate(cfg, gpus=H200)
    assert est.known and est.verdict == "fits"
    assert est.assumptions["params"] == REAL_PARAMS["mistral-7b"]
    assert est.assumptions["finetune"] == "qlora"


def test_an_unknown_shape_is_refused_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "cockpit.cli", "run", "--preset", "quick-test", "--model", "builtin:shape:qwen-9b",
                           "-o", str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no builtin shape 'qwen-9b'" in lines[0] and "builtin:shape:qwen2.5-0.5b" in lines[0]
    assert not (tmp_path / "run").exists()
