"""Which finding explains which: the root cause is listed first, the symptoms point to it.

NaN weights make eval_loss and grad_norm NaN; labels that are all masked make the loss 0 and the
run "memorize"; completions clipped at max_completion_length all score alike, so their groups have
no reward spread. A user who reads the symptom first is sent to the wrong fix (check the eval
split, train in bf16). Each link below is a symptom, the findings that can explain it (the first
one raised wins), and, where the symptom has several variants, the variant the cause explains.
"""

from __future__ import annotations

from collections.abc import Callable

from cockpit.diagnose.finding import Finding


def _nan_eval(symptom: Finding) -> bool:
    return "nan" in symptom.evidence  # eval-missing's NaN variant, not an empty or absent eval split


def _lost_completions(cause: Finding) -> bool:
    return bool(cause.evidence.get("completion_lost")) or cause.evidence.get("code") == "completion_lost"


Check = Callable[[Finding, Finding], bool]
_ALWAYS: Check = lambda symptom, cause: True  # noqa: E731

# symptom code -> (cause code, when it explains it), in order of preference.
LINKS: dict[str, tuple[tuple[str, Check], ...]] = {
    "grad-nan": (("loss-nan", _ALWAYS),),
    "eval-missing": (("loss-nan", lambda s, c: _nan_eval(s)), ("labels-masked", lambda s, c: _nan_eval(s))),
    "divergence": (("loss-nan", _ALWAYS),),
    "loss-spike": (("loss-nan", _ALWAYS), ("divergence", _ALWAYS)),
    "grad-spike": (("loss-nan", _ALWAYS), ("divergence", _ALWAYS)),
    "plateau": (("labels-masked", _ALWAYS), ("lr-zero", _ALWAYS), ("loss-nan", _ALWAYS)),
    "memorization": (("labels-masked", _ALWAYS), ("overfitting", _ALWAYS)),
    "labels-masked": (("truncation", lambda s, c: _lost_completions(c)), ("chat-template", _ALWAYS)),
    "reward-zero-std": (("reward-check", _ALWAYS), ("completions-clipped", _ALWAYS)),
    "completions-clipped": (("reward-check", lambda s, c: bool(c.evidence.get("clipped_share"))),),
    "reward-flat": (("reward-zero-std", _ALWAYS), ("completions-clipped", _ALWAYS), ("lr-zero", _ALWAYS),
                    ("loss-nan", _ALWAYS)),
    "reward-plateau": (("reward-zero-std", _ALWAYS), ("completions-clipped", _ALWAYS)),
    "entropy-collapse": (("loss-nan", _ALWAYS),),
}


def cause_of(symptom: Finding, found: dict[str, Finding]) -> Finding | None:
    """The finding that explains `symptom`, among those raised (`found`, by code), or None."""
    for code, check in LINKS.get(symptom.code, ()):
        cause = found.get(code)
        if cause is not None and cause is not symptom and check(symptom, cause):
            return cause
    return None


def point_to(symptom: Finding, cause: Finding | None) -> None:
    """Make a symptom point to its cause: the cause's code, its fix and overrides (nothing else to chase)."""
    if cause is None:
        symptom.cause = None
        return
    symptom.cause = cause.code
    symptom.fix = f"caused by {cause.code} ({cause.title[:1].lower() + cause.title[1:]}): {cause.fix}" if cause.fix else f"caused by {cause.code}"
    symptom.overrides = dict(cause.overrides)
