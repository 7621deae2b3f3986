"""Dataset lint: every problem that would waste a training run, with a count, places and the fix.

The file is read the way the engine reads it (`engine.data.load.iter_records` and
`engine.data.formats`), one record at a time: memory grows by a few hashes per record, never with
the file's size. With a tokenizer, records are counted by the engine's own `TokenCounter` and
judged by `checks.token_findings`, so lint and a run agree. Standard library only (the tokenizer is
the caller's). `lint_file` is what `cockpit lint`, the launch path and the engine call.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from typing import Any

from engine.data.checks import CHECKS, MAX_PLACES, LintFinding, LintReport, new_finding, token_findings
from engine.data.formats import RecordError, Skip, detect_format, normalize_record, unescape_template
from engine.data.load import ABSENT, SPLITS, check_options, file_kind, iter_records, split_value, where
from engine.data.tokens import TokenCounter, length_report, stats
from engine.data.tool_checks import ConversationChecks
from engine.errors import DataError

DEFAULT_MAX_LENGTH = 1024  # the engine's train.max_length default
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
LINT_KEYS = ("format", "split_field", "prompt_template", "completion_template", "system_prompt", "loss_on", "chat")


def options_from_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """`lint_file` keyword arguments from a resolved run config (the eval file is linted on its own)."""
    data, train = cfg.get("data", {}), cfg.get("train", {})
    opts = {k: data[k] for k in LINT_KEYS if k in data}
    opts["max_length"] = train.get("max_length", DEFAULT_MAX_LENGTH)
    opts["truncation_mode"] = train.get("truncation_mode", "keep_start")
    opts["too_long"] = data.get("too_long", "truncate")
    return opts


def lint_file(path, *, format: str = "auto", split_field: str | None = "metadata",
              prompt_template: str | None = None, completion_template: str | None = None,
              system_prompt: str | None = None, loss_on: str = "completion", chat: bool = True,
              tokenizer: Any = None, max_length: int | None = None, truncation_mode: str = "keep_start",
              too_long: str = "truncate") -> LintReport:
    """Lint one dataset file; never raises for bad data (a file that cannot be read sets `fatal`).

    With a `tokenizer` the token checks run too (render every record, lengths, what `max_length`
    does). Options are those of `engine.data.load.load_splits`.
    """
    report = LintReport(path=str(path))
    prompt_template = unescape_template(prompt_template) if prompt_template else None
    completion_template = unescape_template(completion_template) if completion_template else None
    try:
        check_options(format, loss_on, prompt_template, completion_template)
        kind = file_kind(path)
    except DataError as exc:
        report.fatal = str(exc)
        return report
    linter = Linter(report, kind, format=format, split_field=split_field,
                    norm=dict(loss_on=loss_on, chat=chat, system_prompt=system_prompt,
                              prompt_template=prompt_template, completion_template=completion_template),
                    tokenizer=tokenizer, max_length=max_length or DEFAULT_MAX_LENGTH,
                    truncation_mode=truncation_mode, too_long=too_long)
    try:
        linter.run(path)
    except DataError as exc:  # the file itself broke (bad JSON list, not UTF-8)
        report.fatal = str(exc)
    return report


# ---------------------------------------------------------------- the checks


def _family(fmt: str) -> str:
    return "messages" if fmt == "messages-parts" else fmt


def _histogram(values, bins: int = 10) -> list[list[int]]:
    """[lo, hi, count] over powers of two: lengths are skewed, a log scale shows both ends."""
    if not values:
        return []
    top = max(values)
    edges = [0]
    while edges[-1] <= top:
        edges.append(max(16, edges[-1] * 2))
    counts = [0] * (len(edges) - 1)
    for v in values:
        counts[min(len(counts) - 1, max(0, v.bit_length() - 4))] += 1
    return [[edges[i], edges[i + 1], c] for i, c in enumerate(counts)][:max(bins, len(counts))]


def ctext_probe(completion: Any) -> str:
    return "tool_calls" if isinstance(completion, list) and any(
        "tool_calls" in m for m in completion) else ""


def _without_ids(msgs: Any) -> Any:
    """Messages without tool-call ids, so copies that differ only in generated ids are duplicates."""
    if not isinstance(msgs, list):
        return msgs
    return [(m["role"], m["content"], m.get("name"),
             [(c["function"]["name"], c["function"]["arguments"]) for c in m.get("tool_calls", ())])
            for m in msgs]


class Linter:
    """One pass over a file: per-record checks as records stream by, file-wide ones at the end."""

    def __init__(self, report: LintReport, kind: str, *, format: str, split_field: str | None,
                 norm: dict[str, Any], tokenizer: Any, max_length: int, truncation_mode: str, too_long: str):
        self.report, self.kind, self.split_field, self.norm = report, kind, split_field, norm
        self.fmt = "mapped" if norm["prompt_template"] else format
        self.detect = format == "auto" and not norm["prompt_template"]
        self.found: dict[str, LintFinding] = {}
        self.details: dict[str, Counter] = {}
        self.other_formats: Counter = Counter()
        self.pairs: set[int] = set()
        self.first_answer: dict[int, int] = {}
        self.split_of_prompt: dict[int, int] = {}
        self.split_counts: Counter = Counter()
        self.labels: Counter | None = Counter()
        self.label_lines: dict[str, list[int]] = {}
        self.conversations = ConversationChecks(self.add)
        self.lines = array("q")
        self.prompt_len, self.completion_len = array("l"), array("l")
        self.max_length, self.truncation_mode, self.too_long = max_length, truncation_mode, too_long
        self.tokenizer = tokenizer
        self.counter = TokenCounter(tokenizer) if tokenizer is not None else None
        self.has_template = bool(getattr(tokenizer, "chat_template", None))

    # -- bookkeeping

    def add(self, code: str, n: int | None, detail: str | None = None, count: int = 1) -> None:
        finding = self.found.get(code)
        if finding is None:
            finding = self.found[code] = new_finding(code, count=0)
        finding.count += count
        if n is not None and len(finding.places) < MAX_PLACES:
            finding.places.append(where(self.report.path, n, self.kind))
        if detail:
            self.details.setdefault(code, Counter())[detail] += 1

    # -- the pass

    def run(self, path) -> None:
        for n, rec in iter_records(path, errors="yield"):
            self.report.records += 1
            if isinstance(rec, DataError):
                self.add(rec.code if rec.code in CHECKS else "bad_record", n, str(rec).split(": ", 1)[-1])
            elif not isinstance(rec, dict):
                self.add("wrong_type", n, f"a {type(rec).__name__}")
            elif not rec:
                self.add("empty_record", n)
            else:
                self.record(n, rec)
        if not self.report.records:
            self.add("no_records", None)
        if self.counter is not None:
            self.counter.finish()
            for n, message in self.counter.failures:
                self.add("template_error", n, message[:120])
        self.finish()

    def record(self, n: int, rec: dict) -> None:
        fmt = self.fmt
        if self.detect:
            try:
                found = detect_format(rec)
            except RecordError as exc:
                self.add("unknown_format" if fmt == "auto" else "missing_field", n, str(exc))
                return
            if fmt == "auto":
                fmt = self.fmt = self.report.format = found
            elif _family(found) != _family(fmt):
                self.other_formats[found] += 1
                self.add("mixed_formats", n)
                return
        self.report.format = fmt
        try:
            row = normalize_record(rec, fmt, **self.norm)
        except Skip as skip:
            self.add("empty_completion" if skip.reason == "empty completion" else "empty_record", n)
            return
        except RecordError as exc:
            self.add(exc.code if exc.code in CHECKS else "bad_record", n, str(exc).split(";")[0])
            return
        split = None
        if self.split_field and self.split_field in rec:
            split = split_value(rec[self.split_field])
            if split not in SPLITS:
                self.add("split_values", n, "missing" if split is ABSENT else repr(split))
                split = None
            else:
                self.split_counts[split] += 1
        if fmt == "messages":
            self.conversations.raw_tool_checks(n, rec["messages"])
        self.row(n, row, split)
        if self.counter is not None:
            self.count_tokens(n, row)

    def count_tokens(self, n: int, row: dict) -> None:
        if not self.has_template and "text" not in row and not isinstance(row.get("prompt"), str):
            self.add("no_chat_template", n)
            return
        texts = self.counter.add(row, n)
        if texts is not None:
            self.conversations.template_args(n, row, texts[1])

    def row(self, n: int, row: dict, split: str | None) -> None:
        tools = row.get("tools")
        if "text" in row:
            prompt, completion = row["text"], ""
            plen, clen = len(prompt), 0
        elif isinstance(row.get("prompt"), str):
            prompt, completion = row["prompt"], row["completion"]
            plen, clen = len(prompt), len(completion)
        else:
            msgs = row["messages"] if "messages" in row else row["prompt"] + row["completion"]
            last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
            prompt, completion = msgs[:last], msgs[last:last + 1]
            self.conversations.messages(n, msgs, tools)
            plen = sum(len(m["content"]) for m in prompt)
            clen = len(completion[0]["content"]) + sum(
                len(c["function"]["arguments"]) for c in completion[0].get("tool_calls", ()))
        if tools is not None or ctext_probe(completion):
            ptext, ctext = repr(_without_ids(prompt)) + (tools or ""), repr(_without_ids(completion))
        else:
            ptext, ctext = repr(prompt), repr(completion)
        pk, ck = hash(ptext), hash(ctext)
        pair = hash((pk, ck))
        if pair in self.pairs:
            self.add("duplicate", n)
        else:
            self.pairs.add(pair)
            first = self.first_answer.setdefault(pk, ck)
            if first != ck:
                self.add("conflicting_answers", n)
        if split is not None:
            bit = 1 if split == "train" else 2
            seen = self.split_of_prompt.get(pk, 0)
            if seen and not seen & bit:
                self.add("split_overlap", n)
            self.split_of_prompt[pk] = seen | bit
        if "{{" in ptext or "{{" in ctext:
            names = _PLACEHOLDER.findall(ptext) + _PLACEHOLDER.findall(ctext)
            if names:
                self.add("placeholder", n)
                for name in names:
                    self.details.setdefault("placeholder", Counter())["{{" + name + "}}"] += 1
        if self.labels is not None:
            label = completion if isinstance(completion, str) else (
                completion[0]["content"] if completion and not completion[0].get("tool_calls")
                else None)
            if label is None or len(label) > 24 or len(label.split()) != 1 or len(self.labels) > 50:
                self.labels = None
            else:
                label = label.strip()
                self.labels[label] += 1
                seen = self.label_lines.setdefault(label, [])
                if len(seen) < MAX_PLACES:
                    seen.append(n)
        self.lines.append(n)
        self.prompt_len.append(plen)
        self.completion_len.append(clen)

    # -- file-wide checks

    def finish(self) -> None:
        rep = self.report
        if self.other_formats:
            self.found["mixed_formats"].detail = (
                f"the file is {self.fmt}; " + ", ".join(f"{c} look like {f}"
                                                        for f, c in self.other_formats.most_common()))
        self.split_findings()
        self.label_findings()
        self.length_findings()
        if self.counter is not None:
            self.token_checks()
        for code, counts in self.details.items():
            if code in self.found and not self.found[code].detail:
                self.found[code].detail = ", ".join(
                    f"{d} x{c}" if len(counts) > 1 else d for d, c in counts.most_common(3))
        answers = self.found.get("conflicting_answers")
        if answers and self.labels is None:  # free text: different answers are mostly paraphrases
            answers.severity, answers.title = "info", "prompts repeated with different answers"
        rep.findings = list(self.found.values())
        rep.sort()
        rep.stats["splits"] = dict(self.split_counts)
        if rep.format is None and self.fmt != "auto":
            rep.format = self.fmt

    def split_findings(self) -> None:
        if not self.split_counts and "split_values" not in self.found:
            return
        n_eval, n_train = self.split_counts["eval"], self.split_counts["train"]
        if n_eval == 0 and "split_values" not in self.found:
            self.add("no_eval", None, f"{n_train} train, 0 eval", count=n_train)
            self.found["no_eval"].overrides = {"data.eval_split": 0.1}
        elif 0 < n_eval < 10 and n_eval < 0.05 * (n_train + n_eval):
            self.add("tiny_eval", None, f"{n_eval} eval of {n_train + n_eval}", count=n_eval)

    def label_findings(self) -> None:
        labels, total = self.labels, len(self.lines)
        if not labels or total < 20 or not 2 <= len(labels) <= 20:
            return
        common = max(labels.values())
        rare = {k: c for k, c in labels.items() if c < 0.01 * total and c * 10 < common}
        if rare:
            self.add("label_outlier", None, ", ".join(f"{k!r} x{c}" for k, c in rare.items()),
                     count=sum(rare.values()))
            self.found["label_outlier"].fix += (
                f"; the other labels: {', '.join(repr(k) for k in labels if k not in rare)}")
            lines = sorted(n for k in rare for n in self.label_lines[k])[:MAX_PLACES]
            self.found["label_outlier"].places = [where(self.report.path, n, self.kind) for n in lines]

    def length_findings(self) -> None:
        totals = [p + c for p, c in zip(self.prompt_len, self.completion_len)]
        self.report.stats["lengths"] = {"unit": "characters", "prompt": stats(self.prompt_len),
                                        "completion": stats(self.completion_len),
                                        "total": stats(totals)}
        self.report.stats["histogram"] = _histogram(totals)
        if len(totals) < 20:
            return
        median = sorted(totals)[len(totals) // 2]
        for n, t in zip(self.lines, totals):
            if t > 10 * median and t > 1000:
                self.add("long_record", n)
            elif t * 10 < median:
                self.add("short_record", n)

    def token_checks(self) -> None:
        counter = self.counter
        if not counter.total_lens:
            return
        length = length_report(counter.prompt_lens, counter.total_lens, self.max_length, self.truncation_mode)
        self.report.stats["tokens"] = {
            "max_length": self.max_length, **length["tokens"], "truncated": length["truncated"],
            "completion_lost": length["completion_lost"], "keep_max_length": length["keep_max_length"]}
        self.report.stats["histogram"] = _histogram(counter.total_lens)
        places = counter.places
        for finding in token_findings(length, lambda i: where(self.report.path, places[i], self.kind),
                                      max_length=self.max_length, loss_on=self.norm["loss_on"], too_long=self.too_long):
            self.found[finding.code] = finding
