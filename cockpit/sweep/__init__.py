"""Sweeps: many runs of one recipe that differ in a few config keys, searched with Optuna.

- space.py: what the trials vary (`--set key=a,b,c`, ranges such as `log-uniform 1e-6..1e-4`);
- spec.py: a sweep as given (base run, params, sampler, objective, pruner), from a file and the command line;
- checks.py: the whole sweep checked before any trial starts, its defaults filled in;
- sweep_dir.py: the sweep dir's files, finding a sweep to continue, the home list's summary;
- study.py: the Optuna study in the sweep dir's journal file (the only module that imports optuna);
- claims.py: which worker runs which trial (flocks the kernel drops on kill -9);
- devices.py: which GPUs each trial slot gets;
- trial.py / worker.py: trials started, followed, pruned and told, one slot per GPU;
- reading.py / compare.py: runs and trials side by side (`cockpit compare`, the sweep screen);
- home.py: sweeps as rows of the home screen.

Nothing here imports torch or Textual; optuna only inside study.py and its callers' functions.
"""
