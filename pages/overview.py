"""Overview: the open database at a glance."""

import streamlit as st

from nemo_core.config import DEMO_DB
from nemo_core.demo import ensure_demo_db
from nemo_core.store import Store

store = Store.open(ensure_demo_db() if True else DEMO_DB)
st.title("Nemotron-Agentic Workbench")
counts = store.counts()
cols = st.columns(len(counts))
for col, (split, by_type) in zip(cols, counts.items()):
    col.metric(split, f"{sum(by_type.values()):,}")
st.table([{"split": s, **t} for s, t in counts.items()])
