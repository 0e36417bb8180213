"""Nemotron-Agentic Workbench core: decision points, the store, grading. Never imports Streamlit."""

from .decision_point import DecisionPoint
from .errors import NemoError, UnknownDecisionPoint
from .filters import DecisionPointFilter
from .store import Store, open_store
from . import llm_grader as _llm_grader, runs as _runs  # noqa: F401  (register their tables)
from . import attempts as _attempts  # noqa: F401  (registers its table)
from . import taxonomy as _taxonomy, run_analysis as _run_analysis  # noqa: F401  (register their tables)
from . import audit as _audit  # noqa: F401  (registers its tables)
from . import campaigns as _campaigns  # noqa: F401  (registers its tables)
from . import overview as _overview  # noqa: F401  (registers its cache table)

__all__ = ["DecisionPoint", "DecisionPointFilter", "NemoError", "Store", "UnknownDecisionPoint", "open_store"]
