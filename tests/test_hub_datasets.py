"""Datasets that are not one file: hf:NAME[:CONFIG][@SPLIT] through datasets.load_dataset, and a
directory written by save_to_disk; the same format detection and lint as a file's. No network: a local
data dir stands for a hub repo (load_dataset reads both the same way), and a hub id not in the cache is
one line naming the cache and the way to local files."""

from __future__ import annotations

import itertools
import json

import pytest

from conftest import SHARED_DATA, of_type
from engine.data.lint import lint_file
from engine.data.load import DataError, load_splits

GSM8K = SHARED_DATA / "datasets" / "gsm8k"
TOOLCALL = SHARED_DATA / "datasets" / "toolcall" / "TeddyCr_daneel_training_set.jsonl"


@pytest.fixture
def data_dir(tmp_path):
    """A dataset repo's layout on disk: train and test splits as JSON Lines (real GSM8K records)."""
    folder = tmp_path / "gsm8k"
    folder.mkdir()
    for split, n in (("train", 30), ("test", 8)):
        with open(GSM8K / f"{split}.jsonl", encoding="utf-8") as f:
            (folder / f"{split}.jsonl").write_text("".join(itertools.islice(f, n)), encoding="utf-8")
    return folder


def _canonical(value):
    """Rows with tool-call arguments parsed, as JSON with sorted keys."""
    def parse(v):
        if isinstance(v, dict):
            return {k: json.loads(x) if k == "arguments" and isinstance(x, str) else parse(x) for k, x in v.items()}
        return [parse(x) for x in v] if isinstance(v, list) else v
    return json.dumps(parse(value), sort_keys=True)


def _lint_summary(report):
    return report.format, report.records, sorted((f.code, f.severity, f.count) for f in report.findings)


def test_a_saved_dataset_reads_and_lints_as_its_file(tmp_path):
    """Real tool-calling records, once as JSON Lines and once saved by datasets: the same rows, format and lint."""
    import datasets

    source = tmp_path / "tools.jsonl"
    with open(TOOLCALL, encoding="utf-8") as f:
        source.write_text("".join(itertools.islice(f, 40)), encoding="utf-8")
    saved = tmp_path / "saved"
    datasets.Dataset.from_list([json.loads(line) for line in source.read_text().splitlines()]).save_to_disk(str(saved))

    from_file, from_disk = load_splits(source, seed=1), load_splits(saved, seed=1)
    assert from_disk.format == from_file.format == "messages"
    # Arrow keeps one key order per struct: the same arguments, maybe in another order (and no invented nulls).
    assert _canonical(from_disk.train) == _canonical(from_file.train) and _canonical(from_disk.eval) == _canonical(from_file.eval)
    assert from_disk.train_places[0].startswith(f"{saved}[")
    assert _lint_summary(lint_file(saved)) == _lint_summary(lint_file(source))


def test_hf_spec_goes_through_load_dataset_with_its_split(data_dir):
    train = load_splits(f"hf:{data_dir}", eval_split=0, eval_required=False)
    assert train.format == "question-answer" and len(train.train) == 30
    test = load_splits(f"hf:{data_dir}@test", eval_split=0, eval_required=False)
    assert len(test.train) == 8 and test.train_places[0] == f"hf:{data_dir}@test[0]"
    with pytest.raises(DataError, match=r"Unknown split \"dev\". Should be one of \['train', 'test'\]; name them as hf:NAME"):
        load_splits(f"hf:{data_dir}@dev")


def test_a_hub_dataset_not_in_the_cache_is_one_line_offline(tmp_path, capsys, monkeypatch):
    """conftest keeps tests offline (HF_HUB_OFFLINE): what a user without a network meets."""
    from cockpit.cli import main

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as exc:
        main(["run", "--preset", "grpo-quick", "--dataset", "hf:openai/gsm8k:main", "-o", str(tmp_path / "run")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: hf:openai/gsm8k:main: not in the datasets cache (")
    assert "datasets.load_dataset('openai/gsm8k', 'main').save_to_disk('DIR')" in err and "--dataset DIR" in err
    assert not (tmp_path / "run").exists()


def test_a_run_trains_on_an_hf_dataset_with_its_test_split_for_eval(run_engine, data_dir):
    code, events, _ = run_engine("quick-test", flags={"data.path": f"hf:{data_dir}", "data.eval_path": f"hf:{data_dir}@test"},
                                 sets=["train.max_steps=2", "train.eval_steps=2"])
    assert code == 0, of_type(events, "error")
    dataset = of_type(events, "dataset")[-1]
    assert dataset["format"] == "question-answer" and dataset["path"] == f"hf:{data_dir}"
    assert dataset["splits"]["train"]["records"] == 30 and dataset["splits"]["eval"]["records"] == 8
    assert of_type(events, "eval")
