"""Runs: every graded run (from `grade`, `run-model` or an upload here) with its mean reward and 95% CI,
overall, by split and by action type; one run's failure taxonomy, tool confusion and reward histogram;
uploading a predictions file; deleting a run after a confirmation.

All numbers come from `nemo_core.runs.analysis` (SQL over the stored taxonomy), cached per runs signature.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from nemo_core.base.errors import NemoError
from nemo_core.data.dp_stream import Selection
from nemo_core.grading.endpoint import EndpointConfig
from nemo_core.grading.llm_grader import LLMGrader
from nemo_core.runs.analysis import delete_run_with_analysis
from nemo_core.runs.export import TABLE_FORMATS
from nemo_core.runs.run import Run, count_predictions, get_run, run_ids, unique_run_name
from nemo_core.runs.taxonomy import CATEGORIES, LOW_MESSAGE_SCORE
from nemo_core.runs.uploads import grade_upload, validate_predictions
from ui.admin import held_back, visible_run_names
from ui.charts import categorical_x, show
from ui.db import require_store
from ui.downloads import download_section
from ui.runs_data import classified_or_offer, ensure_current, run_details, runs_signature, runs_table
from ui.safe import code_span, escape_markdown, inert_label
from ui.url_state import pick_from_url
from ui import formats as fmt

FAILURES_PAGE = "app_pages/failures.py"
COMPARE_PAGE = "app_pages/compare.py"
DELETE_KEY = "runs_confirm_delete"

store = require_store()
path = str(store.path.resolve())
st.title("Runs")
st.caption("Every graded run: a `grade` of a predictions file, a `run-model` run, a file uploaded below, or the "
           "submissions `serve-env --record` stores as they come (kind environment). "
           "Means are over graded predictions, with 95% bootstrap intervals; ungraded ones are counted apart.")


# ---- upload -----------------------------------------------------------------------------------------
def upload_section() -> None:
    with st.expander("Upload predictions (JSONL in the `grade` format)", expanded=False):
        st.caption('One object a line: `{"id": "<decision point id>", "action": {...}}`; other keys (model, '
                   "latency_ms, …) are kept. Every line is checked first; bad lines are listed with their line "
                   "numbers and skipped, the good ones are graded into a new run (messages by the keyword "
                   "grader, or by the LLM grader when a key is configured and you choose it).")
        uploaded = st.file_uploader("Predictions file", type=["jsonl", "json", "txt"], key="runs_upload")
        if uploaded is None:
            return
        check = validate_predictions(store, uploaded)  # read as a stream of lines, never copied whole
        c1, c2, c3 = st.columns(3)
        c1.metric("Lines", f"{check.n_lines:,}")
        c2.metric("Good lines", f"{check.n_good:,}")
        c3.metric("Bad lines", f"{check.n_bad:,}")
        if check.bad:
            st.dataframe(fmt.table(pd.DataFrame(check.bad)), hide_index=True, width="stretch", height=min(400, 40 + 35 * len(check.bad)))
        if not check.n_good:
            st.error("No line of this file can be graded: fix the lines listed above.")
            return
        default = unique_run_name(store, f"upload-{uploaded.name.rsplit('.', 1)[0]}")
        config = EndpointConfig.for_grader()
        with st.form("runs_upload_form"):
            name = st.text_input("Run name", value=default)
            graders = ["keyword", "llm"] if config.configured else ["keyword"]
            grader = st.radio("Message grader", graders, horizontal=True, key="runs_upload_grader",
                              help="The LLM grader is offered when an OpenAI key is configured (OPENAI_API_KEY).")
            submitted = st.form_submit_button(f"Grade the {check.n_good:,} good lines and store the run")
        if submitted:
            try:
                with st.spinner("Grading…"):
                    llm = LLMGrader(config, store) if grader == "llm" else None
                    result, _ = grade_upload(store, uploaded, run_name=name.strip(), filename=uploaded.name,
                                             grader=grader, llm=llm)
            except NemoError as exc:
                st.error(escape_markdown(exc.one_line()))
            else:
                st.session_state["runs_selected"] = result.run_name
                # the flash is Markdown: the typed name goes in escaped (never an image or a link)
                st.session_state["runs_flash"] = (f"Stored run {escape_markdown(repr(result.run_name))}: "
                                                  f"{result.n_graded:,} graded, "
                                                  f"{result.n_problems:,} lines skipped.")
                st.rerun()


upload_section()
flash = st.session_state.pop("runs_flash", None)
if flash:
    st.success(flash)

ids = run_ids(store)
if not ids:
    st.info("No runs yet. Grade a predictions file (`python -m nemo_core grade FILE --run NAME`), run a model "
            "(`python -m nemo_core run-model`), or upload a file above.")
    st.stop()
ensure_current(store, ids)
sig = runs_signature(store)
# runs of people's campaign answers (kind human) only with the admin passphrase (ui.admin)
every_run = runs_table(path, sig)
names, n_hidden = visible_run_names(store, [r["run"] for r in every_run])
table = [r for r in every_run if r["run"] in set(names)]
held_back(n_hidden, "run(s) of people's campaign answers", key="runs")
if not table:
    st.info("Every stored run holds people's campaign answers: give the admin passphrase above to see them.")
    st.stop()

# ---- the runs table -------------------------------------------------------------------------------------
st.subheader(fmt.plural(len(table), "run"))
df = pd.DataFrame(table)
# what people come for first (the mean with its CI), so it stays inside a 1280-px window; the run's
# particulars after the per-group means
if "created_at" in df.columns:
    df["created_at"] = [fmt.when(v) for v in df["created_at"]]
if "source" in df.columns:  # a model's or a baseline's run reads no file: one "—" for a missing value, not "None"
    df["source"] = [v or fmt.NONE for v in df["source"]]
shown = ["run", "mean_reward", "ci_low", "ci_high", "n", "n_graded", *sorted(c for c in df.columns if c.count(":") == 1),
         "kind", "model", "grader", "status", "created_at", "source"]
st.dataframe(fmt.table(df[[c for c in shown if c in df.columns]]), hide_index=True, width="stretch",
             column_config={"run": st.column_config.TextColumn("run", width=150),
                            "mean_reward": st.column_config.NumberColumn(
                                "mean reward", format=fmt.REWARD_FORMAT, width=95,
                                help="Mean reward over the run's graded predictions (ungraded ones are left out)"),
                            "ci_low": st.column_config.NumberColumn(
                                "95% CI low", format=fmt.REWARD_FORMAT, width=85,
                                help="Lower end of the mean reward's 95% bootstrap confidence interval"),
                            "ci_high": st.column_config.NumberColumn(
                                "95% CI high", format=fmt.REWARD_FORMAT, width=85,
                                help="Upper end of the mean reward's 95% bootstrap confidence interval"),
                            "n": st.column_config.NumberColumn("n", format="localized", width=60),
                            "n_graded": st.column_config.NumberColumn("graded", format="localized", width=65),
                            "created_at": st.column_config.TextColumn("created"),
                            **{c: st.column_config.NumberColumn(c, format=fmt.REWARD_FORMAT)
                               for c in df.columns if c.count(":") == 1}})

# ---- one run --------------------------------------------------------------------------------------------
just_made = st.session_state.pop("runs_selected", None)
if just_made in names:
    st.session_state["runs_run"] = just_made
else:  # a deleted run, or the first visit: follow the URL
    pick_from_url("runs_run", "run", names, names[0], n_hidden=n_hidden)
selected = st.selectbox("Run", names, key="runs_run")
if st.query_params.get("run") != selected:
    st.query_params["run"] = selected
run = get_run(store, selected)


def show_details(run: Run) -> int:
    """The run's summary, taxonomy, confusion and histogram; returns its number of predictions."""
    summary = details = run_details(path, sig, run.id)
    overall = summary["overall"]

    c1, c2, c3, c4 = st.columns([1, 1, 1.8, 1])  # the CI needs room: "[0.357, 0.479]"
    c1.metric("Predictions", f"{summary['n']:,}")
    c2.metric("Mean reward", fmt.reward(overall["mean"]))
    c3.metric("95% CI", fmt.ci(overall["ci_low"], overall["ci_high"]),
              help="95% bootstrap interval of the mean reward")
    c4.metric("Not graded", f"{overall['n_ungraded']:,}")
    st.caption(f"Kind {code_span(run.kind)} · model {code_span(run.model or fmt.NONE)} · grader {code_span(run.grader)}"
               f" · source {code_span(run.source_file or fmt.NONE)} · created {fmt.when(run.created_at)} · status {run.status}"
               + (f" · {run.n_problems:,} input lines could not be graded" if run.n_problems else ""))
    groups = []
    for title, by in (("split", summary["by_split"]), ("action type", summary["by_action_type"])):
        for name, ci in by.items():
            groups.append({"by": title, "group": name, "n": ci["n"], "mean reward": ci["mean"], "95% CI low": ci["ci_low"],
                           "95% CI high": ci["ci_high"], "not graded": ci["n_ungraded"]})
    st.dataframe(fmt.table(pd.DataFrame(groups)), hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(c, format=fmt.REWARD_FORMAT)
                                for c in ("mean reward", "95% CI low", "95% CI high")})
    l1, l2 = st.columns(2)
    l1.page_link(FAILURES_PAGE, label="Open this run's failures", icon="🩺", query_params={"run": run.name})
    l2.page_link(COMPARE_PAGE, label="Compare with another run", icon="⚖️", query_params={"a": run.name})

    st.subheader("Failure taxonomy")
    tax = summary["taxonomy"]
    total = sum(tax.values()) or 1
    tax_df = pd.DataFrame([{"category": c, "predictions": n, "share": n / total, "meaning": CATEGORIES[c]}
                           for c, n in tax.items()])
    left, right = st.columns([3, 2])
    with left:
        # plain lists (not numpy arrays) keep the figure JSON readable, which the AppTest checks
        order = list(reversed(list(tax)))
        colours = {"correct": "#2ca02c", "ungradeable_reference": "#999999"}
        fig = go.Figure(go.Bar(x=[int(tax[c]) for c in order], y=order, orientation="h", text=[f"{tax[c]:,}" for c in order],
                               marker_color=[colours.get(c, "#d62728") for c in order]))
        fig.update_layout(height=360, margin=dict(l=0, r=0, t=10, b=0), xaxis_title="predictions")
        fig.update_traces(textposition="auto", cliponaxis=False)
        show(fig, key="taxonomy_chart")
    with right:
        st.dataframe(tax_df, hide_index=True, width="stretch",
                     column_config={"share": st.column_config.NumberColumn("share", format="percent")})
        st.caption(f"A message scoring below {LOW_MESSAGE_SCORE} counts as a low message score; see "
                   "`nemo_core/runs/taxonomy.py` for the order in which categories are decided.")
    if details["sub_kinds"]:
        st.caption("Sub-kinds: " + "; ".join(f"{r['category']} / {r['sub_kind']}: {r['n']:,}" for r in details["sub_kinds"]))
    keys = details["argument_errors"]
    if any(keys.values()):
        st.caption("Argument errors of the right tool, by key: " + ", ".join(
            f"{k.replace('_', ' ')} {v:,}" for k, v in keys.items()))

    left, right = st.columns(2)
    with left:
        st.subheader("Expected vs predicted tool")
        conf = details["confusion"][:20]
        if conf:
            st.dataframe(fmt.table(pd.DataFrame(conf)), hide_index=True, width="stretch")
            st.caption("The most frequent wrong or hallucinated tool choices (top 20).")
        else:
            st.caption("No wrong or hallucinated tool in this run.")
    with right:
        st.subheader("Reward histogram")
        hist = pd.DataFrame(details["histogram"])
        hist["bin"] = [f"{lo:.1f}–{hi:.1f}" for lo, hi in zip(hist["low"], hist["high"])]
        fig = go.Figure(go.Bar(x=list(hist["bin"]), y=[int(n) for n in hist["n"]]))
        fig.update_layout(height=320, xaxis_title="reward", yaxis_title="predictions")
        fig.update_layout(margin=dict(l=0, r=0, t=10, b=0))
        categorical_x(fig, list(hist["bin"]))
        show(fig, key="reward_histogram")
    return summary["n"]


if classified_or_offer(store, run, key="runs_classify"):
    n_predictions = show_details(run)
else:
    n_predictions = count_predictions(store, run.id)

with st.expander("Download this run's predictions", key="runs_download_open"):
    st.caption("Each prediction beside its decision point: the action, reward, name and argument match, grader, "
               "reason, error, failure category and the whole breakdown.")
    download_section(path, Selection(run_id=run.id), n_predictions, formats=TABLE_FORMATS,
                     stem="run-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in run.name)[:80],
                     key="runs_download", what="predictions", run_name=run.name)

# ---- delete -------------------------------------------------------------------------------------------
st.subheader("Delete this run")
if st.session_state.get(DELETE_KEY) != run.id:
    if st.button(f"Delete run {inert_label(run.name)}…", key="runs_delete"):
        st.session_state[DELETE_KEY] = run.id
        st.rerun()
else:
    st.warning(f"Delete run {code_span(run.name)} and its {n_predictions:,} predictions? This cannot be undone.")
    d1, d2 = st.columns(2)
    if d1.button("Yes, delete it", type="primary", key="runs_delete_confirm"):
        with st.spinner(f"Deleting {n_predictions:,} predictions…"):
            delete_run_with_analysis(store, run.id)
        st.session_state.pop(DELETE_KEY, None)
        st.session_state["runs_flash"] = f"Deleted run {escape_markdown(repr(run.name))}."
        del st.query_params["run"]
        st.rerun()
    if d2.button("Cancel", key="runs_delete_cancel"):
        st.session_state.pop(DELETE_KEY, None)
        st.rerun()
