"""The GPU check's report: gpu_check.json (every figure) and gpu_check.md (one line a part, then the
figures), both rewritten whole after each part so that a check cut short still leaves them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # a reader never sees half a report


class Report:
    def __init__(self, out: Path, smoke: bool, env: dict[str, Any]):
        self.out, self.smoke, self.env = out, smoke, env
        self.parts: list[dict[str, Any]] = []
        self.started = time.strftime("%Y-%m-%d %H:%M:%S")
        self.seconds: float | None = None
        self._save()

    def env_line(self) -> str:
        e = self.env
        where = f"{e.get('gpu')} ({e.get('gpu_total_gib')} GiB, CUDA {e.get('cuda_version')})" if e.get("cuda") else "no CUDA GPU"
        versions = ", ".join(f"{k} {v}" for k, v in e.items() if k in ("torch", "transformers", "trl", "peft", "bitsandbytes", "liger-kernel"))
        broken = [f"{k}: {v}" for k, v in e.items() if k.startswith("import ") and v != "ok"]
        mode = "smoke (CPU, builtin:tiny)" if self.smoke else "full"
        return f"gpu check, {mode}: {where}; python {e.get('python')}, {versions}" + (f"; {'; '.join(broken)}" if broken else "")

    def part_line(self, index: int, title: str, result: dict[str, Any]) -> str:
        return f"[{index}/5] {title}: {result['status']} in {result.get('seconds_part')} s — {result.get('line', '')}"

    def add(self, index: int, name: str, title: str, result: dict[str, Any]) -> None:
        self.parts.append({"index": index, "name": name, "title": title, **result})
        self._save()

    def finish(self, seconds: float) -> None:
        self.seconds = seconds
        self._save()

    def all_ok(self) -> bool:
        return all(p["status"] in ("ok", "skipped") for p in self.parts)

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for p in self.parts:
            counts[p["status"]] = counts.get(p["status"], 0) + 1
        return ", ".join(f"{n} {s}" for s, n in counts.items()) + (f", {self.seconds} s" if self.seconds is not None else "")

    def _save(self) -> None:
        data = {"started": self.started, "smoke": self.smoke, "seconds": self.seconds, "environment": self.env, "parts": self.parts}
        _write(self.out / "gpu_check.json", json.dumps(data, indent=1, default=str) + "\n")
        _write(self.out / "gpu_check.md", self.markdown())

    def markdown(self) -> str:
        lines = ["# GPU check", "", self.env_line(), ""]
        if self.seconds is None:
            lines += ["(still running, or cut short: the parts below are those that ended)", ""]
        else:
            lines += [f"{self.summary()}", ""]
        for p in self.parts:
            lines.append(f"- **{p['index']}. {p['title']}**: {p['status']} in {p.get('seconds_part')} s — {p.get('line', '')}")
        for p in self.parts:
            if p["status"] == "skipped":
                continue
            lines += ["", f"## {p['index']}. {p['title']}", ""]
            for key, ok in (p.get("checks") or {}).items():
                lines.append(f"- [{'x' if ok else ' '}] {key}")
            figures = {k: v for k, v in p.items() if k not in ("index", "name", "title", "status", "line", "checks")}
            lines += ["", "```json", json.dumps(figures, indent=1, default=str), "```"]
        return "\n".join(lines) + "\n"
