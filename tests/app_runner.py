"""One page of the app in Streamlit's AppTest, run through app.py (so its navigation and sidebar run too) with URL
query parameters, failing on any exception the page raised: the one way the tests open a page by its file."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_app_page(page_file: str, query: dict[str, str] | None = None, *, timeout: float = 30,
                 session: dict | None = None, secrets: dict[str, str] | None = None):
    """The AppTest after running `page_file` (e.g. "app_pages/browse.py") with `query` in the URL, `session` in
    its session state and `secrets` as st.secrets; the database is whatever NEMO_DB says."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=timeout)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    for key, value in (session or {}).items():
        at.session_state[key] = value
    for key, value in (secrets or {}).items():
        at.secrets[key] = value
    at.switch_page(page_file).run()
    assert not at.exception, [e.value for e in at.exception]
    return at
