"""The memory estimate: sizes read from real model files, the verdict and fix a user sees, and the formula
checked against what autograd really keeps for a small Llama on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import config as config_mod
from engine.memory import estimate as est
from engine.model import shape as model_shape

GIB = 2**30
GPU_24 = {"index": 0, "name": "NVIDIA GeForce RTX 4090", "total_mb": 24564.0, "bf16": True}
GPU_80 = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "total_mb": 81559.0, "bf16": True}
# Mistral-7B-v0.1's config.json, numbers as published.
MISTRAL_7B = {
    "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 32000,
    "tie_word_embeddings": False, "max_position_embeddings": 32768, "rms_norm_eps": 1e-5, "torch_dtype": "bfloat16",
}
# Llama-3.2-1B's shape.
LLAMA_1B = {
    "model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256, "tie_word_embeddings": True,
}


def config_dir(path: Path, cfg: dict) -> Path:
    """A model directory holding only config.json, as a hub snapshot before its weights download."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg))
    return path


def resolve(model: Path | str, *sets: str) -> dict:
    return config_mod.resolve(preset="quick-test", sets=[f"model.name_or_path={model}", *sets])


def with_fix(cfg: dict, fix: est.Fix) -> dict:
    """The config with a fix's overrides applied the way a user's --set would be: validated by the schema."""
    return config_mod.merge(cfg, config_mod.dotted_to_layer(fix.overrides, "fix"))


def tiny_llama(tied: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=64, intermediate_size=176, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                      vocab_size=300, tie_word_embeddings=tied)
    return LlamaForCausalLM(cfg)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_headers_count_every_parameter_and_every_lora_weight(tmp_path, tied):
    """Counts from safetensors headers equal what transformers and peft count on the loaded model, sharded or not."""
    from peft import LoraConfig, get_peft_model

    model = tiny_llama(tied)
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    model.save_pretrained(single)
    model.save_pretrained(sharded, max_shard_size="100KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    for folder in (single, sharded):
        shape = model_shape.model_shape(str(folder))
        assert shape.source == "safetensors headers"
        assert shape.params == model.num_parameters()
        assert shape.tied is tied
    cfg = resolve(single, "lora.r=8", "lora.target_modules=[q_proj, v_proj]")
    peft_model = get_peft_model(tiny_llama(tied), LoraConfig(r=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert est.estimate(cfg, gpus=[GPU_24]).assumptions["trainable_params"] == trainable
    all_linear = get_peft_model(tiny_llama(tied), LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in all_linear.parameters() if p.requires_grad)
    assert est.estimate(resolve(single, "lora.r=8"), gpus=[GPU_24]).assumptions["trainable_params"] == trainable


def test_builtin_tiny_is_sized_without_building_it():
    from engine.model import tiny

    assert model_shape.model_shape("builtin:tiny").params == tiny.build_model().num_parameters()


def test_7b_config_weighs_14_5_gb_in_bf16_and_about_4_gb_in_qlora(tmp_path):
    folder = config_dir(tmp_path / "mistral", MISTRAL_7B)
    shape = model_shape.model_shape(str(folder))
    assert shape.source == "config.json"
    assert 7.2e9 < shape.params < 7.3e9  # Mistral-7B: 7.24B
    bf16 = est.estimate(resolve(folder, "model.dtype=bf16"), gpus=[GPU_80])
    assert 14.3e9 < bf16.components["weights"] < 14.7e9
    assert bf16.assumptions["precision"] == "bf16"
    qlora = est.estimate(resolve(folder, "model.finetune=qlora"), gpus=[GPU_80])
    # NF4 linear layers (3.6 GB) plus embeddings and lm_head, which peft's prepare_model_for_kbit_training
    # (engine/model/load.py) upcasts to fp32 (1 GB).
    assert 4.2e9 < qlora.components["weights"] < 4.9e9


def test_full_finetune_of_7b_does_not_fit_one_80gib_gpu_and_the_fix_leaves_full_finetuning(tmp_path):
    folder = config_dir(tmp_path / "mistral", MISTRAL_7B)
    cfg = resolve(folder, "model.finetune=full", "train.per_device_train_batch_size=4", "train.max_length=2048")
    e = est.estimate(cfg, gpus=[GPU_80])
    assert e.verdict == "will_not_fit"
    # fp32 weights, fp32 gradients and AdamW's two fp32 states alone: 16 bytes a parameter, far over 80 GiB
    c = e.components
    assert c["weights"] + c["gradients"] + c["optimizer"] > 100 * GIB
    assert e.fix is not None and e.fix.overrides.get("model.finetune") in ("lora", "qlora")
    assert "model.finetune=lora" in e.fix.cli or "--qlora" in e.fix.cli
    line = e.line()
    assert "will not fit" in line and "of 79.6 GiB (H100 80GB HBM3)" in line and "fix: " in line
    after = est.estimate(with_fix(cfg, e.fix), gpus=[GPU_80])
    assert after.verdict == "fits" and after.total_bytes == e.fix.total_bytes


def test_lora_that_does_not_fit_24gib_gets_checkpointing_or_a_batch_split_that_really_fits(tmp_path):
    folder = config_dir(tmp_path / "llama1b", LLAMA_1B)
    cfg = resolve(folder, "train.per_device_train_batch_size=16", "train.max_length=4096", "train.gradient_accumulation_steps=2")
    e = est.estimate(cfg, gpus=[GPU_24])
    assert e.verdict == "will_not_fit"
    assert set(e.fix.overrides) <= {"train.gradient_checkpointing", "train.per_device_train_batch_size", "train.gradient_accumulation_steps"}
    fixed = with_fix(cfg, e.fix)
    t = fixed["train"]
    assert t["per_device_train_batch_size"] * t["gradient_accumulation_steps"] == 32  # the same effective batch
    after = est.estimate(fixed, gpus=[GPU_24])
    assert after.verdict == "fits" and after.total_bytes <= 0.9 * 24564 * 2**20
    assert e.fix.cli.startswith(("--set train.gradient_checkpointing=true", "--batch-size "))


def test_fsdp_over_4_gpus_divides_what_it_shards(tmp_path):
    folder = config_dir(tmp_path / "mistral", MISTRAL_7B)
    base = ["model.finetune=full", "train.gradient_checkpointing=true"]
    one = est.estimate(resolve(folder, *base), gpus=[GPU_80] * 4)
    fsdp = est.estimate(resolve(folder, *base, "run.gpus=4", "run.distributed=fsdp"), gpus=[GPU_80] * 4)
    zero2 = est.estimate(resolve(folder, *base, "run.gpus=4", "run.distributed=deepspeed-zero2"), gpus=[GPU_80] * 4)
    a, b, z = one.components, fsdp.components, zero2.components
    assert b["gradients"] == a["gradients"] // 4 and b["optimizer"] == a["optimizer"] // 4
    assert a["weights"] / 4 < b["weights"] < a["weights"] / 2  # a quarter, plus the two layers gathered at a time
    assert b["activations"] == a["activations"]  # the micro batch is per GPU
    assert z["weights"] == a["weights"] and z["optimizer"] == a["optimizer"] // 4
    assert one.verdict == "will_not_fit" and fsdp.verdict == "fits"
    assert "(4x H100 80GB HBM3, fsdp)" in fsdp.line()
    # a 70B model whose 4-bit weights alone fill one 24 GiB GPU: the fix is to use the other three too
    big = config_dir(tmp_path / "llama70b", {**LLAMA_1B, "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
                                             "num_attention_heads": 64, "head_dim": 128, "tie_word_embeddings": False})
    cfg = resolve(big, "model.finetune=qlora", "train.gradient_checkpointing=true", "train.per_device_train_batch_size=1")
    e = est.estimate(cfg, gpus=[GPU_24] * 4)
    assert e.verdict == "will_not_fit" and e.fix.overrides["run.distributed"] == "fsdp"
    assert e.fix.cli == f"--gpus {e.fix.overrides['run.gpus']} --distributed fsdp"


def test_hub_id_not_in_the_cache_is_unknown_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    e = est.estimate(resolve("someorg/not-downloaded-7b"), gpus=[GPU_80])
    assert e.verdict == "unknown" and e.total_bytes == 0
    assert e.line() == (
        "memory estimate: size unknown until the model is downloaded "
        "(someorg/not-downloaded-7b is not in the local Hugging Face cache)"
    )
    assert e.payload()["verdict"] == "unknown"


def test_hub_id_in_the_cache_is_read_from_its_snapshot(tmp_path, monkeypatch):
    """The cache layout huggingface_hub writes: refs/main names the snapshot holding config.json."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--mistralai--Mistral-7B-v0.1"
    config_dir(repo / "snapshots" / "0123abcd", MISTRAL_7B)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    e = est.estimate(resolve("mistralai/Mistral-7B-v0.1", "model.dtype=bf16"), gpus=[GPU_80])
    assert e.known and 14.3e9 < e.components["weights"] < 14.7e9
    assert "weights not downloaded yet" in " ".join(e.notes)


def test_grpo_keeps_a_reference_model_only_for_full_finetuning_with_a_kl_term(tmp_path):
    folder = config_dir(tmp_path / "llama1b", LLAMA_1B)
    grpo = ["run.type=grpo", "grpo.num_generations=8", "grpo.max_completion_length=1024"]

    def ref(*sets: str) -> int:
        return est.estimate(resolve(folder, *grpo, *sets), gpus=[GPU_80]).components["reference_model"]

    assert ref("model.finetune=full", "grpo.beta=0.04") > 2e9
    assert ref("model.finetune=full", "grpo.beta=0.0") == 0
    assert ref("model.finetune=lora", "grpo.beta=0.04") == 0  # LoRA scores the reference with its adapters off
    e = est.estimate(resolve(folder, *grpo, "train.gradient_accumulation_steps=4"), gpus=[GPU_80])
    # the whole generation batch (batch x generations x accumulation) holds a KV cache at once
    assert e.assumptions["generation_sequences"] == 4 * 8 * 4 and e.components["generation"] > 0


def test_no_gpu_compares_the_cpu_run_with_ram():
    cfg = config_mod.resolve(preset="small-dataset")
    e = est.estimate(cfg, gpus=[], ram_bytes=8 * GIB)
    assert e.device == "cpu" and e.verdict == "fits" and e.assumptions["precision"] == "fp32"
    assert e.line().startswith("memory estimate: ") and "on the CPU (no GPU visible) of 8.0 GiB RAM: fits" in e.line()
    qlora = est.estimate(config_mod.resolve(preset="small-dataset", sets=["model.finetune=qlora"]), gpus=[])
    assert qlora.verdict == "no_gpu" and "QLoRA needs a CUDA GPU" in qlora.line()


def test_activation_formula_matches_what_autograd_keeps(tmp_path):
    """The bytes autograd saves for backward through a small Llama, as the engine trains it (peft LoRA or
    full, bf16 autocast, TRL's fused LM head, a padded batch), against the estimate's layer and mask terms."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig
    from trl.trainer.utils import add_fused_lm_head

    hf_cfg = LlamaConfig(hidden_size=256, intermediate_size=896, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                         vocab_size=1000, tie_word_embeddings=False)
    folder = tmp_path / "llama"
    AutoModelForCausalLM.from_config(hf_cfg).save_pretrained(folder)
    batch, seq = 4, 128
    for finetune in ("lora", "full"):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(hf_cfg, dtype=torch.float32 if finetune == "full" else torch.bfloat16, attn_implementation="sdpa")
        add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
        if finetune == "lora":
            # dropout 0: on the CPU dropout keeps a float mask where CUDA keeps a bool one
            model = get_peft_model(model, LoraConfig(r=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")).get_base_model()
        model.train()
        ids = torch.randint(0, 1000, (batch, seq))
        mask = torch.ones(batch, seq, dtype=torch.long)
        mask[0, -10:] = 0
        param_shapes = {tuple(p.shape) for p in model.parameters()}
        saved: dict[int, int] = {}

        def keep(t):
            if tuple(t.shape) not in param_shapes:  # parameters and autocast's copies of them are not activations
                saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
            model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100), fused_lm_head=True)
        cfg = resolve(folder, f"model.finetune={finetune}", "model.dtype=bf16", "lora.dropout=0.0",
                      f"train.per_device_train_batch_size={batch}", f"train.max_length={seq}")
        parts = est.estimate(cfg, gpus=[GPU_24]).activation_parts
        predicted = parts["layers"] + parts["mask"]
        measured = sum(saved.values())
        assert 0.9 < predicted / measured < 1.1, (finetune, predicted, measured)


def test_the_estimate_imports_nothing_heavy_and_is_fast():
    code = (
        "import sys, time\nt = time.time()\nfrom engine import config\nfrom engine.memory import estimate\n"
        "e = estimate.estimate(config.resolve(preset='small-dataset'))\n"
        "print(round(time.time() - t, 3), [m for m in ('torch', 'transformers', 'huggingface_hub', 'trl', 'peft') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert out[1].strip() == "[]"
    assert float(out[0]) < 2.0


def test_no_cuda_visible_devices_means_no_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert est.visible_gpus() == []


def test_the_estimate_event_is_in_the_contract():
    from engine import events

    assert events.TYPES.index("estimate") == events.TYPES.index("run_started") + 1
    assert "- estimate:" in events.__doc__


@pytest.mark.anyio
async def test_new_run_form_shows_the_estimate_and_follows_the_model(tmp_path, monkeypatch):
    pytest.importorskip("textual")
    from textual.widgets import Input

    from cockpit.tui.app import CockpitApp
    from cockpit.tui.screens.new_run import NewRunScreen, input_id
    from cockpit.tui.widgets.new_run.estimate import MemoryEstimate

    monkeypatch.chdir(tmp_path)
    folder = config_dir(tmp_path / "mistral", MISTRAL_7B)
    app = CockpitApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        form = app.screen
        assert isinstance(form, NewRunScreen)
        widget = form.query_one(MemoryEstimate)
        assert "memory estimate: " in str(widget.render())
        widget.gpus = [GPU_24]  # this machine has none: the form as it looks on a 24 GiB workstation
        form.query_one("#field-model-name-or-path", Input).value = str(folder)
        form.query_one("#" + input_id("train.max_length"), Input).value = "4096"
        deadline = time.monotonic() + 10
        while "will not fit" not in str(widget.render()):
            assert time.monotonic() < deadline, str(widget.render())
            await pilot.pause(0.05)
        text = str(widget.render())
        assert "per GPU of 24.0 GiB (GeForce RTX 4090)" in text and "fix: " in text
        form.query_one("#" + input_id("train.learning_rate"), Input).value = "fast"
        await pilot.pause(0.5)
        assert str(widget.render()) == "memory estimate: none until the error above is fixed"  # says why it is empty
