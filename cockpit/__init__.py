"""cockpit: a terminal cockpit for fine-tuning language models with TRL.

The package root imports nothing heavy: `cockpit --help` must stay fast.
"""

__version__ = "0.1.0"
