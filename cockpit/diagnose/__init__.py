"""Diagnoses of a training run, computed incrementally from its event stream (pure Python).

The same code runs live in `cockpit run` and the TUI, and after the fact in `cockpit doctor`::

    diagnoser = Diagnoser()
    for event in events:
        for finding in diagnoser.feed(event):   # raised or updated by this event
            ...
    diagnoser.findings                          # current, most severe first

Rules live in small modules: rules_data (dataset and plan), rules_sft (the training curve),
rules_grpo (rewards, completions, KL, entropy) and rules_run (how the engine ended).
"""

from cockpit.diagnose.diagnoser import Diagnoser, diagnose_events
from cockpit.diagnose.finding import FINDINGS_FILE, SEVERITIES, Finding, load_findings, save_findings, sort_findings

__all__ = ["Diagnoser", "Finding", "FINDINGS_FILE", "SEVERITIES", "diagnose_events", "load_findings", "save_findings", "sort_findings"]
