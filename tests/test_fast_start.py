"""`cockpit` starts fast: the CLI imports none of the heavy training or UI libraries."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "textual")


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint('LOADED=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    line = [l for l in out.splitlines() if l.startswith("LOADED=")][-1]
    return [m for m in line[len("LOADED="):].split(",") if m]


def test_cli_module_imports_nothing_heavy():
    assert _loaded_after("import cockpit.cli") == []


def test_help_imports_nothing_heavy():
    code = "from cockpit.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert _loaded_after(code) == []


def test_run_help_and_presets_import_nothing_heavy():
    code = (
        "from cockpit.cli import main\n"
        "for argv in (['run', '--help'], ['presets', 'list'], ['presets', 'show', 'small-dataset']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass"
    )
    assert _loaded_after(code) == []
