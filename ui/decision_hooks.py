"""Extension points of the decision point page, kept apart so other features plug in without editing it.

The page calls these at fixed places. To add a panel, replace the body of the matching function with a
call into your own `ui` module (keep the signature); each returns nothing and draws its own section.
"""

from __future__ import annotations

from typing import Any

from nemo_core.data.decision_point import DecisionPoint
from nemo_core.data.store import Store


def render_try_panel(store: Store, dp: DecisionPoint, request: dict[str, Any]) -> None:
    """Issue 5 ("Try"): send `request` (from `nemo_core.grading.request.build_request`) to a model and grade
    the answer. Drawn below the request panel."""
    from .try_panel import render_try_panel as draw

    draw(store, dp, request)


def render_prediction_panel(store: Store, dp: DecisionPoint, revealed: bool) -> None:
    """Issue 7 ("prediction beside expected"): a stored prediction for this decision point beside the
    expected action. Drawn right after the expected action; `revealed` says whether the user has
    revealed the expected action (keep the page usable blind when it is False)."""
    from .prediction_view import render_prediction_panel as render

    render(store, dp, revealed)
