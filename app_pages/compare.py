"""Compare two runs on the decision points both hold: wins, losses and ties, the mean difference with a
paired bootstrap 95% CI, and the decision points where they differ most (each opens both predictions
on the decision point page, beside the expected action: `decision_point?id=...&run=A&vs=B`).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from nemo_core.runs.run import get_run, run_names
from ui.admin import held_back, visible_run_names
from ui.db import require_store
from ui.runs_data import classified_or_offer, comparison, ensure_current, runs_signature
from ui.url_state import pick_from_url
from ui import formats as fmt
from ui.charts import difference_plot, show
from ui.decision_links import decision_point_url, open_one

store = require_store()
path = str(store.path.resolve())
st.title("Compare two runs")

names, n_hidden = visible_run_names(store, run_names(store))
held_back(n_hidden, "run(s) of people's campaign answers", key="compare")
if len(names) < 2:
    st.info("Comparing needs at least two runs: grade or upload another predictions file on the Runs page."
            + (" (Runs of people's campaign answers need the admin passphrase.)" if n_hidden else ""))
    st.page_link("app_pages/runs.py", label="Runs", icon="🏁")
    st.stop()

for key, param, default in (("compare_a", "a", names[0]), ("compare_b", "b", names[1])):
    pick_from_url(key, param, names, default, n_hidden=n_hidden)
c1, c2 = st.columns(2)
name_a = c1.selectbox("Run A", names, key="compare_a")
name_b = c2.selectbox("Run B", names, key="compare_b")
for param, value in (("a", name_a), ("b", name_b)):
    if st.query_params.get(param) != value:
        st.query_params[param] = value
if name_a == name_b:
    st.warning("Choose two different runs.")
    st.stop()

run_a, run_b = get_run(store, name_a), get_run(store, name_b)
ready = [classified_or_offer(store, r, key=f"compare_classify_{r.id}") for r in (run_a, run_b)]
if not all(ready):
    st.stop()
ensure_current(store, [run_a.id, run_b.id])
with st.spinner("Comparing…"):
    c = comparison(path, runs_signature(store), run_a.id, run_b.id)

if c["n_shared"] == 0:
    st.info("These two runs share no decision point.")
    st.stop()
m = st.columns(5)
m[0].metric("Shared decision points", f"{c['n_shared']:,}")
m[1].metric("A wins", f"{c['wins']:,}")
m[2].metric("B wins", f"{c['losses']:,}")
m[3].metric("Ties", f"{c['ties']:,}")
diff = c["mean_difference"]
m[4].metric("Mean A − B", fmt.reward(diff["mean"], signed=True))
if diff["mean"] is not None:
    verdict = ("A is better" if diff["ci_low"] > 0 else "B is better" if diff["ci_high"] < 0
               else "no clear difference")
    st.caption(f"95% paired bootstrap CI of the mean difference: {fmt.ci(diff['ci_low'], diff['ci_high'], signed=True)} "
               f"over {fmt.plural(diff['n'], 'pair')} graded in both ({verdict}). Mean reward on these pairs: "
               f"A {fmt.reward(c['mean_a'])}, B {fmt.reward(c['mean_b'])}.")
    show(difference_plot(c), key="compare_plot")
st.caption(f"Only in A: {c['n_only_a']:,} · only in B: {c['n_only_b']:,} · shared but not graded in both: "
           f"{c['n_ungraded']:,}.")

st.subheader("Where they differ most")
rows = c["biggest"]
if not rows:
    st.caption("The two runs score every shared decision point the same.")
    st.stop()
both = {"run": name_a, "vs": name_b}

# A − B and both rewards first: they are what the table is for and must fit a 1280-px window
df = pd.DataFrame([{"open": decision_point_url(r["dp_id"], both), "A − B": r["difference"], "reward A": r["reward_a"],
                    "reward B": r["reward_b"], "decision point": r["dp_id"], "action type": r["action_type"],
                    "reason A": r["reason_a"], "reason B": r["reason_b"]} for r in rows])
st.dataframe(fmt.table(df), hide_index=True, width="stretch", key="compare_table",
             column_config={"open": st.column_config.LinkColumn("open", display_text="both ↗", width=70),
                            "A − B": st.column_config.NumberColumn(
                                format="%+.3f", width=70, help="Run A's reward minus run B's at this decision point"),
                            "reward A": st.column_config.NumberColumn(format=fmt.REWARD_FORMAT, width=80),
                            "reward B": st.column_config.NumberColumn(format=fmt.REWARD_FORMAT, width=80),
                            "decision point": st.column_config.TextColumn(width=230),
                            "action type": st.column_config.TextColumn(width=100)})
open_one([r["dp_id"] for r in rows], both, choose="Open a decision point with both predictions",
         label="Open both predictions beside the expected action", key="compare_open")
