"""Streamlit secrets and the LLM grader's configuration, read the same way by every page."""

from __future__ import annotations

import streamlit as st

from nemo_core.llm_grader import LLMConfig


def secret(name: str) -> str | None:
    """A Streamlit secret, or None when there is no secrets file (reading an absent one raises)."""
    try:
        value = st.secrets.get(name)
    except Exception:  # noqa: BLE001 - no secrets.toml is the normal case
        return None
    return value if isinstance(value, str) and value.strip() else None


def grader_config() -> LLMConfig:
    """The message grader's config: the `openai_api_key` secret, else OPENAI_API_KEY (SPEC §4); the same
    for the endpoint (`openai_base_url`, else OPENAI_BASE_URL)."""
    return LLMConfig.from_env(api_key=secret("openai_api_key"), base_url=secret("openai_base_url"))
