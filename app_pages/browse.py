"""Browse: filter, sort and page through every decision point; the whole state lives in the URL.

Only one page of rows (50) is ever read (`store.page`), and the total for a filter is one cached
`store.count`; both come from the store's Browse index (`nemo_core/data/browse_index.py`), so every filter, sort
and page, the last one included, takes milliseconds at 1.2 M decision points.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from nemo_core.base.config import ACTION_TYPES, SPLITS
from nemo_core.data.dp_stream import Selection
from nemo_core.data.extract import FLAGS
from nemo_core.data.filters import SORTS, BadFilter, DecisionPointFilter
from nemo_core.runs.export import FORMATS
from ui.db import require_store, signature
from ui.decision_links import DECISION_PAGE
from ui.downloads import download_section
from ui.formats import plural
from ui.listing import PAGE_SIZE, ListState, expected_label, loosened, n_pages, similar_tools
from ui.overview_data import filtered_count, tool_options
from ui.safe import escape_markdown, inert_label

ANY = "(any)"

store = require_store()
path = str(store.path.resolve())
sig = signature(store)
st.title("Browse decision points")

try:
    state = ListState.from_query(st.query_params.to_dict())
except BadFilter as exc:
    st.error("The filter in this link is not valid: " + escape_markdown(exc.one_line()))
    if st.button("Clear the filter", key="clear_bad_filter"):
        st.query_params.clear()
        st.rerun()
    st.stop()

# The widgets mirror the URL: whenever the URL's filter differs from what the widgets last showed
# (first visit, a shared link, Clear), copy it into the widgets' state before drawing them. Also when
# the widgets' state is gone: Streamlit drops a widget's state once a run does not draw it, so after a
# visit to another page ("Back to the filtered list", the browser's Back) the URL is unchanged but the
# widgets would show their defaults, and Apply would then drop the filter.
WIDGET_KEYS = ("f_split", "f_action_type", "f_tool", "f_text", "f_flags", "f_exclude_flags", "f_min_tools",
               "f_max_tools", "f_min_turn", "f_max_turn", "f_sort", "f_desc")
url_key = tuple(sorted(state.to_query(with_page=False).items()))
if st.session_state.get("_browse_url") != url_key or any(k not in st.session_state for k in WIDGET_KEYS):
    f = state.filter
    st.session_state.update({
        "f_split": f.split or ANY,
        "f_action_type": f.action_type or ANY,
        "f_tool": f.tool or ANY,
        "f_text": f.text or "",
        "f_flags": list(f.flags),
        "f_exclude_flags": list(f.exclude_flags),
        "f_min_tools": f.min_tools,
        "f_max_tools": f.max_tools,
        "f_min_turn": f.min_turn,
        "f_max_turn": f.max_turn,
        "f_sort": state.sort,
        "f_desc": state.descending,
    })
    st.session_state["_browse_url"] = url_key

tools, all_tools_listed = tool_options(path, sig)
tool_choices = [ANY, *tools]
if state.filter.tool and state.filter.tool not in tools:
    tool_choices.append(state.filter.tool)

with st.form("browse_filters"):
    c1, c2, c3, c4 = st.columns([1.2, 1.2, 2, 2])
    c1.selectbox("Split", [ANY, *SPLITS], key="f_split")
    c2.selectbox("Action type", [ANY, *ACTION_TYPES], key="f_action_type")
    c3.selectbox("Expected tool (type to search)", tool_choices, key="f_tool",
                 accept_new_options=not all_tools_listed,
                 help=None if all_tools_listed else f"The {len(tools):,} most expected tools are listed; type "
                 "any other name exactly.",
                 format_func=lambda t: t if t == ANY or t not in tools else f"{t}  ·  {tools[t]:,}")
    c4.text_input("Full-text search (all words must occur in the conversation)", key="f_text")
    c1, c2 = st.columns(2)
    c1.multiselect("Has all of these flags", list(FLAGS), key="f_flags")
    c2.multiselect("Has none of these flags", list(FLAGS), key="f_exclude_flags")
    c1, c2, c3, c4, c5, c6 = st.columns(6)
    c1.number_input("Tools offered ≥", min_value=0, step=1, value=None, key="f_min_tools")
    c2.number_input("Tools offered ≤", min_value=0, step=1, value=None, key="f_max_tools")
    c3.number_input("Turn index ≥", min_value=0, step=1, value=None, key="f_min_turn")
    c4.number_input("Turn index ≤", min_value=0, step=1, value=None, key="f_max_turn")
    c5.selectbox("Sort by", list(SORTS), key="f_sort")
    c6.toggle("Descending", key="f_desc")
    applied = st.form_submit_button("Apply filters", type="primary")

if applied:
    ss = st.session_state

    def num(key: str) -> int | None:
        return None if ss[key] is None else int(ss[key])

    new_state = ListState(
        DecisionPointFilter(
            split=None if ss.f_split == ANY else ss.f_split,
            action_type=None if ss.f_action_type == ANY else ss.f_action_type,
            tool=None if ss.f_tool in (ANY, None, "") else str(ss.f_tool).strip(),
            text=(ss.f_text or "").strip() or None,
            flags=tuple(ss.f_flags),
            exclude_flags=tuple(ss.f_exclude_flags),
            min_tools=num("f_min_tools"),
            max_tools=num("f_max_tools"),
            min_turn=num("f_min_turn"),
            max_turn=num("f_max_turn"),
        ),
        sort=ss.f_sort,
        descending=bool(ss.f_desc),
        page=1,
    )
    st.query_params.from_dict(new_state.to_query())
    st.session_state["_browse_url"] = tuple(sorted(new_state.to_query(with_page=False).items()))
    state = new_state

if state.is_filtered() and st.button("Clear filters", key="clear_filters"):
    st.query_params.clear()
    st.rerun()

with st.spinner("Indexing the decision points for Browse (once per ingest)…", show_time=True):
    store.browse_index()  # at once when current; built (about 2 s at 1.2 M) only after an ingest without it
total = filtered_count(path, sig, tuple(sorted(state.filter.to_query().items())))
last_page = n_pages(total)
if state.page > last_page:
    st.warning(f"Page {state.page} is past the end of this list ({last_page} pages); showing the last page.")
    state.page = last_page

rows = store.page(state.filter, sort=state.sort, descending=state.descending, offset=state.offset, limit=PAGE_SIZE)
first = state.offset + 1 if rows else 0
st.caption(f"{plural(total, 'decision point')} match"
           + (f" · showing {first:,}–{state.offset + len(rows):,} · page {state.page:,} of {last_page:,}" if rows else ""))

if not rows:
    st.info("No decision point matches this filter.")
    if state.filter.tool and state.filter.tool not in tools:
        close = similar_tools(state.filter.tool, tools)
        st.caption(f"No decision point expects a tool named “{escape_markdown(state.filter.tool)}”"
                   + ("; tools whose names contain it:" if close else "."))
        for i, name in enumerate(close):
            if st.button(f"Use {inert_label(name)} ({tools[name]:,})", key=f"use_tool_{i}"):
                st.query_params.from_dict({**state.to_query(with_page=False), "tool": name})
                st.rerun()
    parts = loosened(state.filter)
    if parts:
        st.caption("Loosen one part of the filter (matches without it): " + " · ".join(
            f"{escape_markdown(label)}: {filtered_count(path, sig, tuple(sorted(f.to_query().items()))):,}"
            for label, f in parts))
else:
    table = pd.DataFrame([
        {
            "id": r["id"],
            "action type": r["action_type"],
            "expected": expected_label(r),
            "context chars": r["context_chars"],
            "tools": r["n_tools"],
            "turn": r["turn_index"],
            "flags": ", ".join(r["flags"]),
        }
        for r in rows
    ])
    nonce = st.session_state.setdefault("_browse_table_nonce", 0)
    event = st.dataframe(
        table, key=f"browse_table_{nonce}", on_select="rerun", selection_mode="single-row", hide_index=True,
        width="stretch", height=min(35 * (len(rows) + 1) + 3, 700),
        # widths that keep every column inside the 820 px a 1280-px window leaves (the id and the expected
        # action cut short, in full on hover and on the decision point's page); the split is the id's first part
        column_config={
            "id": st.column_config.TextColumn("id", width=225, help="split/conversation uuid/message index"),
            "action type": st.column_config.TextColumn("action type", width=100),
            "expected": st.column_config.TextColumn("expected", width=180,
                                                    help="The expected tool, or the message's first words"),
            "context chars": st.column_config.NumberColumn("context chars", width=90, format="localized"),
            "tools": st.column_config.NumberColumn("tools", width=50),
            "turn": st.column_config.NumberColumn("turn", width=45),
            "flags": st.column_config.TextColumn("flags", width=85),
        },
    )
    selected = event.selection.rows if event is not None else []
    ids = [r["id"] for r in rows]
    if selected:
        st.session_state["browse_open_choice"] = ids[selected[0]]
        st.session_state["_browse_table_nonce"] = nonce + 1  # a fresh table (no selection) on return
    elif st.session_state.get("browse_open_choice") not in ids:
        st.session_state.pop("browse_open_choice", None)

    # Opening is a link, not st.switch_page: switch_page first writes the new query string onto this page's
    # URL (a history entry `browse?id=...`) and then changes page (a second one), so the browser's Back
    # landed on a Browse page that was not the one left. A link makes one entry.
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    chosen = c1.selectbox("Open a decision point from this page (or tick a row above)", ids,
                          key="browse_open_choice")
    with c2.container(key="browse_open_link"):
        st.page_link(DECISION_PAGE, label="Open decision point", icon="🧩", width="stretch",
                     query_params={"id": chosen, **state.to_query()})
    if selected:
        # A ticked row opens at once: follow the link above (a constant script, no dataset text in it).
        st.html("<script>document.querySelector('.st-key-browse_open_link a').click();</script>",
                unsafe_allow_javascript=True)

c1, c2, c3, c4 = st.columns(4)


def go_to(page: int) -> None:
    st.query_params.from_dict({**state.to_query(with_page=False), **({"page": str(page)} if page > 1 else {})})
    st.rerun()


if c1.button("⏮ First page", disabled=state.page <= 1, key="page_first", width="stretch"):
    go_to(1)
if c2.button("◀ Previous page", disabled=state.page <= 1, key="page_prev", width="stretch"):
    go_to(state.page - 1)
if c3.button("Next page ▶", disabled=state.page >= last_page, key="page_next", width="stretch"):
    go_to(state.page + 1)
if c4.button("Last page ⏭", disabled=state.page >= last_page, key="page_last", width="stretch"):
    go_to(last_page)
if last_page > 1:  # any page, the deepest included, is one index lookup (no OFFSET walk)
    with st.form("browse_go_to", border=False):
        c1, c2, _ = st.columns([1, 1, 2], vertical_alignment="bottom")
        wanted = c1.number_input(f"Go to page (1–{last_page:,})", min_value=1, max_value=last_page, step=1,
                                 value=state.page)  # no key: it shows the current page after every move
        if c2.form_submit_button("Go", width="stretch"):
            go_to(int(wanted))

if total:
    with st.expander("Download this view", key="browse_download_open"):
        download_section(path, Selection(state.filter), total, formats=FORMATS, stem="decision-points",
                         key="browse_download")
