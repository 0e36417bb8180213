"""Real-browser fixtures: the app served on 127.0.0.1 by a streamlit process we start, driven by
Debian's Chromium through Playwright (see ../shared/TESTING.md for why each setting is here).

Every request the page makes to anything but 127.0.0.1 is aborted and recorded, so a test can assert that
the app (and the untrusted dataset text it shows) never reached the internet.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from browser_helpers import serve_app

# a rerun can still be drawing when a check starts (a loaded machine is slower than wait_idle's first 300 ms):
# every expect(...) waits up to 20 s for what it checks, not Playwright's default 5 s
expect.set_options(timeout=20_000)

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"


def pytest_collection_modifyitems(config, items):
    if os.path.exists(CHROMIUM):
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing: install Debian's chromium "
                                   "(apt-get install chromium) to run the browser tests")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"],
    }


@pytest.fixture(scope="session", autouse=True)
def _private_home(tmp_path_factory):
    """Chromium writes a profile under HOME: keep it out of the real home."""
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(tmp_path_factory.mktemp("home"))
    yield
    if old is not None:
        os.environ["HOME"] = old


@pytest.fixture(scope="session")
def app_url(demo_db_master, tmp_path_factory):
    """`streamlit run app.py` on 127.0.0.1 against a copy of the demo database; stopped at the end."""
    work = tmp_path_factory.mktemp("app")
    db = work / "demo.db"
    shutil.copy(demo_db_master, db)
    with serve_app(db, work) as url:
        yield url


@pytest.fixture(scope="session")
def shipped_app_url(shipped_demo_db_master, tmp_path_factory):
    """Another app, on the demo database as shipped (baseline runs, demo campaign, calibration set); started
    only when a test asks for it."""
    work = tmp_path_factory.mktemp("shipped-app")
    db = work / "demo.db"
    shutil.copy(shipped_demo_db_master, db)
    with serve_app(db, work) as url:
        yield url


@pytest.fixture
def outside_requests(page) -> list[str]:
    """Abort every request not addressed to 127.0.0.1, and remember it."""
    blocked: list[str] = []

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("websocket", lambda ws: None if urlparse(ws.url).hostname == "127.0.0.1" else blocked.append(ws.url))
    return blocked
