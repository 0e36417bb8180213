"""One OpenAI-compatible endpoint: its configuration and its client, shared by the LLM grader (`llm_grader`)
and the model runner (`runs.model_runner`).

`EndpointConfig` says where (model, base URL, key) and how patiently (timeout, attempts, backoff); `Endpoint`
holds the one `openai` client made from it (thread-safe: both callers ask from several threads), counts the
requests sent, waits before a retry (`delay`: the server's Retry-After when it sends a number, capped, else
exponential backoff with jitter so parallel callers do not retry in step), and takes every key the process
knows out of any text (`redact`, through `keys.redact`: this endpoint's key, the other keys named in
`redact_keys`, and `OPENAI_API_KEY`).

The key lives only in `EndpointConfig.api_key` (hidden from repr) and the client: it is never stored, logged or
put into an error text.
"""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from .keys import known_keys, redact

DEFAULT_MODEL = "gpt-5-mini"  # the LLM grader's model unless NEMO_GRADER_MODEL or the caller says otherwise
NO_KEY_PLACEHOLDER = "no-key"  # local OpenAI-compatible servers often need no key, but the client wants one


@dataclass
class EndpointConfig:
    """Where and how patiently to call an OpenAI-compatible endpoint. `api_key` never appears in repr or logs."""

    api_key: str | None = field(default=None, repr=False)
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    timeout: float = 60.0
    max_attempts: int = 4  # for 429 / 5xx / connection errors (and timeouts, where they are retried)
    retry_timeouts: bool = False  # the model runner's choice; the LLM grader always retries a timeout
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    retry_after_max: float = 30.0
    # other keys to take out of whatever the endpoint returns (the app's secret, a key typed in a page)
    redact_keys: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def for_grader(cls, api_key: str | None = None, model: str | None = None, base_url: str | None = None,
                   **kwargs: Any) -> "EndpointConfig":
        """The LLM grader's endpoint: explicit values win, then `OPENAI_API_KEY`, `NEMO_GRADER_MODEL`,
        `OPENAI_BASE_URL`."""
        return cls(api_key=api_key or os.environ.get("OPENAI_API_KEY") or None,
                   model=model or os.environ.get("NEMO_GRADER_MODEL") or DEFAULT_MODEL,
                   base_url=base_url or os.environ.get("OPENAI_BASE_URL") or None, **kwargs)

    @classmethod
    def for_model(cls, model: str, base_url: str | None = None, api_key: str | None = None,
                  **kwargs: Any) -> "EndpointConfig":
        """A model to run: explicit values win, then `OPENAI_API_KEY` and `OPENAI_BASE_URL`."""
        return cls(model=model, base_url=base_url or os.environ.get("OPENAI_BASE_URL") or None,
                   api_key=api_key or os.environ.get("OPENAI_API_KEY") or None, **kwargs)

    @property
    def configured(self) -> bool:
        """Whether a key is set (the LLM grader needs one; a local model server may not)."""
        return bool(self.api_key and self.api_key.strip())


class Endpoint:
    """The client of one `EndpointConfig`, made on first use; thread-safe."""

    def __init__(self, config: EndpointConfig):
        self.config = config
        self._client: Any = None
        self._lock = threading.Lock()
        self.requests_sent = 0
        self._keys = known_keys(config.api_key, *config.redact_keys)

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key taken out by `redact`."""
        return self._keys

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from openai import OpenAI  # imported on first use: the app and most commands never need it

                cfg = self.config
                self._client = OpenAI(api_key=cfg.api_key or NO_KEY_PLACEHOLDER, base_url=cfg.base_url,
                                      timeout=cfg.timeout, max_retries=0)
            return self._client

    def create(self, **body: Any) -> Any:
        """One chat completion request (counted), with the client's own retries off: the callers retry."""
        with self._lock:
            self.requests_sent += 1
        return self.client().chat.completions.create(**body)

    def redact(self, text: str) -> str:
        return redact(text, self._keys)

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before retry number `attempt` (from 1)."""
        cfg = self.config
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), cfg.retry_after_max)
            except ValueError:
                pass
        base = min(cfg.backoff_base * 2 ** (attempt - 1), cfg.backoff_max)
        return base * (0.5 + random.random() / 2)
