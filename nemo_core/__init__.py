"""Nemotron-Agentic Workbench core: decision points, the store, grading. Never imports Streamlit."""

from .decision_point import DecisionPoint
from .errors import NemoError, UnknownDecisionPoint
from .filters import DecisionPointFilter
from .store import Store, open_store

__all__ = ["DecisionPoint", "DecisionPointFilter", "NemoError", "Store", "UnknownDecisionPoint", "open_store"]
