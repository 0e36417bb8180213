"""One way to draw a Plotly chart on every page: the same colour for a split everywhere, category axes
where the labels are categories, and no Plotly toolbar over titles and bar labels.

Why each rule:
- Plotly guesses an axis type from its labels: with "0", "1", ... "5", "6–7", "≥15" it picks a numeric axis
  and silently drops every label that is not a number (the Overview lost 84 of 180 decision points that way).
- Plotly Express hands out colours in the order traces appear, so a split that is missing from one chart
  shifts the other's colour; a fixed map keeps `tool_calling` blue and `interactive_agent` orange everywhere.
- The mode bar floats over the top right corner of the plot, where titles and the last bar's label sit;
  Streamlit's own element toolbar (full screen) stays, and drag-to-zoom / double-click-to-reset still work.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import streamlit as st

from nemo_core.base.config import SPLITS

SPLIT_COLOURS: dict[str, str] = {"tool_calling": "#1f77b4", "interactive_agent": "#ff7f0e"}
PLOTLY_CONFIG: dict[str, Any] = {"displaylogo": False, "displayModeBar": False}

assert set(SPLIT_COLOURS) == set(SPLITS), "every split needs its colour"


def categorical_x(fig: go.Figure, order: list[str] | None = None) -> go.Figure:
    """Make the x axis categorical (in `order` when given), so no label is read as a number."""
    fig.update_xaxes(type="category", **({"categoryorder": "array", "categoryarray": order} if order else {}))
    return fig


def show(fig: go.Figure, *, key: str | None = None) -> None:
    """Draw `fig` full width with the shared configuration."""
    st.plotly_chart(fig, width="stretch", config=PLOTLY_CONFIG, key=key)


def difference_plot(comparison: dict[str, Any]) -> go.Figure:
    """The paired differences A − B (one per decision point graded in both) as a histogram in steps of 0.1,
    with the mean and its 95% CI drawn over it: how often and by how much A beats B, not only the mean."""
    counts: dict[float, int] = {}
    for value, n in comparison.get("difference_counts") or []:
        step = round(round(float(value) * 10) / 10, 1) + 0.0  # + 0.0 turns -0.0 into 0.0
        counts[step] = counts.get(step, 0) + int(n)
    xs = sorted(counts)
    fig = go.Figure(go.Bar(x=xs, y=[counts[x] for x in xs], width=0.09, name="pairs",
                           marker_color=["#2ca02c" if x > 0 else "#d62728" if x < 0 else "#999999" for x in xs],
                           hovertemplate="A − B ≈ %{x:+.1f}: %{y:,} pairs<extra></extra>"))
    diff = comparison["mean_difference"]
    if diff.get("mean") is not None:
        fig.add_vrect(x0=diff["ci_low"], x1=diff["ci_high"], fillcolor="#1f77b4", opacity=0.15, line_width=0)
        fig.add_vline(x=diff["mean"], line_color="#1f77b4",
                      annotation_text=f"mean {diff['mean']:+.3f}, 95% CI [{diff['ci_low']:+.3f}, {diff['ci_high']:+.3f}]",
                      annotation_position="top")
    fig.add_vline(x=0, line_dash="dot", line_color="grey")
    fig.update_layout(height=300, margin=dict(l=0, r=0, t=40, b=0), showlegend=False, bargap=0.05,
                      xaxis=dict(title="reward A − reward B (A wins right of 0, B wins left)", range=[-1.05, 1.05],
                                 dtick=0.25),
                      yaxis=dict(title="decision points"))
    return fig
