"""Failures: one run's predictions by failure category, split, expected tool and reward range, lowest
reward first, a page at a time. Each row opens the decision point page with the prediction beside the
expected action and its breakdown (`decision_point?id=...&run=...`).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from nemo_core.base.config import SPLITS
from nemo_core.runs.run import get_run, run_names
from nemo_core.runs.taxonomy import CATEGORIES, FAILURE_CATEGORIES
from ui.admin import held_back, visible_run_names
from ui.db import require_store
from ui.decision_links import decision_point_url, open_one
from ui.failure_filters import ALL, FailureFilters
from ui.formats import plural, table
from ui.runs_data import classified_or_offer, ensure_current, failure_count, failure_page, runs_signature, tool_names
from ui.safe import escape_markdown
from ui.url_state import pick_from_url, write_to_url

PAGE_SIZE = 50

store = require_store()
path = str(store.path.resolve())
st.title("Failures")

names, n_hidden = visible_run_names(store, run_names(store))
held_back(n_hidden, "run(s) of people's campaign answers", key="failures")
if not names:
    st.info("No runs yet: grade a predictions file, run a model, or upload predictions on the Runs page."
            if not n_hidden else "The only runs hold people's campaign answers: give the admin passphrase above.")
    st.page_link("app_pages/runs.py", label="Runs", icon="🏁")
    st.stop()

pick_from_url("failures_run", "run", names, names[0], n_hidden=n_hidden)
run_name = st.selectbox("Run", names, key="failures_run")
run = get_run(store, run_name)
if not classified_or_offer(store, run, key="failures_classify"):
    write_to_url({"run": run_name})
    st.stop()
ensure_current(store, [run.id])
sig = runs_signature(store)
tools = tool_names(path, sig, run.id)

# The filters live in the URL too (a reload or a shared link keeps them): copy the URL into the widgets when
# it is not what this page last wrote, or when their state is gone (another page was visited meanwhile).
FILTER_KEYS = ("failures_categories", "failures_split", "failures_tool", "failures_reward", "failures_sort",
               "failures_page")
url_now = tuple(sorted(st.query_params.to_dict().items()))
new_link = st.session_state.get("_failures_url") != url_now and st.query_params.get("run") in (None, run_name)
if new_link or any(k not in st.session_state for k in FILTER_KEYS):
    try:
        wanted = FailureFilters.from_query(st.query_params.to_dict(), tools)
    except ValueError as exc:
        st.warning(f"This link's filter was not used: {escape_markdown(str(exc))}")
        wanted = FailureFilters()
    st.session_state.update(wanted.widget_state())

c1, c2, c3, c4 = st.columns([3, 1, 2, 2])
categories = c1.multiselect("Categories", list(CATEGORIES), key="failures_categories",
                            help="Empty means every failure category (all but correct and not graded).")
split = c2.selectbox("Split", [ALL, *SPLITS], key="failures_split")
tool = c3.selectbox("Expected tool", [ALL, *tools], key="failures_tool")
low, high = c4.slider("Reward range", 0.0, 1.0, step=0.05, key="failures_reward")
sort = st.radio("Order", ["reward", "-reward"], horizontal=True, key="failures_sort",
                format_func=lambda s: "lowest reward first" if s == "reward" else "highest reward first")

flt = (tuple(categories), None if split == ALL else split, None if tool == ALL else tool,
       None if low <= 0.0 else low, None if high >= 1.0 else high)
total = failure_count(path, sig, run.id, flt)
n_pages = max(1, -(-total // PAGE_SIZE))
if not 1 <= int(st.session_state.get("failures_page", 1)) <= n_pages:  # the filters changed under it
    st.session_state["failures_page"] = 1
p1, p2 = st.columns([1, 4])
page_no = int(p1.number_input("Page", min_value=1, max_value=n_pages, step=1, key="failures_page"))
shown = FailureFilters(tuple(categories), None if split == ALL else split, None if tool == ALL else tool, low, high,
                       sort, page_no)
write_to_url({"run": run_name, **shown.to_query()})
st.session_state["_failures_url"] = tuple(sorted(st.query_params.to_dict().items()))
page = failure_page(path, sig, run.id, flt, (page_no - 1) * PAGE_SIZE, PAGE_SIZE, sort)
p2.caption(f"{plural(total, 'prediction')} match · page {page_no:,} of {n_pages:,}")
if low > 0.0 or high < 1.0:
    p2.caption("A reward range leaves out the predictions that were not graded.")

rows = page["rows"]
if not rows:
    st.info("No prediction matches these filters.")
    st.stop()
this_run = {"run": run.name}

df = pd.DataFrame([{
    "open": decision_point_url(r["dp_id"], this_run), "decision point": r["dp_id"], "category": r["category"],
    "sub-kind": r["sub_kind"],
    "reward": r["reward"], "split": r["split"], "action type": r["action_type"], "expected tool": r["expected_tool"],
    "predicted tool": r["predicted_tool"], "missing": r["n_missing"], "extra": r["n_extra"],
    "wrong value": r["n_wrong_value"], "wrong type": r["n_wrong_type"], "reason": r["reason"] or r["error"],
} for r in rows])
st.dataframe(table(df), hide_index=True, width="stretch", key="failures_table",
             column_config={"open": st.column_config.LinkColumn("open", display_text="open ↗"),
                            "reward": st.column_config.NumberColumn("reward", format="%.3f")})

open_one([r["dp_id"] for r in rows], this_run, choose="Open a decision point with this run's prediction",
         label="Open the prediction beside the expected action", key="failures_open")
