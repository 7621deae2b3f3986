"""The GPU check: every GPU path of the cockpit in one command, through `cockpit run` as a user runs
it, leaving OUT_DIR/gpu_check.md and gpu_check.json (rewritten as each part ends, so a check cut
short still reports what it did). No network: the models are builtin shapes (random weights, real
sizes), the data is the shipped sample.

    python bench/gpu_check.py OUT_DIR            # one CUDA GPU, under 8 minutes on an H100/H200
    python bench/gpu_check.py OUT_DIR --smoke    # the same parts on the CPU with builtin:tiny, under a minute

Parts, each time-boxed and independent (a failed part is recorded and the next one runs):
  1. bf16 LoRA SFT of the 0.5B shape: NVML memory events, torch peaks per log, the end-of-run
     memory report, the estimate against the measured peak;
  2. QLoRA (4-bit NF4, paged 8-bit AdamW) of the 7B shape: it trains, estimate against peak;
  3. an induced out-of-memory: the error event of kind oom with its CUDA figures, the finding's text;
  4. throughput: TRL's defaults against the fast settings (train.fast), interleaved: tokens/s, peak
     memory, their ratios and the model FLOPs utilisation of each;
  5. a stop and a resume: the losses after the resume against an uninterrupted run.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_runs as runs  # noqa: E402
from check_runs import ROOT, cockpit_run, fresh_dir, memory_figures, training_figures  # noqa: E402
from gpu_check_report import Report  # noqa: E402

SAMPLE = ROOT / "data" / "toolcall_sample.jsonl"
SMALL_SHAPE = "builtin:shape:qwen2.5-0.5b"
BIG_SHAPE = "builtin:shape:mistral-7b"
PEAK_TFLOPS = 790.0  # an H200's bf16 matrix rate measured on random data (the datasheet says ~990 dense)
BUDGET_S = 450  # all parts together: under 8 minutes with start-up and the report
NO_SAVES = ["--set", "train.eval_strategy=no", "--save-steps", "100000"]  # nothing but what a part measures


class Check:
    """What every part needs: where to write, which machine, the models, and the time left."""

    def __init__(self, out: Path, smoke: bool, cuda: bool, budget_s: float, big_shape: str):
        self.out, self.smoke, self.cuda = out, smoke, cuda
        self.deadline = time.monotonic() + budget_s
        self.small = "builtin:tiny" if smoke else SMALL_SHAPE
        self.big = big_shape
        self.runs_dir = out / "runs"

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, args: list[str], box_end: float, **kw: Any) -> runs.Run:
        timeout = max(10.0, min(box_end, self.deadline) - time.monotonic())
        return cockpit_run(args, fresh_dir(self.runs_dir, name), timeout, **kw)


def part_lora(c: Check, box_end: float) -> dict[str, Any]:
    steps = 6 if c.smoke else 60
    run = c.run("1-lora", ["--preset", "quick-test", "--model", c.small, "--dataset", str(SAMPLE), "--max-steps", str(steps),
                           "--batch-size", "8", "--max-length", "640", "--longest-first", "--log-steps", "1",
                           *NO_SAVES], box_end)
    out = {**training_figures(run), "memory": memory_figures(run)}
    m = out["memory"]
    checks = {"completed": run.status == "completed", "memory report": bool(m["report"]),
              "a memory event per log": m["logs"] > 0 and m["memory_events"] >= m["logs"]}
    if c.cuda:
        checks["NVML used/total, util, temp, power"] = m["nvml_rows"] > 0 and all(m["nvml_fields"].values())
        checks["torch peaks at every log"] = m["logs_with_torch_peaks"] == m["logs"] > 0
        checks["estimate vs peak"] = "estimate_vs_peak" in m
    out["checks"] = checks
    ratio = f", estimate {m['estimate_allocated_gib']} GiB vs peak {m['peak_allocated_gib']} GiB allocated: {m.get('estimate_vs_peak')}x" if c.cuda else ""
    nvml = f", NVML in {m['nvml_rows']} readings" if c.cuda else f", no GPU: RSS {m['report'].get('peak_rss_mb')} MiB"
    out["line"] = f"{out['steps']} steps, loss {_num(out['loss_first'])} -> {_num(out['loss_last'])}, {_num(out['tokens_per_second'])} tok/s{nvml}{ratio}"
    return out


def part_qlora(c: Check, box_end: float) -> dict[str, Any]:
    if not c.cuda:
        return {"status": "skipped", "line": "skipped: no CUDA"}
    run = c.run("2-qlora", ["--preset", "mistral-nli-qlora", "--model", c.big, "--dataset", str(SAMPLE), "--max-steps", "20",
                            "--batch-size", "4", "--grad-accum", "1", "--max-length", "640", "--optim", "paged_adamw_8bit",
                            "--log-steps", "1", *NO_SAVES], box_end)
    out = {**training_figures(run), "memory": memory_figures(run)}
    m = out["memory"]
    out["checks"] = {"completed": run.status == "completed", "loss is finite": _finite(out["loss_last"]),
                     "estimate vs peak": "estimate_vs_peak" in m}
    out["line"] = (f"{c.big} 4-bit, {out['steps']} steps, loss {_num(out['loss_first'])} -> {_num(out['loss_last'])}, "
                   f"{_num(out['tokens_per_second'])} tok/s, estimate {m['estimate_allocated_gib']} GiB vs peak "
                   f"{m['peak_allocated_gib']} GiB allocated: {m.get('estimate_vs_peak')}x")
    return out


def long_texts(path: Path, records: int, tokens: int) -> Path:
    """Plain-text records of about `tokens` builtin-tokenizer tokens each (made here: nothing to download)."""
    import random

    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(ROOT / "engine" / "model" / "builtin_tiny" / "tokenizer.json"))
    rng = random.Random(0)
    words = ["weather", "city", "unit", "celsius", "convert", "value", "search", "result", "tool", "call", "answer", "order"]
    per_word = len(tokenizer.encode(" ".join(words)).ids) / len(words)
    lines = []
    for _ in range(records):
        text = " ".join(rng.choice(words) for _ in range(int(tokens / per_word)))
        while len(tokenizer.encode(text).ids) > tokens:
            text = text[: int(len(text) * 0.97)]
        lines.append(json.dumps({"text": text}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def part_oom(c: Check, box_end: float) -> dict[str, Any]:
    if not c.cuda:
        return {"status": "skipped", "line": "skipped: no CUDA"}
    # 16 x 15,000 tokens through a 0.5B model without checkpointing: hundreds of GiB of activations.
    data = long_texts(c.out / "oom_data.jsonl", records=20, tokens=15_000)
    run = c.run("3-oom", ["--preset", "quick-test", "--model", c.small, "--dataset", str(data), "--max-steps", "2",
                          "--batch-size", "16", "--max-length", "16384", "--eval-split", "0", *NO_SAVES], box_end)
    error = run.last("error")
    findings = _findings(run.run_dir)
    oom = next((f for f in findings if f.get("code") == "oom"), {})
    cuda = (error.get("memory") or {}).get("cuda") or []
    printed = [line.rstrip() for line in run.output.splitlines() if "oom" in line.lower() or line.strip().startswith("fix:")]
    out = {"status_run": run.status, "seconds": run.seconds, "error": {k: error.get(k) for k in ("kind", "code", "message", "step", "batch")},
           "cuda": cuda, "finding": {k: oom.get(k) for k in ("code", "severity", "title", "evidence", "fix", "overrides")},
           "printed": printed[:6], "run_dir": str(run.run_dir)}
    out["checks"] = {"error of kind oom": error.get("kind") == "oom", "CUDA figures": bool(cuda) and "total_mb" in cuda[0],
                     "oom finding": bool(oom), "exit 1": run.rc == 1}
    out["line"] = printed[0].strip() if printed else f"no oom: {run.error_line()}"
    return out


def _trl_default_checkpointing() -> bool:
    """TRL's own default for gradient checkpointing in SFTConfig (True in TRL 1.x)."""
    code = "import dataclasses, trl; print([f.default for f in dataclasses.fields(trl.SFTConfig) if f.name == 'gradient_checkpointing'][0])"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=runs.child_env())
        return done.stdout.strip() == "True"
    except (subprocess.SubprocessError, OSError):
        return True


def model_flops_per_token(model: str, tokens_per_example: float) -> float | None:
    """Model FLOPs per trained token for LoRA: forward (2N) and backward through the frozen weights
    (2N), N the matmul weights (layers and LM head), plus causal attention (6 x layers x q width x
    tokens, forward and backward). Recomputation under checkpointing does work but is not counted."""
    from engine.model import shape

    try:
        s = shape.model_shape(model)
    except shape.ShapeUnknown:
        return None
    matmul = s.linear_params + s.vocab_size * s.hidden_size
    attention = 6 * s.num_layers * s.num_heads * s.head_dim * tokens_per_example
    return 4 * matmul + attention


def part_throughput(c: Check, box_end: float) -> dict[str, Any]:
    steps, pairs = (4, 1) if c.smoke else (40, 2)
    checkpointing = _trl_default_checkpointing()
    base = ["--preset", "small-dataset", "--model", c.small, "--dataset", str(SAMPLE), "--max-steps", str(steps),
            "--grad-accum", "1", "--max-length", "1024", "--lr", "1e-4", "--log-steps", "1", *NO_SAVES]
    variants = {"trl-defaults": ["--batch-size", "8", "--set", "train.fast=false", "--set", f"train.gradient_checkpointing={str(checkpointing).lower()}"],
                "fast": ["--batch-size", "8", "--set", "train.fast=true"]}
    results: dict[str, list[runs.Run]] = {"trl-defaults": [], "fast": []}
    for i in range(pairs):
        order = ["trl-defaults", "fast"] if i % 2 == 0 else ["fast", "trl-defaults"]
        for name in order:
            results[name].append(c.run(f"4-{name}", base + variants[name], box_end))
    out: dict[str, Any] = {"pairs": pairs, "trl_default_gradient_checkpointing": checkpointing, "variants": {}}
    for name, done in results.items():
        tps = [r.tokens_per_second() for r in done]
        peaks = [memory_figures(r)["peak_allocated_gib"] for r in done]
        median_tokens = _median_tokens(done[0]) if done else None
        flops = model_flops_per_token(c.small, median_tokens) if median_tokens else None
        rate = _median([t for t in tps if t])
        out["variants"][name] = {
            "runs": [r.status for r in done], "tokens_per_second": tps, "median_tokens_per_second": rate,
            "peak_allocated_gib": peaks, "fast_lines": _fast_lines(done[0]) if done else [],
            "median_example_tokens": median_tokens,
            "mfu": round(rate * flops / (PEAK_TFLOPS * 1e12), 4) if (c.cuda and rate and flops) else None,
        }
    d, f = out["variants"]["trl-defaults"], out["variants"]["fast"]
    if d["median_tokens_per_second"] and f["median_tokens_per_second"]:
        out["speedup"] = round(f["median_tokens_per_second"] / d["median_tokens_per_second"], 2)
        # each pair ran back to back: its ratio cancels most of the machine's drift
        out["pair_speedups"] = [round(b / a, 2) for a, b in zip(d["tokens_per_second"], f["tokens_per_second"]) if a and b]
    dp, fp = _median([p for p in d["peak_allocated_gib"] if p]), _median([p for p in f["peak_allocated_gib"] if p])
    if dp and fp:
        out["memory_ratio"] = round(fp / dp, 2)
    all_done = all(r.status == "completed" for done in results.values() for r in done)
    out["checks"] = {"every run completed": all_done}
    if not c.cuda:
        # On the CPU the fast settings change nothing: the two variants must train the same.
        same = _same_losses(results["trl-defaults"][0], results["fast"][0]) if all_done else False
        out["checks"]["the same losses on the CPU"] = same
    mfu = f", MFU {_pct(d['mfu'])} -> {_pct(f['mfu'])} of {PEAK_TFLOPS:.0f} TFLOP/s" if c.cuda else ""
    mem = f", peak {dp} -> {fp} GiB" if dp and fp else " (CPU: the fast settings change nothing; TRL's default checkpointing does)"
    out["line"] = (f"tokens/s TRL defaults {_num(d['median_tokens_per_second'])} vs fast {_num(f['median_tokens_per_second'])}: "
                   f"{out.get('speedup')}x (pairs {out.get('pair_speedups')}){mem}{mfu}")
    return out


def part_resume(c: Check, box_end: float) -> dict[str, Any]:
    steps, stop = (10, 3) if c.smoke else (24, 10)
    args = ["--preset", "quick-test", "--model", c.small, "--dataset", str(SAMPLE), "--max-steps", str(steps), "--batch-size", "4",
            "--max-length", "640", "--lr", "1e-4", "--log-steps", "1", *NO_SAVES]
    reference = c.run("5-reference", args, box_end)
    stopped = c.run("5-stopped", args, box_end, stop_at_step=stop)
    stopped_status = stopped.status
    resumed = cockpit_run([], stopped.run_dir, max(10.0, min(box_end, c.deadline) - time.monotonic()), resume=True)
    ref, again = reference.losses(), resumed.losses()
    after = sorted(s for s in again if s in ref and s > (stopped.last("checkpoint").get("step") or 0))
    diffs = [abs(again[s] - ref[s]) for s in after]
    out = {"reference": training_figures(reference), "stopped": {"run": stopped_status, "asked_at": stopped.stopped_at,
           "checkpoint": stopped.last("checkpoint").get("step")}, "resumed": training_figures(resumed),
           "compared_steps": after, "max_abs_diff": max(diffs) if diffs else None,
           "bitwise": bool(diffs) and max(diffs) == 0.0}
    tolerance = 0.0 if c.smoke else 2e-2  # the CPU is deterministic; bf16 kernels on a GPU need not be
    out["checks"] = {"stopped with a checkpoint": stopped_status == "stopped" and out["stopped"]["checkpoint"] is not None,
                     "resumed to the end": resumed.status == "completed" and bool(again) and max(again) == steps,
                     f"losses within {tolerance}": bool(diffs) and max(diffs) <= tolerance}
    out["line"] = (f"stopped at step {out['stopped']['checkpoint']}, resumed to {max(again) if again else '-'}: "
                   f"{len(after)} steps compared, " + ("bitwise equal" if out["bitwise"] else f"max |loss diff| {out['max_abs_diff']}"))
    return out


PARTS: list[tuple[str, str, Callable[[Check, float], dict[str, Any]], float]] = [
    ("lora", "bf16 LoRA SFT of the 0.5B shape", part_lora, 90),
    ("qlora", "QLoRA NF4 + paged 8-bit AdamW", part_qlora, 150),
    ("oom", "an induced out-of-memory", part_oom, 80),
    ("throughput", "TRL defaults vs fast settings", part_throughput, 170),
    ("resume", "stop and resume", part_resume, 120),
]


def _median_tokens(run: runs.Run) -> float | None:
    train = (run.last("dataset").get("splits") or {}).get("train") or {}
    return ((train.get("tokens") or {}).get("total") or {}).get("median")


def _fast_lines(run: runs.Run) -> list[str]:
    return [e.get("message") for e in run.of("status") if str(e.get("message", "")).startswith("fast")]


def _same_losses(a: runs.Run, b: runs.Run) -> bool:
    la, lb = a.losses(), b.losses()
    return bool(la) and la.keys() == lb.keys() and all(math.isclose(la[s], lb[s], rel_tol=1e-4) for s in la)


def _findings(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / runs.names.FINDINGS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return data.get("findings", data) if isinstance(data, dict) else data


def _median(values: list[float]) -> float | None:
    import statistics

    return round(statistics.median(values), 1) if values else None


def _num(x: Any) -> str:
    return "-" if x is None else (f"{x:,.0f}" if isinstance(x, (int, float)) and abs(x) >= 100 else f"{x:.3g}" if isinstance(x, float) else str(x))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def environment(imports: bool) -> dict[str, Any]:
    """Python, torch, CUDA and the packages the check needs, read in a child (imports as the runs do;
    `imports`: also import trl, bitsandbytes and liger-kernel, which the smoke check leaves to its runs)."""
    code = (
        "import json, importlib, importlib.metadata as md\n"
        "out = {}\n"
        "for name in ('torch', 'transformers', 'trl', 'peft', 'accelerate', 'datasets', 'bitsandbytes', 'liger-kernel', 'pydantic', 'jsonschema'):\n"
        "    try: out[name] = md.version(name)\n"
        "    except md.PackageNotFoundError: out[name] = None\n"
        "import torch\n"
        "out['cuda'] = torch.cuda.is_available()\n"
        "out['cuda_version'] = torch.version.cuda\n"
        "out['gpu'] = torch.cuda.get_device_name(0) if out['cuda'] else None\n"
        "out['gpu_total_gib'] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if out['cuda'] else None\n"
        f"for module in {('trl', 'bitsandbytes', 'liger_kernel.transformers') if imports else ()}:\n"
        "    try: importlib.import_module(module); out['import ' + module] = 'ok'\n"
        "    except Exception as exc: out['import ' + module] = type(exc).__name__ + ': ' + str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__\n"
        "print(json.dumps(out))\n"
    )
    import platform

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=runs.child_env())
    try:
        env = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        env = {"cuda": False, "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    env["python"] = platform.python_version()
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path, help="where gpu_check.md, gpu_check.json and the run dirs go")
    parser.add_argument("--smoke", action="store_true", help="on the CPU with builtin:tiny, in under a minute (parts that need CUDA are skipped)")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S, help=f"time for all parts together (default {BUDGET_S})")
    parser.add_argument("--qlora-shape", default=BIG_SHAPE, help=f"the shape QLoRA trains (default {BIG_SHAPE})")
    parser.add_argument("--parts", default=",".join(name for name, *_ in PARTS), help="which parts, e.g. lora,oom")
    args = parser.parse_args(argv)
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in {name for name, *_ in PARTS}]
    if unknown:
        print(f"error: --parts: unknown part '{unknown[0]}'; the parts are {', '.join(n for n, *_ in PARTS)}", file=sys.stderr)
        return 2
    if args.budget_s <= 0:
        print(f"error: --budget-s {args.budget_s}: give the seconds the parts may take, e.g. --budget-s {BUDGET_S}", file=sys.stderr)
        return 2
    try:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: {args.out_dir}: cannot make the output dir ({exc.strerror}); give another OUT_DIR", file=sys.stderr)
        return 2
    started = time.monotonic()
    env = environment(imports=not args.smoke)
    cuda = bool(env.get("cuda")) and not args.smoke
    report = Report(args.out_dir, smoke=args.smoke, env=env)
    print(report.env_line(), flush=True)
    check = Check(args.out_dir, args.smoke, cuda, args.budget_s, args.qlora_shape)
    for index, (name, title, fn, box) in enumerate(PARTS, 1):
        if name not in wanted:
            continue
        part_start = time.monotonic()
        if args.smoke and name in ("lora", "throughput", "resume"):
            title += " (smoke: builtin:tiny, fp32, CPU)"
        if check.left() < 20:
            result = {"status": "skipped", "line": "skipped: out of time"}
        else:
            box_end = part_start + box
            try:
                result = fn(check, box_end)
            except Exception as exc:  # a broken part is recorded; the next one runs
                (args.out_dir / f"part{index}-traceback.txt").write_text(traceback.format_exc(), encoding="utf-8")
                result = {"status": "failed", "line": f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        result.setdefault("seconds_part", round(time.monotonic() - part_start, 1))
        if "status" not in result:  # skipped and broken parts say so themselves; the others by their checks
            bad = [k for k, ok in result.get("checks", {}).items() if not ok]
            result["status"] = "failed" if bad or not result.get("checks") else "ok"
            if bad:
                result["line"] = f"{result.get('line', '')} [failed: {', '.join(bad)}]"
        report.add(index, name, title, result)
        print(report.part_line(index, title, result), flush=True)
    report.finish(round(time.monotonic() - started, 1))
    print(f"report: {args.out_dir / 'gpu_check.md'} ({report.summary()})", flush=True)
    return 0 if report.all_ok() else 1


if __name__ == "__main__":
    sys.exit(main())
