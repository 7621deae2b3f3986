"""Saving as the PyTorch pipeline did: checkpoints every save_steps and at every epoch end together,
and epoch_N/ models written whole."""

from __future__ import annotations

import json

import pytest

from conftest import of_type
from engine import run_dir as names
from engine.checkpoints import problem


@pytest.fixture
def io_data(tmp_path):
    """40 input/output records, the PyTorch pipeline's format: 36 train + 4 eval, 5 steps an epoch at batch 8."""
    path = tmp_path / "io.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(40):
            a, b = i % 9 + 1, (i * 7) % 9 + 1
            f.write(json.dumps({"input": f"What is {a} plus {b}?", "output": f"{a} plus {b} is {a + b}."}) + "\n")
    return path


def _steps(run_dir):
    return [step for step, _ in names.checkpoint_dirs(run_dir)]


def test_qwen_sft_saves_every_save_steps_and_a_model_each_epoch(run_engine, io_data):
    """The qwen-sft preset, as its header says: checkpoint-N every save_steps, epoch_N/ after each epoch, best/."""
    flags = {"data.path": str(io_data), "model.name_or_path": "builtin:tiny"}
    sets = ["train.num_train_epochs=2", "train.per_device_train_batch_size=8", "train.save_steps=3",
            "train.save_total_limit=10", "train.logging_steps=5"]
    code, events, run_dir = run_engine("qwen-sft", sets=sets, flags=flags)
    assert code == 0
    assert _steps(run_dir) == [3, 6, 9, 10]  # every 3 steps, and the end of training
    assert all(problem(path) is None for _, path in names.checkpoint_dirs(run_dir))  # each one sealed
    epochs = names.epoch_dirs(run_dir)
    assert [n for n, _ in epochs] == [1, 2]
    assert not list(run_dir.glob("*.tmp"))
    finished = of_type(events, "run_finished")[-1]
    assert finished["outputs"]["epochs"] == [str(path) for _, path in epochs]
    assert [e["step"] for e in of_type(events, "status") if e.get("epoch_model")] == [5, 10]

    # epoch_N/ is a model as final/ is: full fine-tuning here, loadable with its tokenizer.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(epochs[0][1])
    tokenizer = AutoTokenizer.from_pretrained(epochs[0][1])
    assert model.num_parameters() > 0 and tokenizer.chat_template
    # epoch 2 ended where training did: its weights are final/'s
    from safetensors.torch import load_file

    last, final = load_file(epochs[1][1] / "model.safetensors"), load_file(run_dir / names.FINAL / "model.safetensors")
    assert last.keys() == final.keys() and all(bool((last[k] == final[k]).all()) for k in last)
    first = load_file(epochs[0][1] / "model.safetensors")
    assert any(not bool((first[k] == last[k]).all()) for k in first)


def test_epoch_strategy_with_save_steps_saves_at_both(run_engine, io_data):
    """save_strategy epoch used to drop --save-steps silently: now both save, each step once, and an
    epoch cut short by max_steps gets no epoch_N/."""
    flags = {"data.path": str(io_data), "model.name_or_path": "builtin:tiny"}
    sets = ["model.finetune=lora", "train.max_steps=7", "train.per_device_train_batch_size=8", "train.save_strategy=epoch",
            "train.save_steps=3", "train.save_total_limit=10", "train.epoch_models=true", "train.eval_strategy=no",
            "train.logging_steps=5"]
    code, events, run_dir = run_engine("qwen-sft", sets=sets, flags=flags)
    assert code == 0
    assert _steps(run_dir) == [3, 5, 6, 7]  # steps 3 and 6, the end of epoch 1 (step 5), the end of training
    saved = [e["step"] for e in of_type(events, "checkpoint")]
    assert sorted(saved) == sorted(set(saved))  # no step saved twice
    assert [n for n, _ in names.epoch_dirs(run_dir)] == [1]
    assert (run_dir / "epoch_1" / "adapter_model.safetensors").is_file()  # LoRA: the adapter, as final/ holds it
    assert (run_dir / "epoch_1" / "tokenizer.json").is_file()
