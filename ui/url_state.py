"""Widgets whose value lives in the URL: read once on arrival (a shared link, a reload), written back on
every change, and an unknown value in the link said out loud instead of silently replaced."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from ui.safe import escape_markdown


def pick_from_url(key: str, param: str, choices: Sequence[str], default: str, what: str = "run",
                  n_hidden: int = 0) -> None:
    """Before drawing the selectbox `key`: when its state is missing or stale, take `param` from the URL if
    it is one of `choices`, else `default`; a URL value that is not a choice gets a warning saying so and
    what is shown instead (`/runs?run=nope` showed another run without a word). The value asked for is not
    repeated: it may be the name of a run the admin passphrase hides (people's names are in them)."""
    if st.session_state.get(key) in choices:
        return
    wanted = st.query_params.get(param)
    if wanted and wanted not in choices:
        hidden = " or hidden until the admin passphrase is given" if n_hidden else ""
        st.warning(f"The {what} this link names (parameter `{param}`) is not here{hidden}; "
                   f"showing “{escape_markdown(default)}” instead.")
    st.session_state[key] = wanted if wanted in choices else default


def write_to_url(params: dict[str, object]) -> None:
    """Put `params` into the URL where they differ (None or "" removes the parameter), one write in all."""
    current = st.query_params.to_dict()
    wanted = {k: ("" if v is None else str(v)) for k, v in params.items()}
    new = {k: v for k, v in current.items() if k not in wanted}
    new.update({k: v for k, v in wanted.items() if v != ""})
    if new != current:
        st.query_params.from_dict(new)
