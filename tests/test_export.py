"""cockpit export: the adapter merged into its base model, saved as a plain transformers model with its
tokenizer and chat template, its logits checked against the adapter model's (and read back without
peft), a GGUF file read back by transformers; bad requests in one line, exit 2; nothing overwritten."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT
from engine import run_dir as names


def cockpit(*args: str, code: str = "from cockpit.cli import main; main(sys.argv[1:])") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", f"import sys; {code}", *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """A LoRA run on builtin:tiny whose adapter has moved away from zero."""
    from cockpit.supervisor import write_config
    from engine import config as config_mod
    from engine.__main__ import main as engine_main

    run_dir = tmp_path_factory.mktemp("export") / "run"
    write_config(run_dir, config_mod.resolve(preset="quick-test", sets=["train.max_steps=4", "train.learning_rate=0.02",
                                                                        "train.save_steps=2", "train.eval_strategy=no"]))
    assert engine_main([str(run_dir)]) == 0
    return run_dir


def _logits(model, ids):
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


def test_merge_gives_a_plain_model_with_the_adapters_logits_and_a_gguf(lora_run, tmp_path):
    pytest.importorskip("gguf")
    out = tmp_path / "merged"
    result = cockpit("export", str(lora_run), "--merge", "--gguf", "-o", str(out))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    checks = [line for line in lines if line.startswith("logits check")]
    assert len(checks) == 3 and all(": match" in line for line in checks), result.stdout
    assert "merged vs adapter" in checks[0] and "no peft" in checks[1] and "model.gguf" in checks[2]
    assert f"exported: {out} (merged model" in result.stdout
    assert result.stderr.strip() == "", result.stderr  # only our lines: no progress bars, no advisories
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "model.gguf"} <= files
    assert not any(name.startswith("adapter_") for name in files)

    # Loaded where peft cannot even be imported, the merged model computes what the adapter model does.
    ids = [5, 77, 301, 12, 9, 640]
    plain = cockpit(str(out), code="sys.modules['peft'] = None; import json, torch; from transformers import AutoModelForCausalLM; "
                                    f"m = AutoModelForCausalLM.from_pretrained(sys.argv[1]); "
                                    f"print(json.dumps(m(input_ids=torch.tensor([{ids}])).logits[0].tolist()))")
    assert plain.returncode == 0, plain.stderr
    import torch
    from peft import PeftModel

    from engine.model import tiny

    merged_logits = torch.tensor(json.loads(plain.stdout.strip().splitlines()[-1]))
    adapter = PeftModel.from_pretrained(tiny.build_model(seed=0), str(lora_run / names.FINAL)).eval()
    assert torch.allclose(merged_logits, _logits(adapter, ids), atol=1e-4)
    assert not torch.allclose(merged_logits, _logits(tiny.build_model(seed=0).eval(), ids), atol=1e-3)  # training moved it

    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(str(out)).chat_template == AutoTokenizer.from_pretrained(str(lora_run / "final")).chat_template
    import gguf

    reader = gguf.GGUFReader(str(out / "model.gguf"))
    assert bytes(reader.fields["general.architecture"].parts[-1]).decode() == "llama"
    assert "tokenizer.chat_template" in reader.fields and len(reader.tensors) == 2 * 9 + 2


def test_an_adapter_from_a_checkpoint_without_its_training_state(lora_run):
    result = cockpit("export", str(lora_run), "--checkpoint", "checkpoint-2")
    assert result.returncode == 0, result.stderr
    out = lora_run / "exports" / "checkpoint-2-adapter"
    files = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= files
    assert not files & {"optimizer.pt", "scheduler.pt", "trainer_state.json", "rng_state.pth", names.COMPLETE}
    assert "it needs peft and the base model builtin:tiny" in result.stdout


@pytest.mark.parametrize("args, expect", [
    (["--checkpoint", "checkpoint-99"], "checkpoint-99: no such model in"),
    (["--checkpoint", "last"], "--checkpoint 'last': give best, final, epoch_N or checkpoint-N"),
    (["--gguf"], "--gguf writes a whole model: add --merge"),
])
def test_bad_requests_are_one_line(lora_run, capsys, args, expect):
    from cockpit.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["export", str(lora_run), *args])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and expect in err, err


def test_never_overwrites_and_refuses_what_is_not_there(lora_run, tmp_path, capsys, run_engine):
    from cockpit.cli import main

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    _, _, full = run_engine("quick-test", sets=["train.max_steps=1", "model.finetune=full", "train.eval_strategy=no"])
    capsys.readouterr()  # the training's own output
    for args, expect in (([str(lora_run), "--merge", "-o", str(taken)], "already exists and is never overwritten"),
                         ([str(tmp_path)], "is not a run dir"),
                         ([str(full), "--merge"], "holds a whole model (full fine-tuning), not an adapter")):
        with pytest.raises(SystemExit) as exc:
            main(["export", *args])
        err = capsys.readouterr().err.strip()
        assert exc.value.code == 2 and len(err.splitlines()) == 1 and expect in err, err
    assert (taken / "keep.txt").read_text() == "mine"


def test_gguf_without_the_package_names_the_extra(lora_run, tmp_path):
    result = cockpit("export", str(lora_run), "--merge", "--gguf", "-o", str(tmp_path / "x"),
                     code="sys.modules['gguf'] = None; from cockpit.cli import main; main(sys.argv[1:])")
    assert result.returncode == 2
    assert result.stderr.strip() == 'error: --gguf needs the gguf package: pip install -e ".[export]" (or pip install gguf)'
    assert not (tmp_path / "x").exists()
