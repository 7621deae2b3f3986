"""How fast `cockpit lint` is against its floors, as ratios measured in one run.

- without a tokenizer: lint_file vs `json.loads` alone over the same lines (target <= 3x);
- with builtin:tiny's tokenizer: lint_file vs the fast tokenizer alone batch-encoding the same
  rendered texts (target <= 1.3x; tokenising is the floor);
- memory: lint's peak RSS on the big file, in a fresh process, against the file's size.

Runs are interleaved and the best of each is kept. The data is the shared tool-calling and GSM8K
sets repeated to the size asked for (synthetic records where they are absent).

    python bench/lint_speed.py                 # ~64 MB file without tokenizer, 3,000 records with
    python bench/lint_speed.py --size-mb 1024  # the 1 GB case
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "datasets"
SOURCES = ["toolcall/TeddyCr_daneel_training_set.jsonl", "gsm8k/train.jsonl"]


def sample_lines() -> list[bytes]:
    """Tool-calling chat records (OpenAI messages + tools), the format lint works hardest on."""
    path = SHARED / SOURCES[0]
    if path.is_file():
        return path.read_bytes().splitlines(keepends=True)
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]
    return [(json.dumps({"messages": [
        {"role": "system", "content": "You answer with tools. " * 20},
        {"role": "user", "content": f"find item {i} " * 10},
        {"role": "assistant", "content": None, "tool_calls": [{"id": f"c{i}", "type": "function",
         "function": {"name": "lookup", "arguments": json.dumps({"q": f"item {i}"})}}]}],
        "tools": tools}) + "\n").encode() for i in range(1000)]


def build(path: Path, lines: list[bytes], size_mb: float) -> tuple[int, int]:
    """Repeat `lines` into `path` until it holds size_mb; each copy is made unique (no dups)."""
    target, written, copy, records = size_mb * 2**20, 0, 0, 0
    with open(path, "wb") as f:
        while written < target:
            for line in lines:
                rec = json.loads(line)
                rec["id"] = f"{copy}"  # an extra column: a distinct record, the same format
                out = (json.dumps(rec) + "\n").encode()
                f.write(out)
                written += len(out)
                records += 1
            copy += 1
    return written, records


def time_loads(path: Path) -> float:
    t = time.perf_counter()
    with open(path, "rb") as f:
        for line in f:
            json.loads(line)
    return time.perf_counter() - t


def time_lint(path: Path, tokenizer=None) -> float:
    from engine.data.lint import lint_file

    t = time.perf_counter()
    report = lint_file(path, tokenizer=tokenizer, max_length=4096)
    elapsed = time.perf_counter() - t
    assert report.fatal is None, report.fatal
    return elapsed


def rendered_texts(path: Path, tokenizer) -> list[str]:
    from engine.data.load import iter_records
    from engine.data.formats import detect_format, normalize_record
    from engine.data.tokens import render

    texts = []
    for _, rec in iter_records(path):
        row = normalize_record(rec, detect_format(rec))
        texts.append(render(row, tokenizer)[1])
    return texts


def time_encode(texts: list[str], tokenizer, backend: bool, batch: int = 256) -> float:
    t = time.perf_counter()
    for i in range(0, len(texts), batch):
        chunk = texts[i:i + batch]
        if backend:
            tokenizer._tokenizer.encode_batch(chunk, add_special_tokens=False)
        else:
            tokenizer(chunk, add_special_tokens=False)
    return time.perf_counter() - t


def peak_rss_mb(path: Path) -> float:
    code = ("import resource, sys; sys.path.insert(0, %r); from engine.data.lint import lint_file; "
            "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; lint_file(%r); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, r0 / 1024)"
            % (str(ROOT), str(path)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak, base = map(float, out.stdout.split())
    return peak, base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=64, help="size of the file for the no-tokenizer run")
    ap.add_argument("--token-records", type=int, default=3000, help="records for the tokenizer run")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs; the best is kept")
    args = ap.parse_args()

    from engine.model.tiny import load_tokenizer

    lines = sample_lines()
    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "big.jsonl", Path(tmp) / "small.jsonl"
        size, records = build(big, lines, args.size_mb)
        # first, while this process is small: a child inherits its parent's peak RSS on Linux
        peak, base = peak_rss_mb(big)
        with open(big, "rb") as src, open(small, "wb") as dst:
            for _, line in zip(range(args.token_records), src):
                dst.write(line)
        tokenizer = load_tokenizer()
        texts = rendered_texts(small, tokenizer)

        loads, lint_plain, encode_be, encode_tok, lint_tok = [], [], [], [], []
        for _ in range(args.repeat):
            loads.append(time_loads(big))
            lint_plain.append(time_lint(big))
            encode_be.append(time_encode(texts, tokenizer, backend=True))
            encode_tok.append(time_encode(texts, tokenizer, backend=False))
            lint_tok.append(time_lint(small, tokenizer))

    rows = [
        ("json.loads over the lines", min(loads), None),
        ("lint, no tokenizer", min(lint_plain), min(lint_plain) / min(loads)),
        ("tokenizer backend encode_batch", min(encode_be), None),
        ("tokenizer __call__ (batch)", min(encode_tok), None),
        ("lint with builtin:tiny", min(lint_tok), min(lint_tok) / min(encode_be)),
    ]
    print(f"file: {size / 2**20:.0f} MB, {records} tool-calling records (messages + tools); "
          f"tokenizer run: the first {args.token_records} of them")
    print(f"{'measure':<34} {'seconds':>9} {'ratio':>7} {'target':>7}")
    targets = {1: "<= 3.0", 4: "<= 1.3"}
    for i, (name, secs, ratio) in enumerate(rows):
        r = f"{ratio:.2f}x" if ratio else ""
        print(f"{name:<34} {secs:>9.2f} {r:>7} {targets.get(i, ''):>7}")
    print(f"lint vs tokenizer __call__: {min(lint_tok) / min(encode_tok):.2f}x")
    print(f"peak RSS linting the {size / 2**20:.0f} MB file: {peak:.0f} MB "
          f"(before linting: {base:.0f} MB)")


if __name__ == "__main__":
    main()
