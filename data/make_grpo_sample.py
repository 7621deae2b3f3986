"""Write `grpo_sample.jsonl`, the prompt set of the `grpo-demo` and `grpo-quick` presets; the same seed gives the same bytes.

    python data/make_grpo_sample.py

Each record asks to repeat a digit: {"question": "Repeat the digit: 7", "answer": "7", "metadata": "train"}.
builtin:tiny is a random model and cannot do arithmetic; this is a task it can learn with GRPO in a few
minutes on two CPU cores: answer with digits only, briefly, and (slowly) the digit it was shown.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 2024
N_TRAIN = 200
N_EVAL = 16
TEMPLATES = ("Repeat the digit: {d}", "Say the digit {d}.", "Digit: {d}. Repeat it.", "Copy this digit: {d}")
HERE = Path(__file__).resolve().parent


def records(rng: random.Random) -> list[dict]:
    out = []
    for i in range(N_TRAIN + N_EVAL):
        d = rng.randrange(10)
        split = "train" if i < N_TRAIN else "eval"
        out.append({"question": rng.choice(TEMPLATES).format(d=d), "answer": str(d), "metadata": split})
    return out


def main() -> None:
    rows = records(random.Random(SEED))
    path = HERE / "grpo_sample.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} records to {path}")


if __name__ == "__main__":
    main()
