"""Helpers for the browser tests (waiting for the app to be idle, screenshots)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"][data-test-connection-state="CONNECTED"]'
SCREENSHOTS = REPO / "artifacts" / "screenshots"


def wait_idle(page, timeout: float = 20_000) -> None:
    """Wait until the script has finished and the app is connected (a rerun can start right after a
    click, so wait a moment for it to begin first)."""
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, timeout=timeout)


def screenshot(page, name: str) -> Path:
    """The whole page: Streamlit scrolls inside its main section, so grow the viewport to its height
    (up to 6000 px) for the shot, then put it back."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    size = page.viewport_size or {"width": 1280, "height": 720}
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], [data-testid=stMainBlockContainer]')]"
        ".map(e => e.scrollHeight), document.body.scrollHeight)"
    )
    page.set_viewport_size({"width": 1400, "height": min(max(int(height) + 100, 720), 6000)})
    page.evaluate("() => document.querySelectorAll('[data-testid=stMain]').forEach(e => e.scrollTo(0, 0))")
    page.wait_for_timeout(500)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    return path
