"""--log-steps (the PyTorch pipeline's --log_steps) and run tags (--tag, repeatable): the tags land in
config.yaml, the home screen's row and cockpit compare."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, of_type
from engine import config as config_mod
from engine.events import read_events


def test_log_steps_and_tags_from_the_command_line(tmp_path, run_engine):
    run_dir = tmp_path / "tagged"
    result = subprocess.run([sys.executable, "-m", "cockpit.cli", "run", "--preset", "quick-test", "--max-steps", "4",
                             "--log-steps", "2", "--tag", "ablation", "--tag", "lr", "--set", "train.eval_strategy=no",
                             "-o", str(run_dir)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert config_mod.load_run_config(run_dir)["run"]["tags"] == ["ablation", "lr"]
    logged = [e["step"] for e in of_type(list(read_events(run_dir / "events.jsonl")), "metrics")]
    assert logged == [1, 2, 4]  # the first step, then every 2

    from cockpit.runs import summarize

    row = summarize(run_dir)
    assert row.tags == ("ablation", "lr")
    from cockpit.tui.widgets.home.run_table import COLUMNS

    assert next(c for c in COLUMNS if c.key == "preset").cell(row) == "quick-test [ablation, lr]"  # the home screen's row

    _, _, other = run_engine("quick-test", sets=["train.max_steps=2", "train.eval_strategy=no", "run.tags=[baseline]"])
    from cockpit.sweep.compare import compare_runs, table, value_text

    comparison = compare_runs([run_dir, other])
    assert "run.tags" in comparison.keys
    assert [value_text(row.config.get("run.tags")) for row in comparison.rows] == ["[ablation, lr]", "[baseline]"]
    assert table(comparison) is not None
