"""The Diagnoser: feeds events to the rules and keeps each finding raised once, then updated."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cockpit.diagnose import causes, fit_check, rules_data, rules_eval, rules_grpo, rules_grpo_trend, rules_run, rules_sft
from cockpit.diagnose.finding import Finding, severity_rank, sort_findings
from cockpit.state import RunState

RuleFn = Callable[[RunState, dict[str, Any]], "Finding | None"]
# Slow rules look at a long stretch of the run; on training logs they run about 50 times per run
# (every log early on, then every 2% of the logs), and always at the end. Findings whose evidence
# moves with every log are refreshed at the same pace.
SLOW_EVERY = 50


@dataclass(frozen=True)
class Rule:
    fn: RuleFn
    on: frozenset[str]
    slow: bool = False
    grpo: bool = False  # only judged on GRPO runs


def _rule(fn: RuleFn, *on: str, slow: bool = False, grpo: bool = False) -> Rule:
    return Rule(fn, frozenset(on), slow, grpo)


RULES: tuple[Rule, ...] = (
    _rule(rules_run.oom, "error"),
    _rule(rules_run.crash, "error", "run_finished"),
    _rule(rules_data.truncation, "dataset", "error"),
    _rule(rules_data.chat_template, "dataset", "error"),
    _rule(rules_data.too_few_steps, "status"),
    _rule(rules_data.eval_missing, "status", "dataset", "eval", "error", "metrics", "run_finished", slow=True),
    _rule(rules_sft.labels_masked, "dataset", "samples", "metrics"),
    _rule(rules_sft.loss_nan, "metrics", "error"),
    _rule(rules_sft.grad_nan, "metrics"),
    _rule(rules_sft.divergence, "metrics"),
    _rule(rules_sft.loss_spike, "metrics"),
    _rule(rules_sft.step_backtrack, "metrics"),
    _rule(rules_sft.grad_spike, "metrics"),
    _rule(rules_sft.lr_zero, "metrics"),
    _rule(rules_eval.overfitting, "eval", "run_finished"),
    _rule(rules_eval.eval_small, "status", "dataset"),
    _rule(rules_sft.plateau, "metrics", "eval", slow=True),
    _rule(rules_eval.memorization, "metrics", "eval", slow=True),
    _rule(rules_grpo.reward_check, "reward_check", "error"),
    _rule(rules_grpo.reward_zero_std, "metrics", grpo=True),
    _rule(rules_grpo.completions_clipped, "metrics", grpo=True),
    _rule(rules_grpo_trend.kl_blowup, "metrics", grpo=True),
    _rule(rules_grpo_trend.entropy_collapse, "metrics", grpo=True),
    _rule(rules_grpo_trend.reward_flat, "metrics", slow=True, grpo=True),
    _rule(rules_grpo_trend.reward_plateau, "metrics", slow=True, grpo=True),
    _rule(rules_grpo_trend.reward_hacking, "eval", "metrics", slow=True, grpo=True),
    _rule(rules_grpo_trend.length_pathology, "metrics", slow=True, grpo=True),
    _rule(rules_grpo_trend.clip_saturation, "metrics", grpo=True),
    _rule(rules_grpo_trend.reward_dominated, "metrics", slow=True, grpo=True),
    _rule(rules_grpo_trend.kl_drift, "metrics", slow=True, grpo=True),
)


def _select(kind: str, grpo: bool, slow: bool) -> tuple[Rule, ...]:
    return tuple(r for r in RULES if kind in r.on and (grpo or not r.grpo) and (slow or not r.slow))


_TYPES = {t for r in RULES for t in r.on}
# (event type, GRPO run, slow rules due) -> the rules to run, worked out once.
_PLAN = {(t, g, s): _select(t, g, s) for t in _TYPES for g in (False, True) for s in (False, True)}


class Diagnoser:
    """Findings from an event stream, computed as it arrives (the same code live and after the fact).

    The Diagnoser folds events into its `state` (the run's one RunState, shared with whoever shows
    it) and judges each fresh event once. `feed(event)` returns the findings this event raised or
    updated; `findings` is the current list,
    most severe first. A finding is raised once, when it first holds, and updated (same code,
    `updates` + 1) as its evidence changes; its severity never goes down.
    """

    def __init__(self, state: RunState | None = None) -> None:
        self.state = state if state is not None else RunState()
        self._memos: dict[RuleFn, dict[str, Any]] = {r.fn: {} for r in RULES}
        self._by_code: dict[str, Finding] = {}
        self._fitted: dict[tuple[str, str, str], tuple[dict[str, Any], str, Any]] = {}

    @property
    def findings(self) -> list[Finding]:
        return sort_findings(list(self._by_code.values()))

    def feed(self, event: dict[str, Any]) -> list[Finding]:
        kind = event.get("type")
        if not isinstance(kind, str) or kind == "finding":
            return []
        state = self.state
        if not state.feed(event):  # a step folded already (a resume repeats the steps after its checkpoint)
            return []
        if kind == "run_finished":
            return self._run(RULES, due=True)
        if kind not in _TYPES:
            return []
        due = True
        if kind == "metrics":
            n = state.n_logs
            due = n % max(1, n // SLOW_EVERY) == 0
        return self._run(_PLAN[(kind, state.kind == "grpo", due)], due)

    def finish(self) -> list[Finding]:
        """Run every rule once more on the whole stream (for a log that ends without run_finished)."""
        return self._run(RULES, due=True)

    def _run(self, rules: Iterable[Rule], due: bool) -> list[Finding]:
        changed: list[Finding] = []
        memos = self._memos
        state = self.state
        for rule in rules:
            if rule.grpo and state.kind != "grpo":
                continue
            found = rule.fn(state, memos[rule.fn])
            if found is None:
                continue
            merged = self._merge(found, due)
            if merged is not None:
                changed.append(merged)
        if changed:
            self._relink(changed)
        return changed

    def _relink(self, changed: list[Finding]) -> None:
        """Point every finding at the cause that explains it, now that new findings may have come."""
        for finding in list(self._by_code.values()):
            cause = causes.cause_of(finding, self._by_code)
            if cause is None:
                continue
            before = (finding.cause, finding.fix, finding.overrides)
            causes.point_to(finding, cause)
            if (finding.cause, finding.fix, finding.overrides) != before and all(f is not finding for f in changed):
                finding.updates += 1
                finding.updated_step = self.state.step
                changed.append(finding)

    def _fit(self, found: Finding) -> None:
        """A fix that raises memory is checked against the estimate once per distinct fix (fit_check)."""
        if not fit_check.MEMORY_KEYS & found.overrides.keys():
            return
        key = (found.code, repr(sorted(found.overrides.items())), found.fix)
        done = self._fitted.get(key)
        if done is None:
            fit_check.check(found, self.state)
            done = self._fitted[key] = (dict(found.overrides), found.fix, found.evidence.get("fit"))
        found.overrides, found.fix = dict(done[0]), done[1]
        if done[2] is not None:
            found.evidence["fit"] = done[2]

    def _merge(self, found: Finding, due: bool) -> Finding | None:
        step = self.state.step
        if found is not self._by_code.get(found.code):
            self._fit(found)
        cause = causes.cause_of(found, self._by_code)
        if cause is not None:
            causes.point_to(found, cause)
        existing = self._by_code.get(found.code)
        if existing is None:
            found.first_step = found.step if found.step is not None else step
            found.updated_step = found.first_step
            self._by_code[found.code] = found
            self.state.raised.add(found.code)
            return found
        if found is existing:
            return None
        # Evidence that moves every log is refreshed at the slow rules' pace; a change of severity at once.
        if not due and severity_rank(found.severity) >= severity_rank(existing.severity):
            return None
        if found.same_content(existing):
            return None
        found.first_step = existing.first_step
        found.updated_step = step
        found.updates = existing.updates + 1
        if severity_rank(existing.severity) < severity_rank(found.severity):
            found.severity = existing.severity
        self._by_code[found.code] = found
        return found

    def summary(self) -> dict[str, Any]:
        """The run in numbers: steps, first/last/min loss, best eval loss and its step."""
        s = self.state
        loss = s.loss
        best: tuple[str, float, int] | None = None
        for eval_set in s.eval_sets.values():
            if eval_set.best_index is None:
                continue
            value = eval_set.values[eval_set.best_index]
            if best is None or (eval_set.name == "" and best[0] != "eval_loss") or (value < best[1] and best[0] != "eval_loss"):
                best = (eval_set.key, value, eval_set.steps[eval_set.best_index])
        return {
            "steps": s.step,
            "total_steps": s.total_steps,
            "logs": s.n_logs,
            "evaluations": s.n_evals,
            "kind": s.kind,
            "first_loss": s.first_loss,
            "last_loss": loss.last,
            "min_loss": s.min_loss,
            "min_loss_step": s.min_loss_step,
            "best_eval": None if best is None else {"key": best[0], "value": best[1], "step": best[2]},
            "eval_nan": sum(len(e.nan_steps) for e in s.eval_sets.values()),
            "reward_first": _first(s, "reward"),
            "reward_last": _last(s, "reward"),
            "epoch": s.epoch,
            "status": (s.finished or {}).get("status"),
        }


def _first(state: RunState, key: str) -> float | None:
    series = state.series.get(key)
    return series.first if series is not None else None


def _last(state: RunState, key: str) -> float | None:
    series = state.series.get(key)
    return series.last if series is not None else None


def diagnose_events(events: Iterable[dict[str, Any]]) -> list[Finding]:
    """The findings of a whole event stream, most severe first."""
    diagnoser = Diagnoser()
    for event in events:
        diagnoser.feed(event)
    diagnoser.finish()
    return diagnoser.findings


__all__ = ["Diagnoser", "diagnose_events", "RULES"]
