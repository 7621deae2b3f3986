"""One schema, layered: defaults < preset (< builtin_tiny block) < --config file < flags < --set."""

from __future__ import annotations

import pytest
import yaml

from engine import config as c


@pytest.mark.parametrize("name", c.preset_names())
def test_every_preset_is_valid_and_documented(name):
    layer, _ = c.load_preset(name)
    text = c.preset_path(name).read_text()
    assert text.startswith("# ") and "cockpit run --preset " + name in text
    assert c.preset_summary(name)


def test_layers_later_wins(tmp_path):
    cfg_file = tmp_path / "exp.yaml"
    cfg_file.write_text("train:\n  learning_rate: 1.0e-4\n  max_length: 300\n  logging_steps: 7\n")
    cfg = c.resolve(preset="small-dataset", config_file=cfg_file, flags={"train.max_length": 400}, sets=["train.max_length=500"])
    assert cfg["train"]["max_length"] == 500  # --set beats the flag
    assert cfg["train"]["learning_rate"] == 1e-4  # the file beats the preset and its builtin_tiny block
    assert cfg["train"]["logging_steps"] == 7
    assert cfg["train"]["weight_decay"] == c.defaults()["train"]["weight_decay"]  # defaults underneath
    cfg = c.resolve(preset="small-dataset", flags={"train.max_length": 400})
    assert cfg["train"]["max_length"] == 400  # the flag beats the preset


def test_builtin_tiny_block_applies_only_to_builtin_tiny():
    tiny = c.resolve(preset="small-dataset")
    real = c.resolve(preset="small-dataset", flags={"model.name_or_path": "Qwen/Qwen2.5-0.5B-Instruct"})
    assert real["train"]["learning_rate"] == 1e-5 and real["train"]["num_train_epochs"] == 10
    assert tiny["train"]["learning_rate"] > real["train"]["learning_rate"]


def test_preset_paths_resolve_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = c.resolve(preset="quick-test")
    assert cfg["data"]["path"].endswith("data/toolcall_sample.jsonl")


@pytest.mark.parametrize(
    "sets, message",
    [
        (["train.learnig_rate=1e-5"], "did you mean 'train.learning_rate'"),
        (["lora.rank=8"], "did you mean 'lora.r'"),
        (["trainn.max_length=5"], "did you mean 'train'"),
        (["train.max_length=abc"], "'train.max_length' must be a whole number, got 'abc'"),
        (["model.finetune=half"], "must be one of 'lora', 'qlora' or 'full', got 'half'"),
        (["nodot=1"], "section.key=value"),
    ],
)
def test_bad_keys_and_values_are_one_clear_line(sets, message):
    with pytest.raises(c.ConfigError) as exc:
        c.resolve(preset="quick-test", sets=sets)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_set_reads_yaml_values():
    cfg = c.resolve(preset="quick-test", sets=["train.learning_rate=1e-5", "lora.target_modules=[q_proj, v_proj]", "train.packing=true", "data.prompt_template=Q: {q}"])
    assert cfg["train"]["learning_rate"] == 1e-5
    assert cfg["lora"]["target_modules"] == ["q_proj", "v_proj"]
    assert cfg["train"]["packing"] is True
    assert cfg["data"]["prompt_template"] == "Q: {q}"


def test_trl_passthrough_and_secrets_redacted():
    cfg = c.resolve(preset="quick-test", sets=["trl.neftune_noise_alpha=5", "trl.hub_token=hf_secret123"])
    assert cfg["trl"]["neftune_noise_alpha"] == 5
    dumped = c.dump(cfg)
    assert "hf_secret123" not in dumped and "hub_token: '***'" in dumped
    assert yaml.safe_load(dumped)["trl"]["neftune_noise_alpha"] == 5


def test_unknown_trl_key_is_refused_by_the_engine(run_engine):
    code, events, _ = run_engine(sets=["trl.neftune_noise_alhpa=5"])
    assert code == 2
    error = [e for e in events if e["type"] == "error"][0]
    assert error["kind"] == "config" and "trl.neftune_noise_alpha" in error["message"]


def test_yaml_is_read_safely(tmp_path):
    bad = tmp_path / "evil.yaml"
    bad.write_text("train: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(c.ConfigError) as exc:
        c.resolve(preset="quick-test", config_file=bad)
    assert str(bad) in str(exc.value)
