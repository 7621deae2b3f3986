"""The training samples as a user sees them: `cockpit run --show-examples` before training,
`cockpit samples RUN_DIR` afterwards, and the one renderer both use (the TUI's panel too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import of_type
from rich.console import Console

from cockpit.samples_view import BOUNDARY, CUT, MASKED, TRAINED, print_samples, render_sample
from engine.events import read_events


def cockpit(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2", **(env or {})}
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def shown(tmp_path_factory):
    """`cockpit run --show-examples` on the shipped tool-call sample, piped (so no colour)."""
    run_dir = tmp_path_factory.mktemp("samples") / "r"
    result = cockpit("run", "--preset", "quick-test", "--max-steps", "2", "--set", "train.eval_strategy=no",
                     "--show-examples", "-o", str(run_dir))
    assert result.returncode == 0, result.stderr
    return result.stdout, run_dir


def test_show_examples_prints_them_before_training(shown):
    out, run_dir = shown
    events = list(read_events(run_dir / "events.jsonl"))
    (samples,) = of_type(events, "samples")
    first = samples["samples"][0]
    # Before the model trains: the examples come before the training status and the first step.
    assert out.index("3 training examples as the collator trains them") < out.index("training: training for") < out.index("step 1/2")
    # The header counts; the formatted text with the completion's start; the trained tokens in [[ ]].
    assert f"sample 1/3  train #0  {first['tokens']} tokens, {first['trained_tokens']} trained" in out
    assert "formatted text (▶ the completion starts)" in out
    assert "<|im_start|>assistant\n▶<tool_call>" in out
    trained = "".join(s["text"] for s in first["segments"] if s["trained"])
    assert "[[" + trained + "]]" in out and trained.startswith("<tool_call>")
    assert "trained tokens inside [[ ]]" in out
    assert "\x1b[" not in out  # piped: plain text, no colour codes


def test_samples_command_shows_any_run_and_one_index(shown):
    out, run_dir = shown
    result = cockpit("samples", str(run_dir), "--index", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sample 2/3  train #1")
    assert "sample 1/3" not in result.stdout and "[[<tool_call>" in result.stdout
    whole = cockpit("samples", str(run_dir / "events.jsonl"))
    assert whole.returncode == 0 and all(f"sample {n}/3" in whole.stdout for n in (1, 2, 3))


@pytest.mark.parametrize("args, expect", [
    (["--index", "3"], "--index 3: this run has 3 samples (0 to 2)"),
    (["--index", "-1"], "--index -1: this run has 3 samples"),
])
def test_samples_bad_index_is_one_line(shown, args, expect):
    _, run_dir = shown
    result = cockpit("samples", str(run_dir), *args)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and expect in line


def test_samples_of_a_dir_that_is_no_run_or_has_no_samples(tmp_path):
    result = cockpit("samples", str(tmp_path))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert f"{tmp_path} is not a run dir (no events.jsonl)" in line
    (tmp_path / "events.jsonl").write_text(json.dumps({"v": 1, "type": "run_started", "time": 1.0, "step": None}) + "\n")
    result = cockpit("samples", str(tmp_path))
    assert result.returncode == 2 and "no samples yet" in result.stderr


def test_colour_marks_trained_masked_and_the_boundary(shown):
    _, run_dir = shown
    (samples,) = of_type(list(read_events(run_dir / "events.jsonl")), "samples")
    sample = samples["samples"][0]
    text = render_sample(sample, 0, 3)
    styled = {}
    for span in text.spans:
        styled.setdefault(str(span.style), []).append(text.plain[span.start:span.end])
    trained = "".join(s["text"] for s in sample["segments"] if s["trained"])
    masked = "".join(s["text"] for s in sample["segments"] if not s["trained"])
    assert trained in styled[TRAINED] and masked in styled[MASKED]
    assert styled[BOUNDARY].count("▶") == 3  # the legend, the formatted text, where the trained tokens start
    console = Console(force_terminal=True, color_system="truecolor", width=120, record=True)
    print_samples(console, samples["samples"], 0)
    assert "\x1b[" in console.export_text(styles=True) and "[[" not in console.export_text()


def test_truncation_is_marked(tmp_path, run_engine):
    """A record longer than max_length: its sample says where it was cut (keep_start cuts the end)."""
    rows = [{"prompt": "Say the word " + "very " * 150 + "long.", "completion": " long"}]
    rows += [{"prompt": f"Say {i}.", "completion": f" {i}"} for i in range(15)]
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, events, _ = run_engine(sets=[f"data.path={data}", "train.max_length=64", "train.max_steps=1",
                                       "train.eval_strategy=no", "data.chat=false", "train.truncation_mode=keep_end"])
    assert code == 0, of_type(events, "error")
    sample = of_type(events, "samples")[0]["samples"][0]
    assert sample["truncated"] and sample["cut"] == "start" and sample["tokens"] == 64
    # The formatted text is whole; the tokens lost their start.
    assert sample["text"].startswith("Say the word very") and "long. long" in sample["text"]
    assert not "".join(s["text"] for s in sample["segments"]).startswith("Say the word")
    plain = render_sample(sample, 0, 3, plain=True).plain
    assert "64 tokens" in plain and "cut at max_length 64" in plain
    assert "tokens as trained: trained tokens inside [[ ]]\n✂ " in plain  # keep_end: the start is gone
    colour = render_sample(sample, 0, 3)
    assert any(str(s.style) == CUT and colour.plain[s.start:s.end] == "✂ " for s in colour.spans)


def test_grpo_samples_are_prompts_with_their_answer(run_engine):
    _, events, _ = run_engine("grpo-quick", sets=["train.max_steps=1", "train.eval_strategy=no"])
    sample = of_type(events, "samples")[0]["samples"][0]  # written before any check that may refuse to train
    plain = render_sample(sample, 0, 3, plain=True).plain
    assert f"{sample['tokens']} prompt tokens" in plain and "trained" not in plain.splitlines()[0]
    assert "prompt as generation sees it" in plain and f"answer the rewards check: {sample['answer']}" in plain
    assert "labels are all masked" not in plain  # a prompt has nothing to mask
