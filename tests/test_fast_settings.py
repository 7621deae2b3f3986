"""train.fast: which settings a GPU run gets from the presets that use it, the fallback of each when
something is missing, the user's own trl: keys winning, and nothing changed on the CPU. The configs
are resolved from the real presets; choose() is given the machine it decides for."""

from __future__ import annotations

import pytest

from engine import config as config_mod
from engine.train import fast

from conftest import SAMPLE

FAST_PRESETS = ("qwen-sft", "small-dataset", "gemma3-lora-csv")
LIGER = frozenset({"qwen2", "llama", "mistral", "gemma3"})


def resolve(preset: str, *sets: str, model: str | None = None) -> dict:
    flags = {"data.path": str(SAMPLE)}
    if model:
        flags["model.name_or_path"] = model
    return config_mod.resolve(preset=preset, flags=flags, sets=list(sets))


def gpu(**kw) -> fast.Machine:
    """An H200-like machine with liger-kernel installed, sdpa attention and room to spare."""
    values = dict(cuda=True, liger_models=LIGER, packed_masks=True, model_type="qwen2", attention="sdpa", cpus=16,
                  memory_without_checkpointing="fits", memory_line="the estimate is 3.1 of 139.8 GiB")
    values.update(kw)
    return fast.Machine(**values)


@pytest.mark.parametrize("preset", FAST_PRESETS)
def test_presets_get_every_fast_setting_on_a_gpu(preset):
    cfg = resolve(preset, model="builtin:shape:qwen2.5-0.5b")
    assert cfg["train"]["fast"] is True
    choice = fast.choose(cfg, gpu())
    assert choice.trl["use_liger_kernel"] is True
    assert choice.trl["packing_strategy"] == "bfd" and choice.overrides["train.packing"] is True
    assert choice.trl["dataloader_num_workers"] == fast.DATALOADER_WORKERS
    assert "train.gradient_checkpointing" not in choice.overrides  # it fits without: stays off
    assert len(choice.lines) == 4 and all(line.startswith("fast: ") for line in choice.lines)
    run_cfg = fast.apply(cfg, choice)
    assert run_cfg["train"]["packing"] is True and run_cfg["train"]["longest_first"] is False
    assert cfg["train"]["packing"] is False, "the config the user asked for is not changed"
    config_mod.check_train(run_cfg)  # packing without longest-first: a config the checks accept


def test_each_setting_falls_back_with_one_line():
    cfg = resolve("qwen-sft", model="builtin:shape:qwen2.5-0.5b")
    choice = fast.choose(cfg, gpu(liger_models=frozenset(), attention="eager", packed_masks=False,
                                  memory_without_checkpointing="will_not_fit", memory_line="the estimate is 90.2 of 79.6 GiB", cpus=2))
    assert "use_liger_kernel" not in choice.trl and "packing" not in str(choice.overrides)
    assert choice.overrides == {"train.gradient_checkpointing": True}
    assert "dataloader_num_workers" not in choice.trl
    text = "\n".join(choice.lines)
    assert "liger-kernel is not installed" in text
    assert "packing off: attention 'eager' this transformers does not separate packed sequences" in text
    assert "gradient checkpointing on: without it the estimate is 90.2 of 79.6 GiB" in text
    assert "2 CPUs" in text


def test_packing_follows_the_attention_implementation():
    cfg = resolve("small-dataset", model="builtin:shape:llama-3.2-1b")
    for attention, packs in (("flash_attention_2", True), ("sdpa", True), ("flex_attention", True), ("paged_attention", False)):
        choice = fast.choose(cfg, gpu(attention=attention, model_type="llama"))
        assert choice.packing is packs, attention
    assert "varlen" in fast.choose(cfg, gpu(attention="flash_attention_2")).lines[1]
    no_kernels = fast.choose(cfg, gpu(model_type="falcon"))
    assert "no kernels for model type 'falcon'" in no_kernels.lines[0] and "use_liger_kernel" not in no_kernels.trl


def test_packing_keeps_the_tokens_of_a_step():
    """Packed rows replace examples so that a step trains about as many tokens as before."""
    qwen = resolve("qwen-sft", model="builtin:shape:qwen2.5-0.5b")  # batch 4 x 1 at max_length 512
    choice = fast.choose(qwen, gpu(median_tokens=355))
    assert choice.overrides["train.per_device_train_batch_size"] == 3  # 4 x 355 tokens ~ 3 rows of 512
    assert "train.gradient_accumulation_steps" in choice.overrides and choice.overrides["train.gradient_accumulation_steps"] == 1
    assert "4 x 1 examples a step (median 355 tokens) become 3 x 1 rows of 512" in choice.lines[1]
    small = resolve("small-dataset", model="builtin:shape:qwen2.5-0.5b")  # batch 1 x 4 at max_length 2048
    choice = fast.choose(small, gpu(median_tokens=355))
    assert (choice.overrides["train.per_device_train_batch_size"], choice.overrides["train.gradient_accumulation_steps"]) == (1, 1)
    long_rows = fast.choose(qwen, gpu(median_tokens=500))  # 4 x 500 ~ 4 rows of 512: nothing to change
    assert "train.per_device_train_batch_size" not in long_rows.overrides


def test_the_users_trl_keys_win():
    cfg = resolve("qwen-sft", "trl.use_liger_kernel=false", "trl.packing=false", "trl.dataloader_num_workers=0",
                  model="builtin:shape:qwen2.5-0.5b")
    choice = fast.choose(cfg, gpu())
    assert not choice.overrides and not choice.trl
    assert choice.lines[0] == "fast: Liger kernels as set (trl.use_liger_kernel)"
    assert fast.apply(cfg, choice) is cfg
    # a key the user set survives apply() when the choice adds others
    cfg = resolve("qwen-sft", "trl.use_liger_kernel=false", model="builtin:shape:qwen2.5-0.5b")
    run_cfg = fast.apply(cfg, fast.choose(cfg, gpu()))
    assert run_cfg["trl"]["use_liger_kernel"] is False and run_cfg["trl"]["packing_strategy"] == "bfd"


def test_fast_off_and_grpo_change_nothing():
    assert fast.choose(resolve("quick-test"), gpu()).lines == []
    grpo = config_mod.resolve(preset="grpo-quick", sets=["train.fast=true"])
    choice = fast.choose(grpo, gpu())
    assert not choice.trl and not choice.overrides and "SFT only" in choice.lines[0]


def test_nothing_changes_on_the_cpu(tmp_path):
    """On this machine (no CUDA) the fast presets give TRL exactly the config they give without fast."""
    from engine.train import sft

    cfg = resolve("small-dataset")
    machine = fast.probe(cfg)
    assert machine.cuda is False
    choice = fast.choose(cfg, machine)
    assert choice.lines == ["fast settings: none on this machine (no CUDA GPU); training as configured"]
    with_fast = sft.sft_config(fast.apply(cfg, choice), tmp_path, "fp32", has_eval=True).to_dict()
    without = sft.sft_config(resolve("small-dataset", "train.fast=false"), tmp_path, "fp32", has_eval=True).to_dict()
    assert with_fast == without
