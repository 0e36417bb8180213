"""Keyboard-first annotation (issue 19): the page's shortcuts and where the focus goes.

Streamlit gives buttons a `shortcut` (used for submit and skip); the rest needs a few lines of script in the
page. The script is a constant (no dataset or user text ever goes into it; only an integer item number and
the page's own element keys), so `unsafe_allow_javascript` runs nothing a dataset could write.

Shortcuts, also listed on the page (`SHORTCUTS`):
- Ctrl+Enter submits the answer (the call or the message), Alt+K skips the item;
- 1 to 5 set the confidence and 0 clears it (outside a text field; Esc leaves a text field);
- Alt+M switches between calling a tool and sending a message;
- Alt+L jumps to the latest turn of the conversation, Alt+A back to the answer.
Alt with a digit is left alone: Chrome on Linux switches tabs with it.
"""

from __future__ import annotations

import streamlit as st

SUBMIT = "Ctrl+Enter"
SKIP = "Alt+K"
SHORTCUTS = [
    ("Ctrl+Enter", "submit the answer"),
    ("Alt+K", "skip the item"),
    ("1 … 5, 0", "confidence (0: not said), outside a text field"),
    ("Esc", "leave a text field"),
    ("Alt+M", "switch between a tool call and a message"),
    ("Alt+L", "jump to the latest turn"),
    ("Alt+A", "back to the answer"),
]

# Installed once per page load; finds the page's parts by their container keys (st-key-... classes).
_HANDLER = """
<script>
(() => {
  if (window.__nemoAnnotateKeys) return;
  window.__nemoAnnotateKeys = true;
  const inText = (el) => el && (el.tagName === 'TEXTAREA' || (el.tagName === 'INPUT' &&
      !['checkbox', 'radio', 'range'].includes(el.type)));
  const clickOption = (box, index) => {
    const labels = document.querySelectorAll(box + ' [role=radiogroup] label');
    if (labels[index]) labels[index].click();
    // a clicked radio keeps the focus and eats the next Ctrl+Enter: give it back to the page
    if (document.activeElement && document.activeElement.type === 'radio') document.activeElement.blur();
  };
  document.addEventListener('keydown', (e) => {
    if (!document.querySelector('.st-key-annotate_answer')) return;  // another page
    if (e.key === 'Escape' && inText(document.activeElement)) { document.activeElement.blur(); return; }
    if (e.altKey && !e.ctrlKey && !e.metaKey) {
      if (e.code === 'KeyM') {
        const group = document.querySelector('.st-key-annotate_form [role=radiogroup]');
        if (group) {
          const labels = [...group.querySelectorAll('label')];
          const current = [...group.querySelectorAll('input')].findIndex(r => r.checked);
          if (labels.length >= 2) labels[current === 0 ? 1 : 0].click();
          if (document.activeElement && document.activeElement.type === 'radio') document.activeElement.blur();
        }
        e.preventDefault();
      } else if (e.code === 'KeyL') {
        const box = document.querySelector('.st-key-annotate_conversation');
        if (box) {
          const scroller = box.querySelector('[data-testid=stVerticalBlockBorderWrapper] > div') || box;
          box.scrollTop = box.scrollHeight;
          scroller.scrollTop = scroller.scrollHeight;
          const turns = box.querySelectorAll('[data-testid=stChatMessage]');
          if (turns.length) turns[turns.length - 1].scrollIntoView({block: 'end'});
        }
        e.preventDefault();
      } else if (e.code === 'KeyA') {
        window.__nemoFocusAnswer();
        e.preventDefault();
      }
      return;
    }
    if (!e.ctrlKey && !e.metaKey && !e.altKey && !inText(document.activeElement) && /^[0-5]$/.test(e.key)) {
      clickOption('.st-key-annotate_confidence', Number(e.key));
      e.preventDefault();
    }
  }, true);
  window.__nemoFocusAnswer = () => {
    const box = document.querySelector('.st-key-annotate_form');
    if (!box) return;
    const field = box.querySelector('textarea, input[role=combobox], input[type=text], input[type=number]');
    if (field) field.focus();
  };
})();
</script>
"""

# Run on every new item (and after a switch of answer mode): the item's number makes the element new, so
# the browser runs it again. Focus the answer, bring the latest turn into view, and take the "?" help
# buttons out of the tab order (they sat between the fields: 7-10 Tabs to get back to the answer).
_ON_ITEM = """
<script>
/* item %(nonce)s */
(() => {
  let tries = 0;
  const settle = () => {
    // the page's parts may be drawn after this script runs: try again for up to 3 s
    const field = document.querySelector('.st-key-annotate_form textarea, .st-key-annotate_form input[role=combobox], '
        + '.st-key-annotate_form input[type=text], .st-key-annotate_form input[type=number]');
    if (!field && ++tries < 30) { setTimeout(settle, 100); return; }
    document.querySelectorAll('.st-key-annotate_answer [data-testid=stTooltipHoverTarget], '
        + '.st-key-annotate_answer [data-testid=stTooltipIcon] *').forEach(el => el.setAttribute('tabindex', '-1'));
    const box = document.querySelector('.st-key-annotate_conversation');
    if (box) {
      const turns = box.querySelectorAll('[data-testid=stChatMessage]');
      if (turns.length) turns[turns.length - 1].scrollIntoView({block: 'nearest'});
    }
    const main = document.querySelector('[data-testid=stMain]');
    const top = document.querySelector('.st-key-annotate_item_top');
    if (main && top) main.scrollTo(0, top.offsetTop - 8);
    if (field) field.focus();
  };
  setTimeout(settle, 100);
})();
</script>
"""


def install_shortcuts() -> None:
    """The page-wide key handler (idempotent in the browser)."""
    st.html(_HANDLER, unsafe_allow_javascript=True)


def on_new_item(nonce: str) -> None:
    """Focus the answer and show the latest turn; `nonce` must change for each item and mode (an int id)."""
    safe = "".join(c for c in nonce if c.isalnum() or c in "-_")  # never anything but [A-Za-z0-9_-]
    st.html(_ON_ITEM % {"nonce": safe}, unsafe_allow_javascript=True)


def focus_in(container_key: str) -> None:
    """Put the focus in the first text field of the container keyed `container_key` (a page's own key)."""
    safe = "".join(c for c in container_key if c.isalnum() or c in "-_")
    st.html("<script>setTimeout(() => { const f = document.querySelector('.st-key-" + safe + " input, .st-key-"
            + safe + " textarea'); if (f) f.focus(); }, 150);</script>", unsafe_allow_javascript=True)
