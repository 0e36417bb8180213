"""Overview: the open database at a glance (counts, top tools, distributions, flags, ingest report)."""

from __future__ import annotations

import html

import pandas as pd
import plotly.express as px
import streamlit as st

from nemo_core.data.extract import FLAGS
from ui.charts import SPLIT_COLOURS, categorical_x, show
from ui.db import require_store, signature
from ui.formats import NONE, table, when
from ui.overview_data import overview

store = require_store()
data = overview(str(store.path.resolve()), signature(store))

st.title("Nemotron-Agentic Workbench")
st.caption("Every assistant turn of a conversation is a decision point: given the context so far and the tools "
           "offered, predict the next action (a function call or a message).")

counts = data["counts"]
total = sum(sum(v.values()) for v in counts.values())
cols = st.columns(2 + len(counts))
cols[0].metric("Decision points", f"{total:,}")
cols[1].metric("Conversations", f"{data['conversations']:,}")
for col, (split, by_type) in zip(cols[2:], counts.items()):
    col.metric(split, f"{sum(by_type.values()):,}")

if total == 0:
    st.info("This database holds no decision points yet: ingest data with `python -m nemo_core ingest FILE`.")

st.subheader("Decision points by split and action type")
split_rows = []
for split, by_type in counts.items():
    n = sum(by_type.values())
    split_rows.append({"split": split, **by_type, "total": n,
                       "function_call share": f"{by_type.get('function_call', 0) / n:.1%}" if n else NONE})
st.dataframe(table(pd.DataFrame(split_rows)), hide_index=True, width="stretch")

left, right = st.columns(2)
with left:
    st.subheader("Most expected tools")
    top = data["top_tools"]
    if top:
        # tool names are dataset text: escape them, since plotly reads <a>/<b> tags in labels
        df = pd.DataFrame([{"tool": html.escape(r["tool"]), "decision points": r["n"]} for r in top])
        fig = px.bar(df, x="decision points", y="tool", orientation="h", height=max(300, 22 * len(df)))
        fig.update_layout(yaxis={"type": "category", "categoryorder": "total ascending", "title": None},
                          margin=dict(l=0, r=0, t=10, b=0))
        show(fig, key="overview_top_tools")
        st.caption(f"{data['n_distinct_tools']:,} distinct expected tools in all.")
    else:
        st.caption("No function-call decision points.")
with right:
    st.subheader("Flags")
    flag_rows = [
        {"flag": name, **{s: data["flags"][name].get(s, 0) for s in counts}, "meaning": meaning}
        for name, meaning in FLAGS.items()
    ]
    st.dataframe(pd.DataFrame(flag_rows), hide_index=True, width="stretch")
    st.caption("Filter on any flag in Browse.")

st.subheader("Distributions")
hist_cols = st.columns(len(data["histograms"]))
for col, (column, hist) in zip(hist_cols, data["histograms"].items()):
    with col:
        if not hist["rows"]:
            st.caption(f"{hist['title']}: no data.")
            continue
        df = pd.DataFrame(hist["rows"])
        # "Name (detail)" on two lines: a third of a 1280-px window cuts a long one-line title
        name, _, detail = hist["title"].partition(" (")
        title = f"{name}<br><sup>({detail}</sup>" if detail else name
        fig = px.bar(df, x="bin", y="n", color="split", barmode="group", title=title,
                     category_orders={"bin": hist["labels"], "split": [s for s in SPLIT_COLOURS if s in counts]},
                     color_discrete_map=SPLIT_COLOURS, labels={"bin": "", "n": "decision points"})
        categorical_x(fig, hist["labels"])
        fig.update_layout(margin=dict(l=0, r=0, t=60, b=0), legend=dict(orientation="h", y=-0.25), height=360)
        show(fig, key=f"overview_hist_{column}")

st.subheader("Ingest report")
ingests = data["ingests"]
if not ingests:
    st.caption("No ingest recorded in this database.")
for ingest in ingests:
    report = ingest.get("report") or {}
    stored = report.get("decision_points_stored") or {}
    n_stored = sum(sum(v.values()) for v in stored.values()) if stored else 0
    label = (f"Ingest {ingest['id']}: {ingest['status']}, started {when(ingest['started_at'])}, "
             f"{report.get('rows_read', 0):,} rows read, {report.get('conversations_stored', 0):,} conversations and "
             f"{n_stored:,} decision points stored, {report.get('rows_rejected', 0):,} rows rejected")
    with st.expander(label, expanded=len(ingests) == 1):
        files = report.get("files") or [{"path": f} for f in ingest["files"]]
        st.dataframe(table(pd.DataFrame(files)), hide_index=True, width="stretch")
        notes = report.get("notes") or {}
        if notes:
            st.caption("Data quirks met and normalised:")
            st.dataframe(table(pd.DataFrame([{"note": k, "count": v} for k, v in sorted(notes.items())])),
                         hide_index=True, width="stretch")
        if report.get("error"):
            st.error("The ingest stopped on an error:")
            st.text(str(report["error"]))

st.subheader(f"Rejected rows ({data['n_rejected']:,})")
if data["rejected"]:
    st.dataframe(table(pd.DataFrame(data["rejected"])), hide_index=True, width="stretch")
    if data["n_rejected"] > len(data["rejected"]):
        st.caption(f"The first {len(data['rejected']):,} are shown.")
else:
    st.caption("No row was rejected.")
