"""Every string an AppTest run hands to Streamlit's Markdown renderer, and what in it would become a link,
an image or HTML in the browser.

Streamlit renders Markdown in `st.markdown` / `st.caption` / alerts / toasts / headings, in every widget
label and help text, in metric values, progress and spinner texts, expander and tab labels, and in radio
options; `st.text`, `st.code`, `st.json`, selectbox options and dataframes stay plain. `markdown_strings`
walks the whole element tree (sidebar, forms, collapsed expanders and hidden tabs included) and yields the
former; `problems` says what a browser would turn into something live: unescaped markup, and any GFM
autolink (a bare `http://`, `www.` or `a@b.c`, which escaping the punctuation does not stop).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from google.protobuf.message import Message

# Proto types whose text is shown as is (their `body` is not Markdown).
PLAIN_TYPES = {"Text", "Code", "Json", "Arrow", "ArrowNamedDataSet", "PlotlyChart", "Html", "Exception"}
# Fields rendered as Markdown wherever they appear; radio options too (only in a Radio).
MARKDOWN_FIELDS = {"label", "help", "body", "text", "delta"}

_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_ESCAPE = re.compile(r"\\(.)", re.S)
_AUTOLINK = re.compile(r"(?i)\b(?:https?|mailto|xmpp|javascript|ftp):|\bwww\.|[\w.+-]@[\w-]+\.[\w-]")
_MARKUP = re.compile(r"(?<!\\)<[A-Za-z/!]|(?<!\\)!\[|(?<!\\)\]\(")


def _repeated(field) -> bool:
    is_repeated = getattr(field, "is_repeated", None)  # protobuf >= 5.28; `label` is gone in 6
    return bool(is_repeated) if is_repeated is not None else field.label == field.LABEL_REPEATED


def _strings(message: Message, type_name: str) -> Iterator[tuple[str, str]]:
    for field, value in message.ListFields():
        name = field.name
        if field.type == field.TYPE_MESSAGE:
            values = value if _repeated(field) else [value]
            for sub in values:
                if isinstance(sub, Message):
                    yield from _strings(sub, type_name)
        elif field.type == field.TYPE_STRING:
            values = list(value) if _repeated(field) else [value]
            if name in MARKDOWN_FIELDS or (name == "options" and type_name == "Radio"):
                for v in values:
                    yield f"{type_name}.{name}", v


def markdown_strings(at) -> Iterator[tuple[str, str]]:
    """`(where, text)` for every Markdown-rendered string in the last run of `at` (an AppTest)."""
    for node in at._tree:
        proto = getattr(node, "proto", None)
        if proto is None:
            continue
        type_name = type(proto).__name__
        if type_name in PLAIN_TYPES:
            # a plain element's own help tooltip is still Markdown
            if getattr(proto, "help", ""):
                yield f"{type_name}.help", proto.help
            continue
        yield from _strings(proto, type_name)


def problems(markdown: str) -> list[str]:
    """What in this Markdown would render live: unescaped markup, or a GFM autolink (after the escapes are
    resolved, as the renderer sees it). Code spans are literal, so their content is skipped."""
    outside_code = _CODE_SPAN.sub("", markdown)
    found = [f"markup {m.group(0)!r}" for m in _MARKUP.finditer(outside_code)]
    resolved = _ESCAPE.sub(r"\1", outside_code)
    found += [f"autolink {m.group(0)!r}" for m in _AUTOLINK.finditer(resolved)]
    return found


def live_markdown(at) -> list[tuple[str, str, list[str]]]:
    """`(where, text, problems)` for every Markdown string of the run that would render something live."""
    return [(where, text, found) for where, text in markdown_strings(at) if (found := problems(text))]
