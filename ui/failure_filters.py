"""The Failures page's filters as URL query parameters (`category`, `split`, `tool`, `min_reward`,
`max_reward`, `sort`, `page`), so a reload or a shared link keeps them. Only what differs from the default
is written: the page's plain URL stays `failures?run=NAME`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nemo_core.base.config import SPLITS
from nemo_core.runs.taxonomy import CATEGORIES, FAILURE_CATEGORIES

ALL = "(all)"
SORTS = ("reward", "-reward")


@dataclass(frozen=True)
class FailureFilters:
    categories: tuple[str, ...] = tuple(FAILURE_CATEGORIES)
    split: str | None = None
    tool: str | None = None
    min_reward: float = 0.0
    max_reward: float = 1.0
    sort: str = "reward"
    page: int = 1

    @classmethod
    def from_query(cls, query: Mapping[str, str], tools: Sequence[str]) -> "FailureFilters":
        """Read the URL; a value the page cannot show raises ValueError naming the parameter."""
        out: dict[str, Any] = {}
        if "category" in query:
            cats = tuple(c for c in str(query["category"]).split(",") if c)
            bad = [c for c in cats if c not in CATEGORIES]
            if bad:
                raise ValueError(f"category: unknown {', '.join(bad)}; expected some of {', '.join(CATEGORIES)}")
            out["categories"] = cats
        if query.get("split"):
            if query["split"] not in SPLITS:
                raise ValueError(f"split: unknown {query['split']}; expected one of {', '.join(SPLITS)}")
            out["split"] = query["split"]
        if query.get("tool"):
            if query["tool"] not in tools:
                raise ValueError(f"tool: {query['tool']} is not an expected tool of this run")
            out["tool"] = query["tool"]
        for name in ("min_reward", "max_reward"):
            if query.get(name):
                try:
                    value = float(query[name])
                except ValueError:
                    raise ValueError(f"{name}: not a number ({query[name]})") from None
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{name}: {value} is outside 0-1")
                out[name] = value
        if query.get("sort"):
            if query["sort"] not in SORTS:
                raise ValueError(f"sort: expected reward or -reward, got {query['sort']}")
            out["sort"] = query["sort"]
        if query.get("page"):
            try:
                out["page"] = max(1, int(query["page"]))
            except ValueError:
                raise ValueError(f"page: not a whole number ({query['page']})") from None
        return cls(**out)

    def to_query(self) -> dict[str, str | None]:
        """Every parameter, None where it is the default (so `write_to_url` removes it)."""
        default = FailureFilters()
        return {
            "category": None if self.categories == default.categories else ",".join(self.categories),
            "split": self.split,
            "tool": self.tool,
            "min_reward": None if self.min_reward <= 0.0 else f"{self.min_reward:g}",
            "max_reward": None if self.max_reward >= 1.0 else f"{self.max_reward:g}",
            "sort": None if self.sort == "reward" else self.sort,
            "page": None if self.page == 1 else str(self.page),
        }

    def widget_state(self) -> dict[str, Any]:
        """The Failures page's widget keys and values that show these filters."""
        return {
            "failures_categories": list(self.categories),
            "failures_split": self.split or ALL,
            "failures_tool": self.tool or ALL,
            "failures_reward": (self.min_reward, self.max_reward),
            "failures_sort": self.sort,
            "failures_page": self.page,
        }
