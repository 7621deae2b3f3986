"""The training engine: runs in its own process, writes RUN_DIR/events.jsonl.

Only this package imports torch, transformers, trl, peft and datasets, and only inside the
functions that need them, so its light modules (events, config, data, lint) serve the cockpit too.
"""
