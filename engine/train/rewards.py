"""GRPO reward functions: the built-in ones, TRL's by name, and the user's own from a Python file.

Every reward has TRL's signature, ``fn(prompts, completions, **columns) -> [float | None, ...]``,
one value per completion; a completion is a string, or a list of one assistant message when the
prompts are conversations. The built-in rewards are the seed trainer's (match_format_exactly,
match_format_approximately, check_answer, check_numbers), with the same scores, for the tags in
the `grpo` config section. Standard library only at import; a user's file is imported only when a
run names it, and every reward is tried on dummy completions before any model loads.
"""

from __future__ import annotations

import importlib.util
import inspect
import numbers
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import ConfigError, reward_weights
from engine.errors import EngineError

# TRL's reward functions usable by name (the factories in trl.rewards need arguments: wrap them in a file).
TRL_REWARDS = ("think_format_reward", "accuracy_reward", "reasoning_accuracy_reward")
# The seed's names for the built-in rewards.
ALIASES = {
    "match_format_exactly": "exact_format",
    "match_format_approximately": "soft_format",
    "check_answer": "correctness",
    "check_numbers": "number_match",
}
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


@dataclass(frozen=True)
class Tags:
    """The answer format the format and correctness rewards look for."""

    reasoning_start: str = "<reasoning>"
    reasoning_end: str = "</reasoning>"
    answer_start: str = "<answer>"
    answer_end: str = "</answer>"

    @classmethod
    def from_config(cls, grpo: dict[str, Any]) -> Tags:
        return cls(grpo["reasoning_start"], grpo["reasoning_end"], grpo["answer_start"], grpo["answer_end"])

    @property
    def bare(self) -> bool:
        """No tags at all: the answer is the completion itself (a task that wants just the answer)."""
        return not (self.reasoning_start or self.reasoning_end or self.answer_start or self.answer_end)

    def format_pattern(self) -> re.Pattern[str]:
        if self.bare:
            return re.compile(rf"^\s*({_NUMBER.pattern})\s*$")
        r, rr, a, aa = (re.escape(t) for t in (self.reasoning_start, self.reasoning_end, self.answer_start, self.answer_end))
        return re.compile(rf"^\s*{r}.+?{rr}.*?{a}(.+?){aa}\s*$", re.MULTILINE | re.DOTALL)

    def number_pattern(self) -> re.Pattern[str]:
        return re.compile(rf"{re.escape(self.answer_start)}.*?([\d\.]+)", re.MULTILINE | re.DOTALL)


# ---------------------------------------------------------------- text helpers


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or the content of a conversational completion."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    return str(completion)


def ground_truth(text: str) -> str:
    """The truth in a reference answer: the part after GSM8K's `####`, else the whole text, stripped."""
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    return text.strip().replace(",", "") if _NUMBER.fullmatch(text.strip()) else text.strip()


def to_number(text: str | None) -> float | None:
    """A number from answer text ("1,234", " 72 ", "$5.50" all read), or None."""
    if text is None:
        return None
    match = _NUMBER.search(text)
    if match is None:
        return None
    try:
        return float(match.group(0).replace(",", ""))
    except ValueError:
        return None


def extract_answer(text: str, tags: Tags) -> str | None:
    """The answer between the answer tags of a well-formed completion, or None."""
    match = tags.format_pattern().search(text)
    return match.group(1) if match else None


def answer_correct(text: str, truth: str, tags: Tags) -> bool:
    """Whether a completion is well formed and its answer equals the truth (as text, or as a number)."""
    guess = extract_answer(text, tags)
    if guess is None:
        return False
    if guess.strip() == truth.strip():
        return True
    a, b = to_number(guess), to_number(truth)
    return a is not None and b is not None and abs(a - b) < 1e-6


def format_ok(text: str, tags: Tags) -> bool:
    """Whether a completion has reasoning then the answer between the tags, and nothing after."""
    return tags.format_pattern().search(text) is not None


# ---------------------------------------------------------------- built-in rewards (the seed's scores)


def _answers(kwargs: dict[str, Any], n: int) -> list[str]:
    answers = kwargs.get("answer")
    if answers is None:
        raise ValueError("needs a ground truth: the data has no answer (give grpo.answer_field, or data with a completion)")
    return [str(a) for a in answers][:n]


def make_exact_format(tags: Tags) -> Callable[..., list[float]]:
    pattern = tags.format_pattern()

    def exact_format(prompts: list, completions: list, **kwargs: Any) -> list[float]:
        """3.0 when the completion is reasoning then the answer between tags, and nothing else."""
        return [3.0 if pattern.search(completion_text(c)) else 0.0 for c in completions]

    return exact_format


def make_soft_format(tags: Tags) -> Callable[..., list[float]]:
    def soft_format(prompts: list, completions: list, **kwargs: Any) -> list[float]:
        """+0.5 for each of the four tags present exactly once, -0.5 for each missing or repeated."""
        out = []
        for c in completions:
            text = completion_text(c)
            out.append(sum(0.5 if text.count(t) == 1 else -0.5 for t in (tags.reasoning_start, tags.reasoning_end, tags.answer_start, tags.answer_end)))
        return out

    return soft_format


def make_correctness(tags: Tags) -> Callable[..., list[float]]:
    pattern = tags.format_pattern()

    def correctness(prompts: list, completions: list, **kwargs: Any) -> list[float]:
        """3.0 for the exact answer, 1.5 equal but for spaces, 0.5 / 0.25 within 10% / 20%, -1.0 wrong, 0 unformatted."""
        out = []
        for c, truth in zip(completions, _answers(kwargs, len(completions))):
            match = pattern.search(completion_text(c))
            if match is None:
                out.append(0.0)
                continue
            guess = match.group(1)
            if guess == truth:
                out.append(3.0)
            elif guess.strip() == truth.strip():
                out.append(1.5)
            else:
                try:
                    ratio = float(guess) / float(truth)
                except (ValueError, ZeroDivisionError):
                    out.append(-0.5)
                    continue
                out.append(0.5 if 0.9 <= ratio <= 1.1 else 0.25 if 0.8 <= ratio <= 1.2 else -1.0)
        return out

    return correctness


def make_number_match(tags: Tags) -> Callable[..., list[float]]:
    pattern = tags.number_pattern()

    def number_match(prompts: list, completions: list, **kwargs: Any) -> list[float]:
        """1.5 when the first number after the answer tag equals the truth, else 0."""
        out = []
        for c, truth in zip(completions, _answers(kwargs, len(completions))):
            match = pattern.search(completion_text(c))
            try:
                out.append(1.5 if match and float(match.group(1)) == float(truth.strip()) else 0.0)
            except ValueError:
                out.append(0.0)
        return out

    return number_match


BUILTIN: dict[str, Callable[[Tags], Callable[..., list[float]]]] = {
    "exact_format": make_exact_format,
    "soft_format": make_soft_format,
    "correctness": make_correctness,
    "number_match": make_number_match,
}
NEEDS_ANSWER = {"correctness", "number_match", "accuracy_reward", "reasoning_accuracy_reward"}


# ---------------------------------------------------------------- user rewards


def load_user_reward(spec: str) -> Callable[..., Any]:
    """Import `path.py:function`; any failure is one EngineError("config") naming the file and the fix."""
    path_text, _, name = spec.rpartition(":")
    path = Path(path_text).expanduser()
    where = f"reward file {path}"
    if not path.is_file():
        raise EngineError("config", f"{where} does not exist; give --reward path/to/file.py:function")
    module_name = f"cockpit_reward_{abs(hash(str(path.resolve())))}"
    module = sys.modules.get(module_name)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise EngineError("config", f"{where} cannot be imported (is it a .py file?)")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except BaseException as exc:  # a syntax error, a missing import, anything the file raises
            sys.modules.pop(module_name, None)
            line = ""
            if isinstance(exc, SyntaxError) and exc.lineno:
                line = f" (line {exc.lineno})"
            text = str(exc).strip().splitlines()
            raise EngineError("config", f"{where} fails to import{line}: {type(exc).__name__}: {text[0] if text else ''}; fix the file") from None
    func = getattr(module, name, None)
    if func is None:
        found = sorted(k for k, v in vars(module).items() if inspect.isfunction(v) and v.__module__ == module_name)
        hint = f"; it defines {', '.join(found)}" if found else "; it defines no functions"
        raise EngineError("config", f"{where} has no function '{name}'{hint}")
    if not callable(func):
        raise EngineError("config", f"{where}: '{name}' is a {type(func).__name__}, not a function")
    return func


def _trl_reward(name: str) -> Callable[..., Any]:
    try:
        import trl.rewards

        return getattr(trl.rewards, name)
    except ImportError as exc:  # accuracy_reward needs math_verify
        raise EngineError("config", f"TRL's {name} cannot load: {str(exc).splitlines()[0]}; pip install math-verify, or pick another reward") from None


def _named(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """TRL names a reward's metrics after __name__; keep the name the user gave."""
    if getattr(func, "__name__", None) == name:
        return func

    def reward(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    reward.__name__ = reward.__qualname__ = name
    return reward


@dataclass
class RewardSet:
    """The run's reward functions, their names (as TRL logs them) and their weights."""

    funcs: list[Callable[..., Any]]
    names: list[str]
    weights: list[float]

    def needs_answer(self) -> bool:
        return any(n in NEEDS_ANSWER for n in self.names)


def build(grpo: dict[str, Any]) -> RewardSet:
    """The rewards named in grpo.rewards and grpo.reward_files; unknown names are config errors."""
    tags = Tags.from_config(grpo)
    try:
        weighted = reward_weights(grpo["rewards"])
    except ConfigError as exc:
        raise EngineError("config", str(exc)) from None
    user: dict[str, Callable[..., Any]] = {}
    for spec in grpo["reward_files"]:
        func_name = spec.rpartition(":")[2]
        if func_name in user:
            raise EngineError("config", f"grpo.reward_files: two files define '{func_name}'; rename one function")
        user[func_name] = load_user_reward(spec)
    weights = dict(weighted)
    for name in user:
        weights.setdefault(name, 1.0)  # a reward file named only by --reward gets weight 1
    funcs, names = [], []
    for name in weights:
        canonical = ALIASES.get(name, name)
        if name in user:
            func = user[name]
        elif canonical in BUILTIN:
            func = BUILTIN[canonical](tags)
        elif name in TRL_REWARDS:
            func = _trl_reward(name)
        else:
            import difflib

            known = [*BUILTIN, *ALIASES, *TRL_REWARDS, *user]
            near = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            raise EngineError(
                "config",
                f"grpo.rewards: unknown reward '{name}'; {hint}known: {', '.join([*BUILTIN, *TRL_REWARDS])}, "
                "or your own with --reward path.py:function",
            )
        funcs.append(_named(func, name))
        names.append(name)
    return RewardSet(funcs, names, [weights[n] for n in names])


def dummy_completions(prompt: Any, tags: Tags, answer: str) -> list[Any]:
    """Two completions shaped as the trainer will pass them: one well formed, one not."""
    texts = [
        f"{tags.reasoning_start}Two and two make four.{tags.reasoning_end}\n{tags.answer_start}{answer or 4}{tags.answer_end}",
        "I am not sure.",
    ]
    if isinstance(prompt, list):
        return [[{"role": "assistant", "content": t}] for t in texts]
    return texts


def check_shapes(rewards: RewardSet, rows: list[dict[str, Any]], tags: Tags) -> None:
    """Call every reward on two dummy completions of real rows: it must return two numbers (or None)."""
    if not rows:
        return
    row = rows[0]
    completions = dummy_completions(row["prompt"], tags, str(row.get("answer") or ""))
    columns = {k: [v] * len(completions) for k, v in row.items() if k not in ("prompt", "completion")}
    for func, name in zip(rewards.funcs, rewards.names):
        try:
            out = func(
                prompts=[row["prompt"]] * len(completions),
                completions=completions,
                completion_ids=[[0] * 4 for _ in completions],
                trainer_state=None,
                log_extra=lambda *a, **k: None,
                log_metric=lambda *a, **k: None,
                **columns,
            )
        except Exception as exc:
            text = str(exc).strip().splitlines()
            raise EngineError(
                "config",
                f"reward '{name}' fails on a dummy completion: {type(exc).__name__}: {text[0] if text else ''}; "
                "it is called as fn(prompts, completions, completion_ids, answer, **columns, **kwargs)",
            ) from None
        if isinstance(out, (str, bytes)) or not hasattr(out, "__len__") or len(out) != len(completions):
            got = f"{type(out).__name__} of length {len(out)}" if hasattr(out, "__len__") else type(out).__name__
            raise EngineError("config", f"reward '{name}' must return a list of {len(completions)} floats (one per completion), got {got}")
        bad = [v for v in out if v is not None and not isinstance(v, numbers.Real)]
        if bad:
            raise EngineError("config", f"reward '{name}' must return floats (or None to skip), got {type(bad[0]).__name__} {bad[0]!r}")
