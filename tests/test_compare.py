"""`cockpit compare` on run dirs that were never swept: the recorded runs under tests/fixtures (a real
quick-test run, a failed SFT run and a GRPO run) side by side as table, JSON and CSV, the best run's
config, and bad input in one line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from engine.events import read_events

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RUNS = [FIXTURES / "sft_run", FIXTURES / "failed_run", FIXTURES / "grpo_run"]


@pytest.fixture
def invoke(capsys):
    from cockpit.cli import main

    def _invoke(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return _invoke


def test_json_has_every_run_the_keys_that_differ_and_the_metrics(invoke):
    code, out, _ = invoke("compare", *map(str, RUNS), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert [r["name"] for r in data["runs"]] == ["sft_run", "failed_run", "grpo_run"]
    assert "run.type" in data["keys"] and "run.runs_dir" not in data["keys"]  # the same everywhere: not shown
    rows = {r["name"]: r for r in data["runs"]}
    assert rows["grpo_run"]["values"]["run.type"] == "grpo" and rows["sft_run"]["values"]["run.type"] == "sft"
    events = list(read_events(FIXTURES / "sft_run" / "events.jsonl"))
    evals = [(e["eval_loss"], e["step"]) for e in events if e["type"] == "eval"]
    assert (rows["sft_run"]["best"], rows["sft_run"]["best_step"]) == min(evals)
    assert rows["sft_run"]["last_loss"] == [e["loss"] for e in events if e["type"] == "metrics"][-1]
    assert rows["sft_run"]["status"] == "completed" and rows["sft_run"]["tokens_per_second"] > 0
    assert rows["failed_run"]["status"] == "failed" and rows["failed_run"]["red"]
    assert data["best"] == "sft_run" and rows["sft_run"]["is_best"]


def test_table_and_csv_show_the_same_rows(invoke):
    code, out, _ = invoke("compare", *map(str, RUNS))
    assert code == 0
    lines = out.splitlines()
    for name in ("sft_run", "failed_run", "grpo_run"):
        assert any(line.lstrip("* ").startswith(name + " ") for line in lines), out
    assert any(line.startswith("* sft_run") for line in lines)  # the best run is starred
    code, out, _ = invoke("compare", *map(str, RUNS), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows] == ["sft_run", "failed_run", "grpo_run"]
    assert rows[0]["is_best"] == "yes" and rows[1]["status"] == "failed" and rows[2]["run.type"] == "grpo"


def test_another_objective_picks_another_best(invoke):
    code, out, _ = invoke("compare", *map(str, RUNS), "--format", "json", "--objective", "eval_mean_token_accuracy",
                          "--direction", "maximize")
    data = json.loads(out)
    scored = [r for r in data["runs"] if r["best"] is not None]
    assert code == 0 and data["objective"] == "eval_mean_token_accuracy" and scored
    assert data["best"] == max(scored, key=lambda r: r["best"])["name"]


def test_best_config_is_the_best_runs_config_as_a_config_file(invoke, tmp_path):
    from engine import config as config_mod

    code, out, err = invoke("compare", *map(str, RUNS), "--best-config")
    assert code == 0 and err.startswith("best: sft_run")
    path = tmp_path / "best.yaml"
    path.write_text(out)
    assert out.startswith("# The best run of")
    resolved = config_mod.resolve(config_file=path)  # what `cockpit run --config best.yaml` reads
    saved = config_mod.load_run_config(FIXTURES / "sft_run")
    assert resolved["train"] == saved["train"] and resolved["lora"] == saved["lora"]


@pytest.mark.parametrize("args, expect, exit_code", [
    (["nowhere"], "nowhere does not exist", 2),
    ([str(FIXTURES)], "is neither a run dir", 2),
    ([str(RUNS[0]), "--format", "xml"], "--format takes table, json or csv", 2),
    ([str(RUNS[1]), "--best-config"], "no run logged eval_loss", 1),
])
def test_bad_input_is_one_line(args, expect, exit_code, invoke):
    code, out, err = invoke("compare", *args)
    lines = [line for line in (err + out).splitlines() if line.strip()]
    assert code == exit_code and len(lines) == 1 and expect in lines[0], lines
