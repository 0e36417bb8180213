"""Streamlit secrets and the LLM grader's configuration, read the same way by every page."""

from __future__ import annotations

import os

import streamlit as st

from nemo_core.grading.endpoint import EndpointConfig


def secret(name: str) -> str | None:
    """A Streamlit secret, or None when there is no secrets file (reading an absent one raises)."""
    try:
        value = st.secrets.get(name)
    except Exception:  # noqa: BLE001 - no secrets.toml is the normal case
        return None
    return value if isinstance(value, str) and value.strip() else None


def grader_config() -> EndpointConfig:
    """The message grader's config: the `openai_api_key` secret, else OPENAI_API_KEY (SPEC §4); the same
    for the endpoint (`openai_base_url`, else OPENAI_BASE_URL)."""
    return EndpointConfig.for_grader(api_key=secret("openai_api_key"), base_url=secret("openai_base_url"))


def server_key() -> str | None:
    """The server's own OpenAI key: the `openai_api_key` secret, else OPENAI_API_KEY (as `grader_config`)."""
    return secret("openai_api_key") or (os.environ.get("OPENAI_API_KEY") or "").strip() or None


def server_base_url() -> str | None:
    """The base URL the server's key is configured with: the `openai_base_url` secret, else OPENAI_BASE_URL;
    None means OpenAI's own (`keys.OPENAI_DEFAULT_URL`). The key is sent nowhere else (`keys.choose_key`)."""
    return secret("openai_base_url") or (os.environ.get("OPENAI_BASE_URL") or "").strip() or None
