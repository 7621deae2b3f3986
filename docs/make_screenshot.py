"""Draws the README's pictures of the run screen on the recorded quick-test run, at both sizes:
docs/tui.svg (120x40) and docs/tui-80x24.svg (python docs/make_screenshot.py)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from cockpit.tui.app import CockpitApp
from cockpit.tui.screens.run import RunScreen

ROOT = Path(__file__).resolve().parent.parent
PICTURES = {(120, 40): ROOT / "docs" / "tui.svg", (80, 24): ROOT / "docs" / "tui-80x24.svg"}


async def draw(size: tuple[int, int], out: Path, fixture: str = "sft_run", name: str = "quick-test") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / name
        shutil.copytree(ROOT / "tests" / "fixtures" / fixture, run_dir)
        app = CockpitApp(run_dir=run_dir)
        async with app.run_test(size=size) as pilot:
            deadline = time.monotonic() + 15
            while not (isinstance(app.screen, RunScreen) and app.screen.settled) and time.monotonic() < deadline:
                await pilot.pause(0.05)
            await pilot.pause(0.3)
            app.save_screenshot(filename=out.name, path=str(out.parent))
    print(out)


async def main() -> None:
    for size, out in PICTURES.items():
        await draw(size, out)


if __name__ == "__main__":
    asyncio.run(main())
