"""The shape of the project, held by imports: `cockpit` starts fast (no heavy training or UI library
where a command does not need it), the headless path never loads Textual, the engine never imports
the cockpit, and the TUI never imports the command layer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAINING = ("torch", "transformers", "trl", "peft", "datasets")
FIXTURE_RUN = ROOT / "tests" / "fixtures" / "sft_run"


def _loaded_after(code: str, watched: tuple[str, ...]) -> list[str]:
    probe = f"import sys\n{code}\nprint('LOADED=' + ','.join(m for m in {watched!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    line = [l for l in out.splitlines() if l.startswith("LOADED=")][-1]
    return [m for m in line[len("LOADED="):].split(",") if m]


def _cli(*argv: str) -> str:
    return f"from cockpit.cli import main\ntry:\n    main({list(argv)!r})\nexcept SystemExit:\n    pass"


@pytest.mark.parametrize(
    "code, forbidden",
    [
        pytest.param("import cockpit.cli", TRAINING + ("textual",), id="import cockpit.cli"),
        pytest.param(_cli("--help"), TRAINING + ("textual",), id="cockpit --help"),
        pytest.param(_cli("run", "--help"), TRAINING + ("textual",), id="cockpit run --help"),
        pytest.param(_cli("lint", "--help"), TRAINING + ("textual",), id="cockpit lint --help"),
        pytest.param(_cli("presets", "show", "small-dataset"), TRAINING + ("textual",), id="cockpit presets show"),
        pytest.param(_cli("doctor", str(FIXTURE_RUN)), TRAINING + ("textual",), id="cockpit doctor RUN"),
        pytest.param(_cli("lint", "data/toolcall_sample.jsonl", "--no-tokens"), TRAINING + ("textual",), id="cockpit lint --no-tokens"),
        pytest.param("import cockpit.supervisor, cockpit.headless, cockpit.launch, cockpit.state, cockpit.runs, cockpit.commands.run",
                     TRAINING + ("textual",), id="the headless path"),
        pytest.param("import engine.config, engine.data.lint, engine.memory.estimate, engine.run_dir, engine.events",
                     TRAINING + ("textual",), id="the engine's light modules"),
        pytest.param("import engine.__main__, engine.train.sft, engine.train.grpo, engine.train.callbacks", ("cockpit", "textual"),
                     id="the engine never imports the cockpit"),
    ],
)
def test_imports(code, forbidden):
    assert _loaded_after(code, forbidden) == []


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


@pytest.mark.parametrize(
    "folder, forbidden",
    [("engine", "cockpit"), ("cockpit/tui", "cockpit.commands"), ("cockpit/diagnose", "cockpit.tui")],
)
def test_no_module_imports_across_the_layers(folder, forbidden):
    """Also the imports inside functions, which a runtime probe would not reach."""
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m == forbidden or m.startswith(forbidden + "."))
                 for p in (ROOT / folder).rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_module_is_over_400_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
             for folder in ("engine", "cockpit") for p in (ROOT / folder).rglob("*.py")}
    assert {k: n for k, n in sizes.items() if n > 480} == {}
