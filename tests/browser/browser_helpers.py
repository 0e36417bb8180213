"""Helpers for the browser tests (serving the app, waiting for it to be idle, screenshots)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"][data-test-connection-state="CONNECTED"]'
SCREENSHOTS = REPO / "artifacts" / "screenshots"


def wait_idle(page, timeout: float = 20_000) -> None:
    """Wait until the script has finished and the app is connected (a rerun can start right after a
    click, so wait a moment for it to begin first)."""
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, timeout=timeout)


def choose(page, selectbox, option, attempts: int = 5, timeout: float = 20_000) -> None:
    """Pick `option` (a name or a pattern) in the selectbox whose text matches `selectbox` (a string or a
    pattern), then wait for the rerun. A rerun still drawing the page (or a component taking focus) can close
    a dropdown opened too early, so open it again until the option shows; fail saying which one never did."""
    for _attempt in range(attempts):
        page.get_by_test_id("stSelectbox").filter(has_text=selectbox).click()
        try:
            page.get_by_role("option", name=option).click(timeout=5_000)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: the dropdown closed or was redrawn
            wait_idle(page, timeout=timeout)
    else:
        raise AssertionError(f"the {selectbox!r} dropdown never offered {option!r}")
    wait_idle(page, timeout=timeout)


def type_in(page, field, text: str, timeout: float = 20_000) -> None:
    """Fill `field` (a locator) and leave it with Tab, then wait for the rerun. Streamlit sends a text or number
    input's value when the field loses focus; filled and then left by a click on a button, the value's rerun and
    the click's can overlap. Tab sends the value on its own first. Inside a form Tab only moves the focus (the
    CI failure that led here was in a form: see `upload_predictions` for its likelier cause)."""
    field.fill(text)
    field.press("Tab")
    wait_idle(page, timeout=timeout)


def upload_predictions(page, path, timeout: float = 30_000) -> None:
    """On the Runs page: open "Upload predictions", choose `path`, and wait until the page has read the file
    (its line counts show) and is idle. The upload's rerun can start later than `wait_idle`'s first look on a
    loaded machine; a form filled and submitted before that rerun ends can lose its submit."""
    from playwright.sync_api import expect

    page.get_by_text("Upload predictions").click()
    page.locator('input[type="file"]').set_input_files(str(path))
    expect(page.get_by_test_id("stMetricLabel").filter(has_text="Good lines")).to_be_visible(timeout=timeout)
    wait_idle(page, timeout=timeout)


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(db: Path, work: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """`streamlit run app.py` on 127.0.0.1 against `db` (HOME in `work`); yields its URL, and stops only
    the process it started."""
    env = {**os.environ, "NEMO_DB": str(db), "HOME": str(work), **(extra_env or {})}
    port = free_port()
    log = open(work / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not start; log:\n{(work / 'streamlit.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
