"""`cockpit export`: a trained model out of its run dir: the adapter or model as it is, or the adapter
merged into its base model (a plain transformers model), optionally as a GGUF file too.

- plan.py: what to export and where, checked without torch (the cockpit checks it before it starts us);
- __main__.py: `python -m engine.export`, the merge and the check that it changed nothing;
- gguf.py: the GGUF file.
"""
