"""Showing dataset text so that it stays text.

Dataset rows are untrusted: a tool result can hold `![x](http://tracker/pixel.png)`, a link or raw HTML,
and Streamlit renders Markdown (images included) in `st.markdown` and in every widget *label* (expander
titles, tabs, metric and selectbox labels). So:
- bodies of dataset text go through `show_text` (`st.text`: no Markdown, no HTML) or `st.json` / `st.code`;
- dataset text that must sit in a label goes through `inert_label` (every Markdown and Streamlit
  punctuation character backslash-escaped, so no image, link, HTML, math, colour or directive survives);
- escaping alone does not stop GFM's *autolinks*: Streamlit's renderer turns `http://…`, `www.…` and
  `name@host.tld` into links after the escapes are resolved, so `escape_markdown` also puts an invisible
  WORD JOINER (U+2060) before every `:` and `@` and between `www` and its dot: the text reads the same,
  but no autolink pattern matches it any more;
- very long fields are cut, with the rest in an expander, so one 200 kB tool reply cannot swamp a page.
Never `unsafe_allow_html` on any of it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import streamlit as st

# Every ASCII punctuation character may be backslash-escaped in CommonMark; these are the ones that
# Markdown, GFM, Streamlit's `:colour[...]` directives, `:emoji:` shortcodes and `$math$` give meaning to.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=\"'^@%/])")
_WS = re.compile(r"\s+")
# Where GFM's autolink literals start to match (`http:`, `https:`, `mailto:`, `xmpp:`, `www.`, `a@b.c`):
# a zero-width WORD JOINER there breaks every one of them and renders as nothing.
WORD_JOINER = "\u2060"
_AUTOLINK_POINTS = re.compile(r"(?i)(?<=www)(?=\.)|(?=[:@])")

TEXT_LIMIT = 2_000
JSON_LIMIT = 6_000


def break_autolinks(text: str) -> str:
    """The same text with a WORD JOINER wherever a GFM autolink could begin (see the module docstring)."""
    return _AUTOLINK_POINTS.sub(WORD_JOINER, text)


def escape_markdown(text: str) -> str:
    """Text that Markdown renders literally and never as a link: every meaningful punctuation character
    backslash-escaped, autolinks broken, newlines kept as hard line breaks."""
    escaped = _MD_SPECIAL.sub(r"\\\1", break_autolinks(str(text)))
    return escaped.replace("\r\n", "\n").replace("\n", "  \n")


def inert_label(text: Any, limit: int = 80) -> str:
    """Dataset text made safe for a widget label: one line, cut to `limit` characters, escaped."""
    flat = _WS.sub(" ", str(text)).strip()
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return escape_markdown(flat)


def code_span(text: Any, limit: int = 120) -> str:
    """Dataset text as a Markdown inline code span (nothing inside one is interpreted): one line, cut,
    fenced with more backticks than the longest run inside it."""
    flat = _WS.sub(" ", str(text)).strip()
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    longest = max((len(m) for m in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {flat} {fence}"


def cut(text: str, limit: int = TEXT_LIMIT) -> tuple[str, str]:
    """`(head, rest)`: the first `limit` characters (at a line or word boundary when one is near) and
    what follows; `rest` is "" when the text fits."""
    if len(text) <= limit:
        return text, ""
    split_at = limit
    for sep in ("\n", " "):
        pos = text.rfind(sep, limit - 200, limit)
        if pos > 0:
            split_at = pos
            break
    return text[:split_at], text[split_at:]


def show_text(text: str, limit: int = TEXT_LIMIT) -> None:
    """Dataset text as plain text (never Markdown), the part beyond `limit` in an expander."""
    head, rest = cut(text, limit)
    st.text(head)
    if rest:
        with st.expander(f"Show the remaining {len(rest):,} characters"):
            st.text(rest)


def as_json_value(value: Any) -> tuple[bool, Any]:
    """`(True, parsed)` when the value is JSON structure (an object or array, or a string holding one),
    else `(False, value)`; scalars stay text so `"5"` is not shown as a number."""
    if isinstance(value, (dict, list)):
        return True, value
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            try:
                return True, json.loads(stripped)
            except ValueError:
                return False, value
    return False, value


def show_value(value: Any, limit: int = TEXT_LIMIT) -> None:
    """A message content or tool reply: JSON as JSON (large JSON opened one level only), else text."""
    is_json, parsed = as_json_value(value)
    if is_json:
        size = len(json.dumps(parsed, ensure_ascii=False))
        if size > JSON_LIMIT:
            st.caption(f"Large JSON ({size:,} characters): nested levels are collapsed, click to open them.")
            st.json(parsed, expanded=1)
        else:
            st.json(parsed, expanded=True)
        return
    if value is None:
        st.caption("(no content)")
        return
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if not text.strip():
        st.caption("(empty)")
        return
    show_text(text, limit)
