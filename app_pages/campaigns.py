"""Campaigns (admin): create a human baseline campaign, follow its progress, read its results, export.

Admin mode is protected by the admin passphrase when one is configured (env `NEMO_ADMIN_PASSWORD`, else the
`admin_password` Streamlit secret; the check is `ui.admin`'s, the same on every page that shows campaign
answers or annotator names); with none configured the page is open.
Annotators work on the Annotate page and never need this one. All the computing is in
`nemo_core.people.campaigns` and `nemo_core.people.baseline`.
"""

from __future__ import annotations

import html
import tempfile

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from nemo_core.people import campaigns as C
from nemo_core.people.baseline import campaign_results, compare_with_run, export_rows, save_as_run, to_csv, to_jsonl
from nemo_core.base.config import ACTION_TYPES, SPLITS
from nemo_core.base.errors import NemoError
from nemo_core.data.extract import FLAGS
from nemo_core.data.filters import DecisionPointFilter
from nemo_core.grading.llm_grader import LLMGrader
from nemo_core.runs.run import list_runs
from ui.charts import show
from ui.admin import admin_unlocked, unlock_form
from ui.db import get_store, require_store, signature
from ui.formats import plural
from ui.safe import escape_markdown, inert_label
from ui.secrets import grader_config

DECISION_PAGE = "app_pages/decision_point.py"
ANNOTATE_PAGE = "app_pages/annotate.py"
ANY = "(any)"


store = require_store()
st.title("Campaigns")

# ---- admin gate ----------------------------------------------------------------------------------------
if not admin_unlocked():
    st.info("Admin mode: creating campaigns and seeing results needs the admin passphrase. "
            "Annotators go to the Annotate page.")
    unlock_form("campaigns")
    st.page_link(ANNOTATE_PAGE, label="Go to the Annotate page", icon="✍️")
    st.stop()


@st.cache_data(show_spinner="Computing the results…", max_entries=8)
def cached_results(path: str, campaign_id: int, signature: tuple):
    """Results of a campaign, recomputed only when an answer or a skip is submitted (`signature`): a
    campaign of 40,000 answers takes seconds to summarise."""
    return campaign_results(get_store(path), campaign_id)


def ci_text(ci) -> str:
    return ci.fmt(3)


# ---- create ----------------------------------------------------------------------------------------------
@st.cache_data(show_spinner="Counting the matching decision points…", max_entries=64)
def cached_sizes(path: str, sig: str, query: tuple) -> dict[str, int]:
    """`campaigns.selection_sizes` of a filter (given as its sorted query items), per database signature: a
    second or two at full scale, so each filter is counted once."""
    return C.selection_sizes(get_store(path), DecisionPointFilter.from_query(dict(query)))


def selection_filter() -> DecisionPointFilter | None:
    """The selection's widgets, outside the create form so that the count below follows every change, and the
    filter they describe (None after saying why it is not one)."""
    st.markdown("**Selection** (the Browse filters)")
    c1, c2, c3 = st.columns(3)
    split = c1.selectbox("Split", [ANY, *SPLITS], key="campaigns::split")
    action_type = c2.selectbox("Action type", [ANY, *ACTION_TYPES], key="campaigns::action_type")
    tool = c3.text_input("Expected tool (exact)", key="campaigns::tool")
    c4, c5 = st.columns(2)
    text = c4.text_input("Conversation contains (words)", key="campaigns::text")
    flags = c5.multiselect("Only with flags", list(FLAGS), key="campaigns::flags")
    exclude = st.multiselect("Without flags", list(FLAGS), default=["ungradeable"], key="campaigns::exclude",
                             help="Ungradeable references cannot score a human answer: left out by default.")
    b1, b2, b3, b4 = st.columns(4)
    min_tools = b1.number_input("Min tools offered", min_value=0, value=None, step=1, key="campaigns::min_tools")
    max_tools = b2.number_input("Max tools offered", min_value=0, value=None, step=1, key="campaigns::max_tools")
    min_turn = b3.number_input("Min message index", min_value=0, value=None, step=1, key="campaigns::min_turn")
    max_turn = b4.number_input("Max message index", min_value=0, value=None, step=1, key="campaigns::max_turn")
    try:
        return DecisionPointFilter(split=None if split == ANY else split,
                                   action_type=None if action_type == ANY else action_type,
                                   tool=tool.strip() or None, text=text.strip() or None, flags=tuple(flags),
                                   exclude_flags=tuple(exclude), min_tools=min_tools, max_tools=max_tools,
                                   min_turn=min_turn, max_turn=max_turn).validate()
    except NemoError as exc:
        st.error(escape_markdown(exc.one_line()))
        return None


def matching_preview(flt: DecisionPointFilter) -> None:
    """How many decision points the selection matches, by stratum: the population the campaign will be drawn
    from (the same pools as `draw_sample`, so it equals the "drawn from N matching" said after Create)."""
    sizes = cached_sizes(str(store.path), signature(store), tuple(sorted(flt.to_query().items())))
    total = sum(sizes.values())
    if total == 0:
        st.warning("**0 decision points match** this selection: widen it (a campaign needs at least one).")
        return
    st.info(f"**{plural(total, 'decision point')} {'matches' if total == 1 else 'match'}** this selection, the "
            "population the sample is drawn from (a larger sample size takes all of them): "
            + " · ".join(f"{key} {n:,}" for key, n in sizes.items()) + ".")


def create_form() -> None:
    flt = selection_filter()
    if flt is not None:
        matching_preview(flt)
    with st.form("campaigns::create"):
        # the example goes in the help, not as a placeholder: a grey example read as a filled-in name
        name = st.text_input("Name", key="campaigns::new_name",
                             help="A short name for the campaign, for example baseline-2025-11.")
        st.markdown("**Sample and overlap**")
        c6, c7, c8 = st.columns(3)
        size = c6.number_input("Sample size", min_value=1, value=50, step=10, key="campaigns::size")
        seed = c7.number_input("Seed", min_value=0, value=0, step=1, key="campaigns::seed",
                               help="The same selection and seed always draw the same items.")
        stratify = c8.checkbox("Stratify by split × action type", value=True, key="campaigns::stratify",
                               help="Proportional allocation, so the sample mirrors the selection's mix.")
        c9, c10, c11 = st.columns(3)
        overlap = c9.number_input("Annotators per item (overlap)", min_value=1, max_value=20, value=1,
                                  key="campaigns::overlap")
        shared = c10.slider("Share answered by every annotator (%)", 0, 100, 10, key="campaigns::shared",
                            help="These shared items measure agreement whatever the overlap.")
        grader = c11.selectbox("Message grader", list(C.GRADERS), key="campaigns::grader",
                               help="auto: the LLM grader when a key is configured, else keyword overlap.")
        instructions = st.text_area("Instructions shown to annotators", key="campaigns::instructions",
                                    placeholder="Answer as the assistant would. Call a tool when one is needed...")
        reveal = st.checkbox("Show annotators the grade of each answer after they submit it", value=False,
                             key="campaigns::reveal")
        create = st.form_submit_button("Create campaign", type="primary")
    if not create or flt is None:
        return
    try:
        camp = C.create_campaign(store, name, selection=flt, sample_size=int(size), seed=int(seed),
                                 stratify=stratify, overlap=int(overlap), shared_share=shared / 100,
                                 instructions=instructions, reveal_after_submit=reveal, grader=grader)
    except NemoError as exc:
        st.error(escape_markdown(exc.one_line()))
        return
    st.session_state["campaigns::pick"] = camp.id
    st.session_state["campaigns::created"] = camp.id
    st.rerun()


campaigns = C.list_campaigns(store)
if not campaigns:
    st.write("No campaign yet. Create the first one: a seeded sample of decision points that annotators answer "
             "blind on the Annotate page.")
    create_form()
    st.stop()

with st.expander("Create a campaign", expanded=False):
    create_form()

by_id = {c.id: c for c in campaigns}
wanted = st.query_params.get("campaign")
if "campaigns::pick" not in st.session_state or st.session_state["campaigns::pick"] not in by_id:
    st.session_state["campaigns::pick"] = int(wanted) if wanted and wanted.isdigit() and int(wanted) in by_id \
        else campaigns[0].id
cid = st.selectbox("Campaign", list(by_id), key="campaigns::pick",
                   format_func=lambda i: f"{by_id[i].name} ({by_id[i].status})")
campaign = by_id[cid]
st.query_params["campaign"] = str(cid)
notice = st.container()  # always there, so the tabs below keep their place (and their selected tab) on reruns
if st.session_state.pop("campaigns::created", None) == cid:
    notice.success(f"Created with {campaign.n_items:,} items drawn from {campaign.n_population:,} matching decision "
               "points. Annotators can start on the Annotate page.")

sel = ", ".join(f"{k}={v}" for k, v in campaign.selection.items()) or "everything"
st.caption(f"Selection: {escape_markdown(sel)} · {campaign.n_items:,} items of {campaign.n_population:,} · "
           f"seed {campaign.seed} · {'stratified' if campaign.stratify else 'simple random'} · overlap "
           f"{campaign.overlap} · {campaign.shared_share:.0%} shared · grades "
           f"{'shown' if campaign.reveal_after_submit else 'hidden'} after submitting · created "
           f"{campaign.created_at[:16].replace('T', ' ')} UTC")

progress_tab, results_tab, export_tab, manage_tab = st.tabs(["Progress", "Results", "Export", "Manage"])

# ---- progress --------------------------------------------------------------------------------------------
with progress_tab:
    prog = C.progress(store, cid)
    st.progress(prog.fraction, text=f"Campaign: {prog.done:,} of {prog.target_answers:,} answers "
                                    f"({prog.items_answered:,} of {prog.n_items:,} items answered at least once, "
                                    f"{plural(prog.skips, 'skip')})")
    # "0 of 19 answers ... (1 so far)" read as a contradiction: say that the target grows with the annotators
    n_annotators = len(prog.annotators)
    st.caption(f"Target: {prog.n_items - prog.n_shared:,} items × overlap {prog.overlap}"
               + (f" + {prog.n_shared:,} shared items × each annotator" if prog.n_shared else "")
               + (f", counted for the {n_annotators:,} annotator{'s' if n_annotators != 1 else ''} who have "
                  "started (it grows as more start)." if prog.n_shared else "."))
    if prog.annotators:
        frame = pd.DataFrame([{
            "annotator": p.annotator, "progress": p.fraction, "done": p.done, "of": p.total, "answered": p.answered,
            "skipped": p.skipped, "open now": p.open,
        } for p in prog.annotators])
        st.dataframe(frame, hide_index=True, width="stretch", key="campaigns::progress_table",
                     column_config={"progress": st.column_config.ProgressColumn(min_value=0, max_value=1,
                                                                                 format="percent")})
        for p in prog.annotators:
            st.progress(p.fraction, text=f"{inert_label(p.annotator, 60)}: {p.done} of {p.total}")
    else:
        st.caption("Nobody has started yet.")

# ---- results ---------------------------------------------------------------------------------------------
with results_tab:
    res = cached_results(str(store.path), cid, C.answers_signature(store, cid))
    if res.n_answers == 0:
        st.caption("No answers yet.")
    else:
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Human baseline reward", "n/a" if res.overall.mean is None else f"{res.overall.mean:.3f}",
                  help="Mean reward over items, each item's answers averaged first (answers to one item are "
                       "not independent); the 95% bootstrap interval below resamples items, seeded with the "
                       "campaign's seed. Skips are not scored; ungradeable references are left out.")
        c1.caption(ci_text(res.overall))
        c2.metric("Answers", f"{res.n_answers:,}")
        c2.caption(plural(res.n_skips, "skip"))
        median = res.time_overall.median
        c3.metric("Median time per item", "—" if median is None else f"{median:.0f} s")
        c3.caption("mean " + ("—" if res.time_overall.mean is None else f"{res.time_overall.mean:.0f} s"))
        c4.metric("Items with ≥2 answers", f"{res.agreement.n_items:,}")

        table = pd.DataFrame(res.table())
        groups = table[table["group"] != "overall"]
        fig = go.Figure()
        for group in ("split", "action type", "annotator"):
            part = groups[(groups["group"] == group) & groups["mean"].notna()]
            if part.empty:
                continue
            fig.add_trace(go.Bar(
                name=group, x=[f"{group}: {html.escape(str(v))}" for v in part["value"]], y=part["mean"],
                error_y=dict(type="data", symmetric=False, array=(part["ci_high"] - part["mean"]).tolist(),
                             arrayminus=(part["mean"] - part["ci_low"]).tolist()),
                hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
        fig.add_hline(y=res.overall.mean, line_dash="dot", annotation_text="overall")
        fig.update_layout(height=380, yaxis=dict(range=[0, 1.05], title="mean reward (95% CI)"),
                          margin=dict(l=0, r=0, t=30, b=0), legend=dict(orientation="h"))
        show(fig, key="campaigns::scores_chart")
        st.dataframe(table.rename(columns={"ci_low": "95% CI low", "ci_high": "95% CI high"}), hide_index=True,
                     width="stretch", key="campaigns::scores_table",
                     column_config={c: st.column_config.NumberColumn(format="%.3f")
                                    for c in ("mean", "95% CI low", "95% CI high")})

        st.caption("n counts items for overall, split and action type (each item's answers averaged), and "
                   "answers for an annotator.")
        st.markdown("**Time per item, per annotator**")
        times = pd.DataFrame([{"annotator": k, "answers": v.n, "median s": v.median, "mean s": v.mean,
                               "skips": res.skips_by_annotator.get(k, 0)} for k, v in res.time_by_annotator.items()])
        st.dataframe(times, hide_index=True, width="stretch", key="campaigns::times",
                     column_config={c: st.column_config.NumberColumn(format="%.1f") for c in ("median s", "mean s")})
        if res.seconds:
            # one overlaid histogram per annotator, as the heading says (it was every answer in one)
            hist = go.Figure([go.Histogram(x=secs, name=html.escape(who), opacity=0.6, nbinsx=30,
                                           hovertemplate="%{x} s: %{y} answers<extra>%{fullData.name}</extra>")
                              for who, secs in res.seconds_by_annotator.items() if secs])
            hist.update_layout(height=280, barmode="overlay", xaxis_title="seconds from showing to submitting",
                               yaxis_title="answers", margin=dict(l=0, r=0, t=10, b=0),
                               legend=dict(orientation="h", title="annotator"))
            show(hist, key="campaigns::time_chart")

        st.markdown("**Agreement between annotators** (items answered by two or more)")
        ag = res.agreement
        if ag.n_items == 0:
            st.caption("No item has two answers yet: agreement needs overlap > 1 or shared items.")
        else:
            a1, a2, a3, a4 = st.columns(4)
            a1.metric("Same action type", f"{ag.same_type:.0%}", help=f"over {ag.n_pairs:,} pairs of answers")
            a2.metric("Same tool", f"{ag.same_tool:.0%}", help="a message counts as the tool submit_message")
            kappa_name = "Cohen's κ" if ag.kappa_method == "cohen" else "Fleiss' κ"
            a3.metric(f"{kappa_name} (tool)", "—" if ag.kappa_tool is None else f"{ag.kappa_tool:.2f}",
                      help=f"action type: {'—' if ag.kappa_type is None else f'{ag.kappa_type:.2f}'}; "
                           f"{len(ag.annotators)} annotators on overlapping items")
            a4.metric("Argument agreement", "—" if ag.arg_agreement is None else f"{ag.arg_agreement:.2f}",
                      help=f"mean over {ag.n_arg_pairs:,} pairs calling the same tool: equal keys ÷ keys in either")
            st.caption(f"{ag.n_items:,} items, {ag.n_pairs:,} pairs; {kappa_name} on action type "
                       + ("—" if ag.kappa_type is None else f"{ag.kappa_type:.2f}") + ".")

        st.markdown("**Against a model run** (the same items, paired)")
        runs = [r.name for r in list_runs(store)]
        if not runs:
            st.caption("No stored run yet: grade a predictions file or run a model to compare it with the humans.")
        else:
            chosen_run = st.selectbox("Run", runs, index=None, key="campaigns::vs_run",
                                      placeholder="choose a run to compare with the human baseline")
            if chosen_run:
                cmp = compare_with_run(store, cid, chosen_run)
                if cmp.n_paired == 0:
                    st.caption("The run graded none of this campaign's answered items.")
                else:
                    v1, v2, v3 = st.columns(3)
                    v1.metric("Humans", f"{cmp.human.mean:.3f}", help=cmp.human.fmt())
                    v2.metric("Run", f"{cmp.model.mean:.3f}", help=cmp.model.fmt())
                    v3.metric("Run − humans", f"{cmp.difference.mean:+.3f}",
                              help="paired over items; 95% bootstrap interval: " + cmp.difference.fmt())
                    st.caption(f"On {cmp.n_paired:,} of the {cmp.n_items:,} answered items (the others the run did "
                               f"not grade). Run − humans: {cmp.difference.fmt()}.")

        st.markdown("**Where humans disagree with the expected action** (candidates for a bad reference)")
        if not res.disagreements:
            st.caption("Every answer used the tool (or message) the reference used.")
        else:
            dis = pd.DataFrame([{
                "decision point": d.dp_id, "expected": " / ".join(d.expected), "answers": d.n_answers,
                "disagree": d.n_disagree, "share": d.share, "mean reward": d.mean_reward,
                "humans chose": ", ".join(f"{k} ×{v}" for k, v in sorted(d.labels.items())),
                "consensus": d.consensus or "",
            } for d in res.disagreements])
            st.dataframe(dis, hide_index=True, width="stretch", key="campaigns::disagreements",
                         column_config={"share": st.column_config.ProgressColumn(min_value=0, max_value=1,
                                                                                  format="percent"),
                                        "mean reward": st.column_config.NumberColumn(format="%.3f")})
            def link(d) -> None:
                st.page_link(DECISION_PAGE, label=f"Open {inert_label(d.dp_id, 90)} ({d.n_disagree}/{d.n_answers} "
                                                  "disagree)", icon="🧩", query_params={"id": d.dp_id})

            for d in res.disagreements[:10]:
                link(d)
            if len(res.disagreements) > 10:
                with st.expander(f"The other {len(res.disagreements) - 10} items"):
                    for d in res.disagreements[10:]:
                        link(d)

# ---- export ----------------------------------------------------------------------------------------------
with export_tab:
    people = [p.annotator for p in prog.annotators]
    who = st.selectbox("Answers of", ["(all annotators)", *people], key="campaigns::export_who")
    annotator = None if who == "(all annotators)" else who
    rows = export_rows(store, cid, annotator=annotator)
    n_answered = sum(r['status'] == 'answered' for r in rows)
    n_skipped = sum(r['status'] == 'skipped' for r in rows)
    st.caption(f"{plural(len(rows), 'row')} ({plural(n_answered, 'answer')}, {plural(n_skipped, 'skip')}).")
    stem = f"campaign-{campaign.id}" + (f"-{annotator}" if annotator else "")
    e1, e2 = st.columns(2)
    e1.download_button("Download CSV", to_csv(rows), file_name=f"{stem}.csv", mime="text/csv",
                       key="campaigns::csv",
                       help="Every answer and skip: id, annotator, action, breakdown, time, note, confidence, ...")
    e2.download_button("Download JSONL (grade input)", to_jsonl(rows), file_name=f"{stem}.jsonl",
                       mime="application/jsonl", key="campaigns::jsonl",
                       help="One {\"id\", \"action\", \"annotator\", ...} line per answer: `python -m nemo_core grade` "
                            "re-grades it as a run. Overlapping items repeat their id across annotators.")
    if annotator:
        if st.button(f"Save {inert_label(annotator, 40)}'s answers as a run", key="campaigns::save_run"):
            config = grader_config()
            with tempfile.TemporaryDirectory() as folder:
                try:
                    result = save_as_run(store, cid, annotator, folder,
                                         llm=LLMGrader(config, store) if config.configured else None)
                except NemoError as exc:
                    st.error(escape_markdown(exc.one_line()))
                else:
                    st.success(f"Saved as run {escape_markdown(result.run_name)}: {result.n_graded:,} graded.")
                    st.page_link("app_pages/runs.py", label="Open Runs", icon="🏁", query_params={"run": result.run_name})
    else:
        st.caption("Choose one annotator to save their answers as a run (a run holds one answer per item).")

# ---- manage ----------------------------------------------------------------------------------------------
with manage_tab:
    m1, m2 = st.columns(2)
    if campaign.status == "open":
        if m1.button("Close the campaign (no more items handed out)", key="campaigns::close"):
            C.set_status(store, cid, "closed")
            st.rerun()
    elif m1.button("Reopen the campaign", key="campaigns::reopen"):
        C.set_status(store, cid, "open")
        st.rerun()
    with m2.form("campaigns::release"):
        minutes = st.number_input("Release items handed out more than this many minutes ago and not answered",
                                  min_value=1, value=120, key="campaigns::stale_minutes")
        if st.form_submit_button("Release stale items"):
            n = C.release_stale(store, cid, minutes)
            st.success(f"Released {n} item(s): they go back to the queue.")
    with st.expander("Delete this campaign"):
        n_answered = C.progress(store, cid).answers
        st.warning(f"Deletes the campaign with its {campaign.n_items:,} items and {n_answered:,} answer(s). "
                   "Runs saved from its answers stay. This cannot be undone.")
        # a form: ticking the box must not rerun the page (a rerun can put the tabs back on the first one)
        with st.form("campaigns::delete_form"):
            sure = st.checkbox("I understand the answers are deleted for good", key="campaigns::delete_sure")
            if st.form_submit_button("Delete the campaign", type="primary"):
                if sure:
                    C.delete_campaign(store, cid)
                    st.session_state.pop("campaigns::pick", None)
                    st.rerun()
                st.error("Tick the box first: nothing was deleted.")
    st.markdown("**Allocation by stratum**")
    st.dataframe(pd.DataFrame([{"stratum": k, **v} for k, v in campaign.allocation.items()]), hide_index=True,
                 key="campaigns::allocation")
