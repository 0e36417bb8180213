"""The wait before retrying an OpenAI-compatible call, shared by the LLM grader and the model runner."""

from __future__ import annotations

import random


def retry_delay(attempt: int, retry_after: str | None, *, backoff_base: float, backoff_max: float,
                retry_after_max: float) -> float:
    """Seconds to wait before retry number `attempt` (from 1): the server's Retry-After when it sends a
    number (capped), else exponential backoff with jitter so parallel callers do not retry in step."""
    if retry_after:
        try:
            return min(max(float(retry_after), 0.0), retry_after_max)
        except ValueError:
            pass
    base = min(backoff_base * 2 ** (attempt - 1), backoff_max)
    return base * (0.5 + random.random() / 2)
