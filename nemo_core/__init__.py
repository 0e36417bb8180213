"""Nemotron-Agentic Workbench core: decision points, the store, grading. Never imports Streamlit."""

from .data.decision_point import DecisionPoint
from .base.errors import NemoError, UnknownDecisionPoint
from .data.filters import DecisionPointFilter
from .data.store import Store, open_store
from .grading import llm_grader as _llm_grader
from .runs import run as _runs  # noqa: F401  (register their tables)
from .people import attempts as _attempts  # noqa: F401  (registers its table)
from .runs import taxonomy as _taxonomy, analysis as _run_analysis  # noqa: F401  (register their tables)
from .people import audit as _audit  # noqa: F401  (registers its tables)
from .people import campaigns as _campaigns  # noqa: F401  (registers its tables)
from .data import overview as _overview  # noqa: F401  (registers its cache table)

__all__ = ["DecisionPoint", "DecisionPointFilter", "NemoError", "Store", "UnknownDecisionPoint", "open_store"]
