"""Draws docs/tui.svg: the run screen on the recorded quick-test run (python docs/make_screenshot.py)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from cockpit.tui.app import CockpitApp
from cockpit.tui.screens.run import RunScreen

ROOT = Path(__file__).resolve().parent.parent


async def main(fixture: str = "sft_run", name: str = "quick-test", out: Path = ROOT / "docs" / "tui.svg") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / name
        shutil.copytree(ROOT / "tests" / "fixtures" / fixture, run_dir)
        app = CockpitApp(run_dir=run_dir)
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = time.monotonic() + 15
            while not (isinstance(app.screen, RunScreen) and app.screen.settled) and time.monotonic() < deadline:
                await pilot.pause(0.05)
            await pilot.pause()
            app.save_screenshot(filename=out.name, path=str(out.parent))
    print(out)


if __name__ == "__main__":
    asyncio.run(main())
