"""`cockpit doctor` on the real training logs in ../shared/data/logs (read from there, never copied)
and on the other shapes it reads: a listform log, a checkpoint dir, a run dir, a non-log file."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cockpit.cli import app

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
LOGS = SHARED / "logs"
LISTFORM = SHARED / "other" / "tasfiahmrinmoyee_Gemma3_training_logs_listform.json"
BIG = LOGS / "adu3110__LLM-Project-to-Build-and-Fine-Tune-a-Large-Language-Model__1.json"

pytestmark = pytest.mark.skipif(not LOGS.is_dir(), reason="../shared/data/logs is not there")

# What each real log shows (see .notes/doctor_table.md): exit code and the codes doctor raises.
EXPECTED: dict[str, tuple[int, set[str] | None]] = {
    "Andyszl__few-shot-Prompt-KGC__1.json": (0, {"overfitting", "memorization"}),
    "AriesChen-UPC__GeoLLM__1.json": (0, {"memorization"}),
    "ChenguangYang96UCR__KG-LLM__1.json": (0, {"grad-nan"}),
    "Dheena731__tinyLlama-finetune__1.json": (0, set()),
    "DrAliya__NLP-SPAM-FRAUD-MULTITEXT-TWEETS__1.json": (0, set()),
    "HangerYang__Star__1.json": (0, {"grad-spike"}),
    "IMJONEZZ__UnslothGRPO__1.json": (0, {"grad-spike"}),
    "KosKis1__LogShort__1.json": (2, None),
    "MaximilianoPona__image_classification_irrigation_systems__1.json": (0, set()),
    "MemaSp__FT-Llama2-HRChatbot__1.json": (0, {"grad-nan"}),
    "Nicolassalvan__mti881-projet2__1.json": (0, {"overfitting", "memorization"}),
    "NijatZeynalov__mT5-based-azerbaijani-news-summarize__1.json": (0, set()),
    "Rishikarpe__LoRA-Fine-Tuning__1.json": (1, {"labels-masked"}),
    "Rusheel86__Chaos-Economy__1.json": (1, {"completions-clipped", "reward-flat"}),
    "SeanGormann__llm_recovery__1.json": (0, set()),
    "Ysn-Ir__medBot-finetuning-part__1.json": (0, set()),
    "aaghaazkhan__law-llm__1.json": (0, set()),
    "adu3110__LLM-Project-to-Build-and-Fine-Tune-a-Large-Language-Model__1.json": (0, {"memorization"}),
    "aigoncharov__trainer_state_viz__1.json": (0, {"overfitting", "memorization"}),
    "akanksha28pathak__SmolVLM_EndoscopyQA__1.json": (0, set()),
    "arshiv-web__Financial-News-Sentiment-Analysis__1.json": (0, {"overfitting"}),
    "arthuribias-coder__tech-challenge-finetune__1.json": (0, {"plateau", "grad-nan"}),
    "aryan1112003__hate_speech_detection__1.json": (0, {"memorization"}),
    "chandlerzuo__rlhf_recsys__1.json": (0, set()),
    "joshsalako__telelogs__1.json": (0, {"reward-flat"}),
    "keanuspies__lyric-generator-llm__1.json": (1, {"divergence"}),
    "poludmik__qlora-fine-tune__1.json": (1, {"divergence", "too-few-steps"}),
    "shaiiikh__Math-Riddle-Factory__1.json": (0, {"too-few-steps"}),
    "srinath-manda__IITD_Feb26_AAIPL__1.json": (1, {"completions-clipped", "reward-plateau"}),
    "tasfiahmrinmoyee__Gemma3-1B-Instruct-outputs__1.json": (0, set()),
}

runner = CliRunner()


def doctor(*args: str):
    return runner.invoke(app, ["doctor", *map(str, args)], env={"COLUMNS": "200"})


def doctor_json(path) -> dict:
    result = doctor(path, "--json")
    return json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_every_log_has_an_expectation():
    assert sorted(p.name for p in LOGS.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_doctor_agrees_with_what_the_log_shows(name):
    code, expected = EXPECTED[name]
    result = doctor(LOGS / name, "--json")
    assert result.exit_code == code, result.output
    if expected is None:
        return
    payload = json.loads(result.stdout)
    assert {f["code"] for f in payload["findings"]} == expected
    assert payload["exit_code"] == code
    reds = [f for f in payload["findings"] if f["severity"] == "red"]
    assert bool(reds) == (code == 1)


def test_table_and_summary_line():
    result = doctor(LOGS / "keanuspies__lyric-generator-llm__1.json")
    assert result.exit_code == 1
    out = result.stdout
    assert "3000/3140 steps" in out and "min 3.172 at step 2492" in out and "no eval" in out
    for word in ("severity", "code", "step", "evidence", "fix", "divergence", "--lr 5e-5", "1 red, 0 amber"):
        assert word in out, word
    healthy = doctor(LOGS / "Dheena731__tinyLlama-finetune__1.json")
    assert healthy.exit_code == 0
    assert "best eval_loss 1.122 at step 2800" in healthy.stdout and "no findings" in healthy.stdout


def test_json_output():
    payload = doctor_json(LOGS / "aigoncharov__trainer_state_viz__1.json")
    assert payload["source"] == "trainer_state" and payload["exit_code"] == 0
    summary = payload["summary"]
    assert summary["steps"] == 12030 and summary["best_eval"]["key"].startswith("eval_g")
    (overfit,) = [f for f in payload["findings"] if f["code"] == "overfitting"]
    assert set(overfit) >= {"code", "severity", "title", "step", "evidence", "evidence_text", "fix", "overrides",
                            "first_step", "updated_step"}
    assert overfit["evidence"]["best_step"] == 401 and len(overfit["evidence"]["sets"]) == 6
    nan_log = doctor_json(LOGS / "ChenguangYang96UCR__KG-LLM__1.json")  # NaN grad norms stay valid JSON
    assert nan_log["findings"][0]["severity"] == "info"


def test_old_and_new_field_names():
    old = doctor_json(LOGS / "HangerYang__Star__1.json")  # `lr`, not learning_rate
    assert old["summary"]["steps"] == 40000
    grpo = doctor_json(LOGS / "IMJONEZZ__UnslothGRPO__1.json")  # reward, completion_length, rewards/<fn>
    assert grpo["summary"]["kind"] == "grpo" and grpo["summary"]["reward_last"] == pytest.approx(1.3333, abs=1e-3)
    assert doctor_json(LOGS / "srinath-manda__IITD_Feb26_AAIPL__1.json")["summary"]["kind"] == "grpo"
    assert doctor_json(LOGS / "SeanGormann__llm_recovery__1.json")["summary"]["kind"] == "preference"


def test_listform_file_reads_like_its_trainer_state():
    listed = doctor_json(LISTFORM)
    state = doctor_json(LOGS / "tasfiahmrinmoyee__Gemma3-1B-Instruct-outputs__1.json")
    assert listed["source"] == "log_history list" and listed["exit_code"] == 0
    for key in ("steps", "first_loss", "min_loss", "best_eval"):
        assert listed["summary"][key] == state["summary"][key]


def test_checkpoint_dir_and_run_dir(tmp_path):
    state = json.loads((LOGS / "keanuspies__lyric-generator-llm__1.json").read_text())
    for step in (1000, 3000):
        ckpt = tmp_path / "checkpoints" / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        part = dict(state, log_history=[e for e in state["log_history"] if e["step"] <= step], global_step=step)
        (ckpt / "trainer_state.json").write_text(json.dumps(part))
    direct = doctor_json(tmp_path / "checkpoints" / "checkpoint-3000")
    assert direct["source"] == "checkpoint checkpoint-3000" and direct["exit_code"] == 1
    latest = doctor_json(tmp_path)  # a run dir with checkpoints/ and no events.jsonl: the latest one
    assert latest["summary"]["steps"] == 3000 and "latest of 2" in latest["source"]


def test_events_jsonl_and_run_dir(tmp_path):
    events = [{"v": 1, "type": "run_started", "time": 0, "step": None, "config": {"train": {"learning_rate": 1e-3}}}]
    events += [{"v": 1, "type": "metrics", "time": 0, "step": s, "loss": 0.0, "grad_norm": 0.0} for s in range(1, 8)]
    text = "\n".join(json.dumps(e) for e in events) + '\n{"v": 1, "type": "metr'  # a half-written last line
    (tmp_path / "events.jsonl").write_text(text)
    for path in (tmp_path, tmp_path / "events.jsonl"):
        payload = doctor_json(path)
        assert payload["source"] == "events" and [f["code"] for f in payload["findings"]] == ["labels-masked"]
    assert doctor(tmp_path).exit_code == 1


@pytest.mark.parametrize("content", [
    b'{"balance": 3, "positions": []}',
    b'{"log_history": "not a list"}',
    b'[1, 2, 3]',
    b'[{"name": "a"}, {"name": "b"}]',
    b'hello, world\n',
    b'',
    b'\x00\x01binary\x00',
])
def test_not_a_training_log(tmp_path, content):
    path = tmp_path / "trainer_state.json"  # the name does not make it one
    path.write_bytes(content)
    result = doctor(path)
    assert result.exit_code == 2
    message = result.output.strip()
    assert "\n" not in message and "not a training log" in message and "trainer_state.json" in message


def test_other_non_logs(tmp_path):
    assert doctor(LOGS / "KosKis1__LogShort__1.json").exit_code == 2
    assert doctor(tmp_path / "missing.json").exit_code == 2
    assert doctor(tmp_path).exit_code == 2  # an empty directory


def test_empty_log_history_is_a_run_with_nothing_to_say(tmp_path):
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"global_step": 0, "log_history": [], "best_metric": None}))
    result = doctor(path)
    assert result.exit_code == 0 and "no findings" in result.stdout
    assert doctor_json(path)["findings"] == []
    bare = tmp_path / "logs.json"
    bare.write_text("[]")
    assert doctor(bare).exit_code == 0


def test_a_24000_entry_log_takes_well_under_a_second():
    doctor(LOGS / "Dheena731__tinyLlama-finetune__1.json")  # imports paid once
    start = time.perf_counter()
    result = doctor(BIG)
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0
    assert elapsed < 1.0, f"{elapsed:.2f}s"


def test_doctor_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from cockpit.cli import app\n"
        "from typer.testing import CliRunner\n"
        f"r = CliRunner().invoke(app, ['doctor', {str(LOGS / 'Dheena731__tinyLlama-finetune__1.json')!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = ('torch', 'transformers', 'trl', 'peft', 'datasets', 'textual')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ""


TFEVENTS = SHARED / "other" / "aryan1112003_hate_speech.events.out.tfevents"


def test_tensorboard_event_files_are_read_as_their_trainer_state():
    """The Trainer's TensorBoard file of the hate-speech run says what its trainer_state.json says:
    the same steps and losses (train/x is x, eval/x is eval_x), and the same finding."""
    pytest.importorskip("tensorboard")
    from_tb = doctor_json(TFEVENTS)
    from_state = doctor_json(LOGS / "aryan1112003__hate_speech_detection__1.json")
    assert from_tb["source"] == "TensorBoard"
    assert from_tb["summary"]["first_loss"] == pytest.approx(from_state["summary"]["first_loss"], rel=1e-4)
    assert from_tb["summary"]["min_loss_step"] == from_state["summary"]["min_loss_step"]
    assert {f["code"] for f in from_tb["findings"]} == {f["code"] for f in from_state["findings"]} == {"memorization"}
    run_dir = SHARED / "other"  # a dir holding event files (the Trainer's runs/) is read as well
    assert doctor(run_dir).exit_code in (0, 1)


def test_a_csv_log_padded_with_nan_raises_no_false_grad_finding(tmp_path):
    """log_history written out as a table (pandas' to_csv): every eval row carries NaN for loss and
    grad_norm. That is padding, not a NaN loss: the CSV reads like the JSON it came from."""
    entries = json.loads(LISTFORM.read_text())
    columns = sorted({k for e in entries for k in e})
    path = tmp_path / "log_history.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for e in entries:
            writer.writerow({k: e.get(k, float("nan")) for k in columns})
    assert "nan" in path.read_text()
    from_csv, from_json = doctor_json(path), doctor_json(LISTFORM)
    assert from_csv["source"] == "CSV of log entries"
    assert from_csv["findings"] == from_json["findings"] == []
    assert from_csv["summary"]["best_eval"] == from_json["summary"]["best_eval"]
    # The same padding in JSON lines (pandas' to_json writes NaN as null, a hand-written log as NaN).
    lines = tmp_path / "log_history.jsonl"
    lines.write_text("\n".join(json.dumps({k: e.get(k, float("nan")) for k in columns}) for e in entries))
    assert doctor_json(lines)["findings"] == []
    # A training row's own NaN loss is still a NaN loss.
    broken = [dict(e) for e in entries]
    train_rows = [e for e in broken if "loss" in e]
    train_rows[-1]["loss"] = float("nan")
    lines.write_text("\n".join(json.dumps({k: e.get(k, float("nan")) for k in columns}) for e in broken))
    assert "loss-nan" in {f["code"] for f in doctor_json(lines)["findings"]}
