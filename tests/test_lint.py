"""`cockpit lint`: every check fires on its broken file, clean data stays clean, the CLI's exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.data.load import DataError, load_splits
from engine.data.lint import CHECKS, lint_file, options_from_config
from engine.data.tokens import round_up

CORPUS = Path(__file__).resolve().parent / "lint_corpus"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "datasets"

# file -> (the code it must raise, lint options). One broken file per check.
NO_TOKENIZER = {
    "invalid_json.jsonl": ("invalid_json", {}),
    "wrong_type.jsonl": ("wrong_type", {}),
    "unknown_format.jsonl": ("unknown_format", {}),
    "missing_field.jsonl": ("missing_field", {}),
    "mixed_formats.jsonl": ("mixed_formats", {}),
    "bad_record.jsonl": ("bad_record", {}),
    "empty_record.jsonl": ("empty_record", {}),
    "empty_message.jsonl": ("empty_message", {}),
    "role_order.jsonl": ("role_order", {}),
    "not_ending_with_assistant.jsonl": ("not_ending_with_assistant", {}),
    "no_assistant.jsonl": ("no_assistant", {}),
    "empty_completion.jsonl": ("empty_completion", {}),
    "split_values.jsonl": ("split_values", {}),
    "no_eval.jsonl": ("no_eval", {}),
    "tiny_eval.jsonl": ("tiny_eval", {}),
    "split_overlap.jsonl": ("split_overlap", {}),
    "tool_args_invalid_json.jsonl": ("tool_args_invalid_json", {}),
    "tool_args_double_encoded.jsonl": ("tool_args_double_encoded", {}),
    "tool_args_object.jsonl": ("tool_args_object", {}),
    "tool_undeclared.jsonl": ("tool_undeclared", {}),
    "tool_args_schema.jsonl": ("tool_args_schema", {}),
    "tool_reply_unmatched.jsonl": ("tool_reply_unmatched", {}),
    "tool_schema_invalid.jsonl": ("tool_schema_invalid", {}),
    "duplicate.jsonl": ("duplicate", {}),
    "conflicting_answers.jsonl": ("conflicting_answers", {}),
    "placeholder.json": ("placeholder", {}),
    "label_outlier.jsonl": ("label_outlier", {}),
    "long_record.jsonl": ("long_record", {}),
    "short_record.jsonl": ("short_record", {}),
}

# A template that JSON-encodes arguments whatever their type, and one that rejects two turns of a
# role in a row, as several model families do.
TOJSON_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{% for c in m.tool_calls or [] %}<tool_call>{{ c.function.arguments | tojson }}</tool_call>"
    "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% endif %}")
STRICT_TEMPLATE = (
    "{% for m in messages %}{% if loop.index0 > 0 and m.role == messages[loop.index0 - 1].role %}"
    "{{ raise_exception('Conversation roles must alternate') }}{% endif %}"
    "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def tokenizer():
    pytest.importorskip("transformers")
    from engine.model.tiny import load_tokenizer

    return load_tokenizer()


@pytest.fixture()
def template(tokenizer):
    """Swap the tokenizer's chat template for one test."""
    original = tokenizer.chat_template

    def use(text):
        tokenizer.chat_template = text
        return tokenizer

    yield use
    tokenizer.chat_template = original


def codes(report) -> set[str]:
    return {f.code for f in report.findings}


@pytest.mark.parametrize("name", sorted(NO_TOKENIZER))
def test_each_check_fires_on_its_file(name):
    code, options = NO_TOKENIZER[name]
    report = lint_file(CORPUS / name, **options)
    assert report.fatal is None
    assert code in codes(report), [f.line() for f in report.findings]
    finding = report.get(code)
    assert finding.count >= 1 and finding.fix and finding.severity == CHECKS[code][0]
    if code not in ("no_eval", "tiny_eval"):  # split-wide findings have no single place
        assert finding.places and finding.places[0].startswith(str(CORPUS / name))
    assert report.exit_code == (1 if report.errors else 0)


def test_every_check_has_a_file_in_the_corpus():
    tested = {c for c, _ in NO_TOKENIZER.values()} | {
        "unreadable", "tool_args_template", "template_error", "truncated", "completion_lost",
        "no_chat_template", "tokenizer_unavailable", "no_records", "too_long_dropped"}
    assert tested == set(CHECKS)


def test_clean_file_is_clean(tokenizer):
    report = lint_file(CORPUS / "clean.jsonl", tokenizer=tokenizer)
    assert report.findings == [] and report.exit_code == 0
    assert report.stats["splits"] == {"eval": 4, "train": 16}
    assert report.stats["tokens"]["truncated"] == 0


def test_places_name_the_line_and_details_the_values():
    report = lint_file(CORPUS / "invalid_json.jsonl")
    assert report.get("invalid_json").places == [f"{CORPUS / 'invalid_json.jsonl'}:2"]
    split = lint_file(CORPUS / "split_values.jsonl").get("split_values")
    assert "'Eval'" in split.detail and "'test'" in split.detail and split.count == 2
    outlier = lint_file(CORPUS / "label_outlier.jsonl").get("label_outlier")
    assert outlier.detail == "'-' x1" and outlier.places == [f"{CORPUS / 'label_outlier.jsonl'}:121"]


def test_unreadable_file_is_fatal(tmp_path):
    report = lint_file(tmp_path / "missing.jsonl")
    assert report.fatal and "file not found" in report.fatal and report.exit_code == 2
    report = lint_file(CORPUS / "wrong_top_level.json")
    assert "top level must be a list" in report.fatal and report.exit_code == 2


def test_truncation_and_lost_completions(tokenizer):
    report = lint_file(CORPUS / "truncated.jsonl", tokenizer=tokenizer, max_length=64)
    assert codes(report) == {"truncated"}
    lost = lint_file(CORPUS / "completion_lost.jsonl", tokenizer=tokenizer, max_length=64)
    finding = lost.get("completion_lost")
    assert finding.count == 1 and finding.places == [f"{CORPUS / 'completion_lost.jsonl'}:2"]
    keep = lost.stats["tokens"]["keep_max_length"]["p100"]
    suggested = round_up(keep)  # the run suggests the same rounded value (a multiple of 64)
    assert finding.overrides == {"train.max_length": suggested} and keep > 64
    assert f"--max-length {suggested}" in finding.fix
    assert lint_file(CORPUS / "completion_lost.jsonl", tokenizer=tokenizer,
                     max_length=suggested).findings == []


SHARED_DATASETS = sorted(p for p in (Path(__file__).resolve().parents[2] / "shared" / "data" / "datasets").rglob("*")
                         if p.suffix in (".jsonl", ".json", ".csv"))


@pytest.mark.parametrize("path", SHARED_DATASETS, ids=lambda p: p.name)
def test_lint_and_the_preflight_count_the_same_tokens(path, tokenizer):
    """One counter: `cockpit lint` and a run's pre-flight give the same lengths, severity and fix."""
    from engine.config import resolve
    from engine.train.preflight import token_check
    from engine.train.sft import load_data

    cfg = resolve(preset="quick-test", flags={"data.path": str(path), "train.max_length": 256},
                  sets=["train.eval_strategy=no", "data.eval_split=0"])
    report = lint_file(path, tokenizer=tokenizer, **options_from_config(cfg))
    try:
        splits = load_data(cfg)
    except DataError:
        assert report.fatal or report.errors, "the run refuses what lint passes"
        return
    try:
        length, findings = token_check(cfg, tokenizer, splits)
    except DataError as exc:
        assert exc.code in {f.code for f in report.blocking}
        return
    tokens = report.stats["tokens"]
    train = length["train"]
    assert train["records"] == splits.train.__len__()
    assert train["tokens"]["total"] == {k: tokens["total"][k] for k in ("min", "median", "p95", "max")}
    assert train["tokens"]["prompt"] == {k: tokens["prompt"][k] for k in ("min", "median", "p95", "max")}
    assert (train["truncated"], train["completion_lost"]) == (tokens["truncated"], tokens["completion_lost"])
    lint_tokens = {f.code: (f.severity, f.overrides, f.count) for f in report.findings if f.code in ("truncated", "completion_lost")}
    assert {f.code: (f.severity, f.overrides, f.count) for f in findings} == lint_tokens


def test_an_empty_file_is_an_error_for_lint_and_for_a_run(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    report = lint_file(empty)
    assert report.exit_code != 0 and (report.fatal or report.get("no_records"))
    with pytest.raises(DataError):
        load_splits(empty)


def test_too_long_records_dropped_or_refused(tokenizer):
    dropped = lint_file(CORPUS / "truncated.jsonl", tokenizer=tokenizer, max_length=64, too_long="drop")
    assert codes(dropped) == {"too_long_dropped"} and not dropped.blocking
    refused = lint_file(CORPUS / "truncated.jsonl", tokenizer=tokenizer, max_length=64, too_long="refuse")
    assert [f.code for f in refused.blocking] == ["truncated"] and "data.too_long=drop" in refused.blocking[0].fix


def test_keep_end_truncation_loses_no_completion(tokenizer):
    """keep_end keeps the end of every record: lint (like the trainer) loses no completion."""
    data = Path(__file__).resolve().parents[1] / "data" / "toolcall_sample.jsonl"
    start = lint_file(data, tokenizer=tokenizer, max_length=128, truncation_mode="keep_start")
    end = lint_file(data, tokenizer=tokenizer, max_length=128, truncation_mode="keep_end")
    assert start.get("completion_lost") is not None
    assert end.get("completion_lost") is None and end.get("truncated") is not None


def test_template_that_encodes_string_arguments_again(template):
    report = lint_file(CORPUS / "tool_args_template.jsonl", tokenizer=template(TOJSON_TEMPLATE))
    assert "tool_args_template" in codes(report)


def test_template_that_cannot_render_a_record(template):
    report = lint_file(CORPUS / "template_error.jsonl", tokenizer=template(STRICT_TEMPLATE))
    finding = report.get("template_error")
    assert finding.count == 1 and "roles must alternate" in finding.detail


def test_tokenizer_without_chat_template(template):
    report = lint_file(CORPUS / "clean.jsonl", tokenizer=template(None))
    assert report.get("no_chat_template").count == 20 and report.exit_code == 1


def test_lint_and_loader_agree_on_errors():
    """One code path: a file lint passes loads, a structural error lint reports the loader raises."""
    for name in ("clean.jsonl", "duplicate.jsonl", "placeholder.json"):
        assert lint_file(CORPUS / name).exit_code == 0
        load_splits(CORPUS / name, eval_required=False)
    for name in ("invalid_json.jsonl", "missing_field.jsonl", "split_values.jsonl",
                 "not_ending_with_assistant.jsonl", "unknown_format.jsonl"):
        assert lint_file(CORPUS / name).exit_code == 1
        with pytest.raises(DataError):
            load_splits(CORPUS / name, eval_required=False)


def test_report_to_dict_is_json():
    report = lint_file(CORPUS / "duplicate.jsonl")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["findings"][0]["code"] == "duplicate" and data["records"] == 3


# ------------------------------------------------------------------ the command


def run_cli(*args):
    from cockpit.cli import app

    return CliRunner().invoke(app, ["lint", *args])


def test_cli_exit_codes_and_summary():
    clean = run_cli(str(CORPUS / "clean.jsonl"), "--no-tokens")
    assert clean.exit_code == 0 and "clean" in clean.output
    bad = run_cli(str(CORPUS / "missing_field.jsonl"), "--no-tokens")
    assert bad.exit_code == 1 and "missing_field" in bad.output and "line 2" in bad.output
    assert run_cli(str(CORPUS / "nope.jsonl")).exit_code == 2
    assert run_cli(str(CORPUS / "clean.jsonl"), "--format", "yaml").exit_code == 2


def test_cli_json_output_and_tokens():
    result = run_cli(str(CORPUS / "truncated.jsonl"), "--max-length", "64", "--format", "json")
    assert result.exit_code == 1  # half the records cut: an error, as a run's truncation finding is red
    data = json.loads(result.output)
    assert data["stats"]["tokens"]["max_length"] == 64
    assert [(f["code"], f["severity"]) for f in data["findings"]] == [("truncated", "error")]
    keep = data["stats"]["tokens"]["keep_max_length"]["p100"]
    assert data["findings"][0]["overrides"] == {"train.max_length": round_up(keep)}


def test_cli_templates_through_set():
    result = run_cli(str(CORPUS / "unknown_format.jsonl"), "--no-tokens",
                     "--set", "data.prompt_template={story} {claim}",
                     "--set", "data.completion_template={verdict}")
    assert result.exit_code == 0, result.output


def test_cli_tokenizer_unavailable(tmp_path):
    result = run_cli(str(CORPUS / "clean.jsonl"), "--model", str(tmp_path / "no-model"))
    assert result.exit_code == 0 and "tokenizer_unavailable" in result.output


# ------------------------------------------------------------------ the shared real datasets

# What lint must find in each (codes at warning or error level), and nothing else at those levels.
SHARED_FINDINGS = {
    "chat/fastchat_dummy_conversation.json": set(),
    "chat/ganachan_GenAI-Autograding_training_set.jsonl": {"duplicate"},
    "chat/ganachan_GenAI-Autograding_validation_set.jsonl": {"duplicate"},
    "chat/openai_cookbook_toy_chat_fine_tuning.jsonl": {"role_order"},
    "gsm8k/train.jsonl": set(),
    "gsm8k/test.jsonl": set(),
    "instruct/ghidav_safety-lora_alpaca.csv": set(),
    "instruct/llamafactory_alpaca_en_demo.json": {"duplicate"},
    "instruct/llamafactory_identity.json": {"placeholder"},
    "instruct/seed_tasks.jsonl": {"unknown_format"},
    "nli/aristo_scitail_dev_answers.jsonl": set(),
    "nli/aristo_tracie_train_uniform.jsonl": {"unknown_format"},
    "nli/openai_cookbook_snli_1.0_train_2k.csv": {"duplicate", "label_outlier"},
    "nli/snli_train_2k_premise_hypothesis.jsonl": {"duplicate", "label_outlier"},
    "toolcall/TeddyCr_daneel_training_set.jsonl": {"tool_args_object"},
    "toolcall/TeddyCr_daneel_validation_set.jsonl": {"tool_args_object"},
    "toolcall/glaive_toolcall_en_demo_as_openai_messages.jsonl": {"duplicate", "tool_args_schema"},
    "toolcall/llamafactory_glaive_toolcall_en_demo.json": {"duplicate", "tool_args_schema"},
    "toolcall/llamafactory_reason_tool_use_demo_50.jsonl": {"tool_schema_invalid"},
}


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared datasets not present")
@pytest.mark.parametrize("name", sorted(SHARED_FINDINGS))
def test_shared_dataset_findings(name):
    report = lint_file(SHARED / name)
    found = {f.code for f in report.findings if f.severity != "info"}
    assert found == SHARED_FINDINGS[name], [f.line() for f in report.findings]


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared datasets not present")
def test_shared_findings_counts():
    assert lint_file(SHARED / "chat/ganachan_GenAI-Autograding_training_set.jsonl").get(
        "duplicate").count == 213
    identity = lint_file(SHARED / "instruct/llamafactory_identity.json").get("placeholder")
    assert "{{name}}" in identity.detail and "{{author}}" in identity.detail
    snli = lint_file(SHARED / "nli/openai_cookbook_snli_1.0_train_2k.csv").get("label_outlier")
    assert snli.count == 3 and "'-'" in snli.detail
    daneel = lint_file(SHARED / "toolcall/TeddyCr_daneel_training_set.jsonl")
    assert daneel.get("tool_args_object").count == 658
