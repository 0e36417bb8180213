"""Grader audit: how well the keyword grader agrees with the LLM grader on message replies, and both with people.

Build an audit set (a run's message replies, a campaign's human answers, or calibration candidates that need
no model), grade it with the LLM after seeing how many API calls that takes, then read the agreement: scatter,
correlations, a pass threshold with its confusion matrix and kappa, the keyword threshold sweep, by split and
by length, the largest disagreements with both graders' reasons, and a blind 0-10 judgement form that makes a
person the third rater. Everything is computed by `nemo_core.people.audit`; this page only draws it.

With no OpenAI key the page says how to add one and still shows the keyword side and the human judgements.
People's campaign answers (a campaign's, or a human run's) are candidates only with the admin passphrase
(`ui.admin`, the same check as the Campaigns page): building from them asks for it, and the sets built from
them are hidden until it is given.
"""

from __future__ import annotations

import html
import random
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from nemo_core.base.errors import NemoError
from nemo_core.data.store import Store
from nemo_core.grading.endpoint import EndpointConfig
from nemo_core.people.audit.agreement import Agreement, agreement, disagreements
from nemo_core.people.audit.build import build_audit_set, campaigns_available
from nemo_core.people.audit.export import to_csv
from nemo_core.people.audit.grading import (GradingBusy, GradingControl, estimate, grade_audit_set,
                                            grading_control)
from nemo_core.people.audit.scores import AuditRow, audit_rows, next_blind_item, record_human
from nemo_core.people.audit.sets import (KINDS, SOURCES, AuditSet, get_audit_set, list_audit_sets,
                                         runs_with_message_replies, set_counts)
from nemo_core.grading.grade import Breakdown
from nemo_core.people.guarded import audit_set_is_guarded
from nemo_core.grading.keyword_grader import KeywordScore
from nemo_core.grading.llm_grader import LLMGrader
from ui.audit_notes import no_variance_note
from ui.charts import show
from ui.admin import admin_unlocked, held_back, unlock_form, visible_run_names
from ui.breakdown import render_breakdown
from ui.chat import render_conversation
from ui.db import require_store
from ui.decision_links import DECISION_PAGE
from ui.formats import table
from ui.safe import code_span, escape_markdown, show_text
from ui.secrets import grader_config

SET_PARAM = "set"
RATER_KEY = "audit_rater"
REVEAL_KEY = "audit_revealed"
FLASH_KEY = "audit_flash"
STOP_KEY = "audit_stop"
AGREEMENT_VIEW, JUDGE_VIEW = "Agreement and disagreements", "Judge blind"
SOURCE_LABELS = {"calibration": "Calibration candidates (no model needed)", "run": "A run's message replies",
                 "campaign": "A campaign's human answers"}
NO_KEY_HELP = (
    "**No OpenAI key is configured**, so the LLM grader cannot run here. The keyword side and human judgements "
    "below still work. To add a key, either set the environment variable before starting the app "
    "(`OPENAI_API_KEY=sk-... streamlit run app.py`, plus `OPENAI_BASE_URL` for another OpenAI-compatible server), "
    "or put `openai_api_key = \"sk-...\"` (and optionally `openai_base_url`) in `.streamlit/secrets.toml`. "
    "The key is never written to the database or a log."
)


def one_line(text: str, limit: int = 140) -> str:
    """Text for a selectbox option (shown as plain text, never Markdown): one line, cut."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass
class Shown:
    """What the page shows of one audit set, passed to each section (nothing is read from page globals)."""

    store: Store
    audit_set: AuditSet
    counts: dict[str, int]
    rows: list[AuditRow]
    threshold: float = 0.5
    figures: Agreement | None = None


def fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


# ---- building a set ---------------------------------------------------------------------------------------
def header(config: EndpointConfig) -> None:
    st.title("Grader audit")
    st.caption("How far can the keyword grader be trusted on message replies? Both graders score the same candidate "
               "replies; scores are on a 0–1 scale (LLM = its 0–10 integer ÷ 10). An LLM failure leaves an item "
               "unscored (never a 0) and it is retried on the next pass.")
    if not config.configured:
        st.warning(NO_KEY_HELP, icon="🔑")
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        st.success(flash)


def build_section(store: Store, expanded: bool) -> None:
    runs, _ = visible_run_names(store, runs_with_message_replies(store))
    campaigns = [c["name"] for c in campaigns_available(store)]
    with st.expander("Build an audit set", expanded=expanded):
        st.caption("Calibration candidates, per message decision point: the reference itself (a ceiling), a "
                   "reply from another conversation chosen with the seed (a floor) and the reference cut in half. "
                   "Decision points are taken in a seeded order, so the first N are a uniform sample; building "
                   "the same set with a larger N adds to it. Keyword scores are computed at once (no API call).")
        available = [s for s in SOURCES if s == "calibration" or (s == "run" and runs) or (s == "campaign" and campaigns)]
        source = st.radio("Candidates", available, format_func=SOURCE_LABELS.get, key="audit_source", horizontal=True)
        if len(available) < len(SOURCES):
            st.caption("A run appears here once it has message replies; a campaign once people answered message "
                       "items.")
        if source == "campaign" and not admin_unlocked():
            st.info("A campaign's answers, and the names of the people who gave them, need the admin passphrase.")
            unlock_form("audit_build")
            return
        with st.form("audit_build"):
            run = st.selectbox("Run", runs, key="audit_build_run") if source == "run" else None
            campaign = st.selectbox("Campaign", campaigns, key="audit_build_campaign") if source == "campaign" else None
            c1, c2, c3 = st.columns(3)
            limit = c1.number_input("Decision points (at most)", min_value=1, value=30, step=10)
            seed = c2.number_input("Seed", min_value=0, value=8, step=1)
            split = c3.selectbox("Split", ["both", "tool_calling", "interactive_agent"])
            name = st.text_input("Set name (empty: run:NAME, campaign:NAME or calibration)")
            submitted = st.form_submit_button("Build the audit set")
        if submitted:
            try:
                built = build_audit_set(store, source, run=run, campaign=campaign, name=name.strip() or None,
                                        limit=int(limit), seed=int(seed), split=None if split == "both" else split)
            except NemoError as exc:
                st.error(escape_markdown(exc.one_line()))
                return
            skipped = ", ".join(f"{n:,} {why}" for why, n in built.skipped.items() if n)
            st.session_state[FLASH_KEY] = (
                f"Audit set {escape_markdown(repr(built.audit_set.name))}: {built.n_items:,} items "
                f"({built.n_added:,} new)." + (f" Left out: {escape_markdown(skipped)}." if skipped else ""))
            st.query_params[SET_PARAM] = built.audit_set.name
            st.rerun()


def choose_set(store: Store) -> AuditSet:
    """The audit set asked for in the URL (or the newest), among those this session may see; stops the page
    when there is none."""
    sets = list_audit_sets(store)
    n_hidden = 0
    if not admin_unlocked():
        shown = [s for s in sets if not audit_set_is_guarded(store, s)]
        sets, n_hidden = shown, len(sets) - len(shown)
    build_section(store, expanded=not sets)
    held_back(n_hidden, "audit set(s) of people's campaign answers", key="audit_sets")
    if not sets:
        st.info("No audit set yet: build one above (calibration candidates need no model), or from the command line: "
                "`python -m nemo_core audit --calibration --limit 30`." if not n_hidden else
                "The only audit sets hold people's campaign answers: give the admin passphrase above, or build another.")
        st.stop()
    names = [s.name for s in sets]
    wanted = st.query_params.get(SET_PARAM)
    index = names.index(wanted) if wanted in names else 0
    chosen = st.selectbox("Audit set", names, index=index, key=f"audit_set::{wanted}",
                          format_func=lambda n: one_line(next(s.label for s in sets if s.name == n), 120))
    if st.query_params.get(SET_PARAM) != chosen:
        st.query_params[SET_PARAM] = chosen
    return get_audit_set(store, chosen)


def stop_if_asked(control: GradingControl) -> None:
    """Stop was pressed: ask the grading in progress to stop (it stores what is in flight), and wait for it so
    the figures below include every score it stored."""
    if st.session_state.get(STOP_KEY) and control.busy:
        with st.spinner("Stopping: waiting for the requests in flight…"):
            control.stop()
        st.session_state[FLASH_KEY] = "Stopped. Scores received so far are kept; grade again to resume."
        st.rerun()


def show_counts(audit_set: AuditSet, counts: dict[str, int]) -> None:
    m = st.columns(5)
    m[0].metric("Items", f"{counts['items']:,}")
    m[1].metric("LLM-scored", f"{counts['llm_scored']:,}")
    m[2].metric("Waiting for the LLM", f"{counts['pending'] - counts['llm_failed']:,}")
    m[3].metric("LLM failures", f"{counts['llm_failed']:,}", help="retried on the next pass; never counted as 0")
    m[4].metric("Judged by people", f"{counts['human_judged']:,}")
    st.caption(f"Source: {escape_markdown(audit_set.label)} · seed {audit_set.seed} · LLM grader model "
               f"{code_span(audit_set.llm_model or 'not graded yet')}")


# ---- grading -----------------------------------------------------------------------------------------------
def grade_section(store: Store, config: EndpointConfig, audit_set: AuditSet, control: GradingControl) -> None:
    st.subheader("Grade with the LLM grader")
    if not config.configured:
        st.info("Grading needs a key (see above). Until then the figures below use the keyword side only.")
        return
    if audit_set.llm_model and audit_set.llm_model != config.model:
        st.error(f"This set was graded with {code_span(audit_set.llm_model)} and the configured model is "
                 f"{code_span(config.model)}: build a new set to compare another model.")
        return
    plan = estimate(store, audit_set.id, config.model)
    if not plan.n_to_grade:
        st.caption(f"Every item has an LLM score from {code_span(config.model)}.")
        return
    st.markdown(f"**{plan.n_to_grade:,}** items to grade with {code_span(config.model)}: "
                f"**about {plan.n_calls:,} API calls** ({plan.n_cached:,} answers are already in the cache and "
                "cost nothing; retries after errors come on top).")
    c1, c2 = st.columns([3, 1])
    confirmed = c1.checkbox(f"Yes, make about {plan.n_calls:,} API calls", key=f"audit_confirm::{audit_set.id}::{plan.n_calls}")
    concurrency = c2.number_input("Parallel requests", min_value=1, max_value=32, value=8, key="audit_concurrency")
    if control.busy:
        st.info("This set is being graded in another session right now; its scores appear here as they arrive.")
        return
    if not st.button("Grade now", type="primary", disabled=not confirmed, key="audit_grade"):
        st.caption("Stop at any time with the Stop button that appears while grading: scores already received "
                   "are kept, and grading again resumes with the rest (answers already paid for come from the "
                   "cache).")
        return
    run_grading(store, config, audit_set, control, int(concurrency))


def run_grading(store: Store, config: EndpointConfig, audit_set: AuditSet, control: GradingControl, concurrency: int) -> None:
    """Grade the set now, with a Stop button and a progress bar; the outcome is flashed on the next run."""
    try:
        with control.grading() as should_stop:
            st.button("Stop", key=STOP_KEY, help="Stops after the requests in flight; their answers are kept.")
            bar = st.progress(0.0, text="Starting…")

            def progress(done: int, total: int | None) -> None:
                bar.progress(done / total if total else 1.0, text=f"{done:,} of {total or 0:,} items graded")

            result = grade_audit_set(store, audit_set.id, LLMGrader(config, store), concurrency=concurrency,
                                     on_progress=progress, should_stop=should_stop)
    except GradingBusy:
        st.info("This set is being graded in another session right now.")
        return
    except NemoError as exc:
        st.error(escape_markdown(exc.one_line()))
        return
    if result.stopped:
        st.session_state[FLASH_KEY] = (f"Stopped after {result.n_graded:,} items. Scores received so far are kept; "
                                       "grade again to resume.")
        st.rerun()
    message = (f"Graded {result.n_graded:,} items ({result.n_cached:,} from the cache, {result.n_requests:,} API "
               f"requests) in {result.seconds:.1f} s.")
    if result.n_failed:
        message += f" {result.n_failed:,} failed (left unscored; grade again to retry)."
    st.session_state[FLASH_KEY] = message
    st.rerun()


def frame(rows_: list[AuditRow]) -> pd.DataFrame:
    return pd.DataFrame([{
        "item": r.item_id, "decision point": r.dp_id, "split": r.split, "kind": r.kind, "keyword": r.keyword,
        "llm": r.llm, "human": r.human, "|llm − keyword|": None if r.llm is None else abs(r.llm - r.keyword),
        "length": r.length_bucket, "chars": r.candidate_chars, "candidate": r.candidate[:200],
    } for r in rows_])


def group_table(groups) -> pd.DataFrame:
    return pd.DataFrame([{
        "group": g.group, "items": g.n_items, "scored by both": g.agreement.n, "pearson": g.agreement.pearson,
        "spearman": g.agreement.spearman, "mean |difference|": g.agreement.mae, "kappa": g.agreement.kappa,
        "mean keyword": g.agreement.mean_a, "mean LLM": g.agreement.mean_b,
    } for g in groups])


def scatter(rows_: list[AuditRow], threshold: float) -> go.Figure:
    fig = go.Figure()
    for kind in KINDS:
        pts = [r for r in rows_ if r.kind == kind and r.llm is not None]
        if not pts:
            continue
        jitter = [random.Random(r.item_id).uniform(-0.015, 0.015) for r in pts]
        fig.add_trace(go.Scatter(
            x=[r.keyword for r in pts], y=[r.llm + j for r, j in zip(pts, jitter)], mode="markers", name=kind,
            marker={"opacity": 0.65, "size": 8}, customdata=[[html.escape(r.dp_id), r.llm] for r in pts],
            hovertemplate="keyword %{x:.3f}<br>LLM %{customdata[1]:.1f}<br>%{customdata[0]}<extra>" + kind + "</extra>",
        ))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="agreement", line={"dash": "dot", "color": "grey"}))
    fig.add_hline(y=threshold, line={"width": 1, "color": "#bbb"})
    fig.add_vline(x=threshold, line={"width": 1, "color": "#bbb"})
    fig.update_layout(xaxis_title="keyword grader (F1)", yaxis_title="LLM grader (score ÷ 10)", height=420,
                      margin={"t": 30, "b": 40}, xaxis={"range": [-0.03, 1.03]}, yaxis={"range": [-0.05, 1.05]})
    return fig


def sweep_chart(figures: Agreement) -> go.Figure:
    xs = [p.threshold for p in figures.sweep]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=[p.kappa for p in figures.sweep], mode="lines+markers", name="Cohen's kappa"))
    fig.add_trace(go.Scatter(x=xs, y=[p.f1 for p in figures.sweep], mode="lines+markers", name="F1"))
    if figures.best is not None:
        fig.add_vline(x=figures.best.threshold, line={"dash": "dash", "color": "green"},
                      annotation_text=f"best {figures.best.threshold:.2f}")
    fig.update_layout(xaxis_title="keyword grader threshold", yaxis_title="agreement with the LLM's pass/fail",
                      height=340, margin={"t": 30, "b": 40})
    return fig


def agreement_section(shown: Shown) -> None:
    figures, threshold, rows = shown.figures, shown.threshold, shown.rows
    assert figures is not None
    if figures.n == 0:
        st.info("No item has an LLM score yet, so there is nothing to compare the keyword grader with. "
                "The keyword side of the set:")
        by_kind = pd.DataFrame([{"kind": g.group, "items": g.n_items, "mean keyword": g.agreement.mean_a
                                 if g.agreement.n else sum(r.keyword for r in rows if r.kind == g.group) / g.n_items}
                                for g in figures.by_kind])
        c1, c2 = st.columns(2)
        c1.metric("Mean keyword score", fmt(figures.mean_keyword))
        c2.metric("Items", f"{figures.n_items:,}")
        st.dataframe(table(by_kind), hide_index=True, width="stretch")
        return
    c = st.columns(6)
    c[0].metric("Scored by both", f"{figures.n:,}")
    c[1].metric("Pearson", fmt(figures.pearson))
    c[2].metric("Spearman", fmt(figures.spearman))
    c[3].metric("Mean |difference|", fmt(figures.mae))
    c[4].metric(f"Kappa at {threshold:.2f}", fmt(figures.kappa))
    c[5].metric("Best keyword threshold", "—" if figures.best is None else f"{figures.best.threshold:.2f}",
                help="the keyword threshold whose pass/fail agrees best (kappa) with the LLM's at the pass threshold")
    no_spread = no_variance_note(rows)
    if no_spread:
        st.info(no_spread)
    st.caption(f"Mean keyword {fmt(figures.mean_keyword)} · mean LLM {fmt(figures.mean_llm)}"
               + (f" · {figures.n_llm_failed:,} LLM failures and {figures.n_pending:,} waiting are not counted"
                  if figures.n_llm_failed or figures.n_pending else ""))
    left, right = st.columns([3, 2], gap="large")
    with left:
        show(scatter(rows, threshold), key="audit_scatter")
        st.caption("Each point is a candidate reply; LLM scores are jittered by up to ±0.015 so equal scores do not "
                   "hide each other. Grey lines: the pass threshold.")
    with right:
        cm = figures.confusion
        st.markdown(f"**At the threshold {threshold:.2f}** (the LLM's pass/fail as the reference)")
        st.table(pd.DataFrame({"keyword passes": [cm.tp, cm.fp], "keyword fails": [cm.fn, cm.tn]},
                              index=["LLM passes", "LLM fails"]))
        agree = (cm.tp + cm.tn) / cm.n if cm.n else None
        st.markdown(f"Cohen's kappa **{fmt(figures.kappa)}** · F1 **{fmt(figures.f1)}** · raw agreement "
                    f"**{fmt(agree)}**")
        st.caption("Kappa corrects raw agreement for chance: 1 = perfect, 0 = no better than chance.")
    st.markdown("**Keyword threshold sweep**: which keyword threshold reproduces the LLM's pass/fail best?")
    show(sweep_chart(figures), key="audit_sweep")
    t1, t2 = st.tabs(["By split", "By candidate length"])
    with t1:
        st.dataframe(table(group_table(figures.by_split)), hide_index=True, width="stretch", key="audit_by_split")
    with t2:
        st.dataframe(table(group_table(figures.by_length)), hide_index=True, width="stretch", key="audit_by_length")
        bars = go.Figure([
            go.Bar(name="mean keyword", x=[g.group for g in figures.by_length], y=[g.agreement.mean_a for g in figures.by_length]),
            go.Bar(name="mean LLM", x=[g.group for g in figures.by_length], y=[g.agreement.mean_b for g in figures.by_length]),
        ])
        bars.update_layout(barmode="group", height=300, margin={"t": 30, "b": 40}, yaxis_title="mean score")
        show(bars, key="audit_length_bars")
        st.caption("Is the keyword grader biased by length? Compare the two means in each bucket, over the items "
                   "both graders scored.")
    st.markdown("**By kind of candidate**")
    st.dataframe(table(group_table(figures.by_kind)), hide_index=True, width="stretch", key="audit_by_kind")


# ---- humans -------------------------------------------------------------------------------------------------
def human_section(shown: Shown) -> None:
    figures, threshold = shown.figures, shown.threshold
    assert figures is not None
    st.subheader("People as a third rater")
    if not figures.n_human:
        st.caption("No human judgement yet: choose the “Judge blind” view above.")
        return
    st.dataframe(table(pd.DataFrame([{
        "pair": f"human vs {h.b}", "items": h.n, "pearson": h.pearson, "spearman": h.spearman,
        "mean |difference|": h.mae, f"kappa at {threshold:.2f}": h.kappa, "mean human": h.mean_a,
        f"mean {h.b}": h.mean_b,
    } for h in figures.human])), hide_index=True, width="stretch", key="audit_human_table")
    st.caption(f"{figures.n_human:,} item{'s' if figures.n_human != 1 else ''} judged; an item judged by several "
               "people counts with their mean. Judge more with the “Judge blind” view above.")


# ---- disagreements and one item in detail ---------------------------------------------------------------
def keyword_breakdown(row: AuditRow) -> Breakdown:
    detail = row.keyword_detail or {}
    reason = KeywordScore(**detail).reason if detail else "keyword_f1"
    return Breakdown.graded_by_keyword(score=row.keyword, reason=reason, detail=detail)


def llm_breakdown(row: AuditRow) -> Breakdown:
    return Breakdown.graded_by_llm(score=row.llm_score, reason=row.llm_reason, model=row.llm_model)


def context_and_replies(dp, candidate: str, candidate_label: str) -> None:
    """The conversation (collapsed), then the reference reply beside the candidate: what both the
    disagreement view and the blind judging view show of an item."""
    with st.expander(f"Conversation so far ({len(dp.context)} messages)"):
        render_conversation(dp.context)
    a, b = st.columns(2)
    with a:
        st.markdown("**Reference reply**")
        show_text(dp.expected_content or "")
    with b:
        st.markdown(candidate_label)
        show_text(candidate)


def item_detail(store: Store, row: AuditRow) -> None:
    dp = store.get(row.dp_id)
    st.page_link(DECISION_PAGE, label="Open the decision point", icon="🧩", query_params={"id": row.dp_id})
    context_and_replies(dp, row.candidate, f"**Candidate** ({escape_markdown(KINDS.get(row.kind, row.kind))})")
    if row.llm is not None:
        render_breakdown(llm_breakdown(row), key=f"audit_llm_{row.item_id}", title="LLM grader")
    elif row.llm_error:
        st.warning("The LLM grader failed on this item (it is retried on the next pass): "
                   + escape_markdown(row.llm_error))
    else:
        st.info("No LLM score yet.")
    render_breakdown(keyword_breakdown(row), key=f"audit_kw_{row.item_id}", title="Keyword grader")
    if row.human is not None:
        st.caption(f"People: {row.human * 10:.1f}/10 (mean of {row.n_human})")


def disagreement_section(shown: Shown) -> None:
    rows = shown.rows
    st.subheader("Disagreements")
    listed = disagreements(rows, limit=200)
    if listed:
        st.caption("Items scored by both graders, the largest |LLM − keyword| first (the first 200).")
    else:
        listed = sorted(rows, key=lambda r: r.keyword)[:200]
        st.caption("No LLM scores yet: items listed by keyword score, lowest first.")
    if not listed:
        return
    st.dataframe(table(frame(listed)), hide_index=True, width="stretch", height=min(420, 40 + 35 * len(listed)),
                 key="audit_disagreements")
    labels = {r.item_id: r for r in listed}
    pick = st.selectbox(
        "Open an item", list(labels), key=f"audit_open_item::{shown.audit_set.id}::{shown.counts['llm_scored']}",
        format_func=lambda i: one_line(
            (f"|Δ| {abs(labels[i].llm - labels[i].keyword):.2f} · " if labels[i].llm is not None else "")
            + f"keyword {labels[i].keyword:.2f} · {labels[i].kind} · {labels[i].dp_id}"))
    item_detail(shown.store, labels[pick])


# ---- blind human judgement -----------------------------------------------------------------------------------
def judge_section(shown: Shown) -> None:
    store, rows = shown.store, shown.rows
    st.subheader("Judge blind")
    st.caption("Score a candidate against the reference from 0 (wrong or unhelpful) to 10 (as good as the "
               "reference). Both graders' scores stay hidden until you submit.")
    rater = st.text_input("Your name or initials", key=RATER_KEY).strip()
    revealed = st.session_state.get(REVEAL_KEY)
    if revealed:
        done = next((r for r in rows if r.item_id == revealed["item"]), None)
        if done is not None:
            st.success(f"You said {revealed['score']}/10. Keyword grader: {done.keyword * 10:.1f}/10 · LLM grader: "
                       + (f"{done.llm_score}/10" if done.llm_score is not None else "not scored") + ".")
            with st.expander("Why each grader scored it so"):
                if done.llm is not None:
                    render_breakdown(llm_breakdown(done), key=f"audit_rev_llm_{done.item_id}", title="LLM grader")
                render_breakdown(keyword_breakdown(done), key=f"audit_rev_kw_{done.item_id}", title="Keyword grader")
    if not rater:
        st.info("Type your name to start judging.")
        return
    item = next_blind_item(store, shown.audit_set.id, rater)
    if item is None:
        st.success("You have judged every item of this set.")
        return
    dp = store.get(item.dp_id)
    with st.container(border=True, key="audit_blind_item"):
        st.caption(f"Decision point {code_span(item.dp_id)}")
        context_and_replies(dp, item.candidate, "**Candidate reply**")
        with st.form(f"audit_judge_{item.item_id}"):
            score = st.slider("Your score", 0, 10, 5, key=f"audit_score_{item.item_id}")
            if st.form_submit_button("Submit my judgement"):
                try:
                    record_human(store, item.item_id, rater, int(score))
                except NemoError as exc:
                    st.error(escape_markdown(exc.one_line()))
                    return
                st.session_state[REVEAL_KEY] = {"item": item.item_id, "score": int(score)}
                st.rerun()


# ---- the page ------------------------------------------------------------------------------------------------
def main() -> None:
    store = require_store()
    config = grader_config()
    header(config)
    audit_set = choose_set(store)
    control = grading_control(str(store.path.resolve()), audit_set.id)
    stop_if_asked(control)
    audit_set = get_audit_set(store, audit_set.id)  # again: a grading that just stopped may have named its model
    counts = set_counts(store, audit_set.id)
    show_counts(audit_set, counts)
    grade_section(store, config, audit_set, control)
    shown = Shown(store, audit_set, counts, audit_rows(store, audit_set.id))
    st.divider()
    view = st.radio("View", [AGREEMENT_VIEW, JUDGE_VIEW], horizontal=True, key="audit_view",
                    help="Judging blind shows no grader's score until you submit, so the agreement views are hidden.")
    if view == JUDGE_VIEW:
        judge_section(shown)
        st.stop()
    st.subheader("Agreement")
    shown.threshold = st.slider("Pass threshold (a score at or above it passes)", 0.0, 1.0, 0.5, 0.05,
                                key="audit_threshold")
    shown.figures = agreement(shown.rows, threshold=shown.threshold)
    agreement_section(shown)
    human_section(shown)
    disagreement_section(shown)
    st.divider()
    st.download_button("Download the audit table (CSV)", to_csv(shown.rows), file_name=f"audit-{audit_set.id}.csv",
                       mime="text/csv", key="audit_csv",
                       help="One row per item: both graders' scores (0–1), the LLM's reason or error, people's mean "
                            "score, the candidate text.")


main()
