"""The tools offered at a decision point: name, description, parameters as a table, the raw JSON."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from nemo_core.base.config import SUBMIT_MESSAGE

from .safe import inert_label, show_text


def _type_of(schema: Any) -> str:
    if not isinstance(schema, dict):
        return json.dumps(schema)
    if "type" in schema:
        t = schema["type"]
        kind = " | ".join(map(str, t)) if isinstance(t, list) else str(t)
        if kind == "array" and isinstance(schema.get("items"), dict):
            kind += f" of {_type_of(schema['items'])}"
        return kind
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list):
            return f" {key} ".join(_type_of(s) for s in schema[key]) if key != "allOf" else "all of: " + ", ".join(
                _type_of(s) for s in schema[key])
    if "enum" in schema:
        return "enum"
    return "any"


def parameter_rows(parameters: Any, prefix: str = "", depth: int = 0) -> list[dict[str, str]]:
    """One row per parameter (nested object properties as `parent.child`, three levels deep), with the
    facts a person reads first: type, required, description, allowed values, default."""
    if not isinstance(parameters, dict):
        return []
    props = parameters.get("properties")
    if not isinstance(props, dict):
        return []
    required = parameters.get("required") if isinstance(parameters.get("required"), list) else []
    rows: list[dict[str, str]] = []
    for name, schema in props.items():
        schema = schema if isinstance(schema, dict) else {}
        enum = schema.get("enum")
        rows.append({
            "parameter": prefix + str(name),
            "type": _type_of(schema),
            "required": "yes" if name in required else "",
            "description": str(schema.get("description") or ""),
            "allowed values": ", ".join(json.dumps(v, ensure_ascii=False) for v in enum) if isinstance(enum, list) else "",
            "default": json.dumps(schema["default"], ensure_ascii=False) if "default" in schema else "",
        })
        if depth < 2 and schema.get("type") == "object":
            rows.extend(parameter_rows(schema, prefix + str(name) + ".", depth + 1))
        items = schema.get("items")
        if depth < 2 and isinstance(items, dict) and items.get("type") == "object":
            rows.extend(parameter_rows(items, prefix + str(name) + "[].", depth + 1))
    return rows


def render_tools(dp: Any) -> None:
    toolset = dp.toolset
    tools = dp.tools
    st.caption(f"{len(toolset.task_tools)} task tools, plus the shared `submit_message`.")
    notes = list(toolset.odd)
    if toolset.duplicate_names:
        notes.append("repeated names (the first definition is offered): " + ", ".join(toolset.duplicate_names))
    if notes:
        with st.expander(f"Normalisation notes ({len(notes)})"):
            for note in notes:
                st.text("• " + note)
    for tool in tools:
        fn = tool["function"]
        shared = fn["name"] == SUBMIT_MESSAGE
        label = inert_label(fn["name"], 100) + (" (shared tool)" if shared else "")
        with st.expander(label):
            if fn.get("description"):
                show_text(fn["description"], limit=3_000)
            rows = parameter_rows(fn.get("parameters"))
            if rows:
                st.dataframe(rows, hide_index=True, width="stretch")
            else:
                st.caption("No parameters.")
            st.caption("As offered (JSON):")
            st.json(tool, expanded=False)
    with st.expander("Raw tool list as stored in the dataset"):
        st.json(dp.raw_tools, expanded=1)
