"""What the admin passphrase guards, found in the store: people's campaign answers and annotator names.

Campaign answers live in `campaign_answers` (read only by the Campaigns page and the exports), but copies of
them end up elsewhere, each carrying the annotator's name:
- a run of kind `human` (`baseline.save_as_run`): its predictions are one annotator's answers, and its name
  and source file name that annotator ("human: NAME (CAMPAIGN)");
- an audit set built from a campaign (its candidates are people's answers, one item per annotator) or from a
  human run (its name defaults to "run:human: NAME (...)").

The app hides these while a session has not given the passphrase (`ui.admin`); this module only says which
they are, so the rule is the same on every page. An audit set whose run is gone cannot be checked and is
counted as guarded: holding back a model run's audit by mistake costs a passphrase, the reverse leaks names.
"""

from __future__ import annotations

from typing import Any

from ..data.store import Store

PEOPLE_RUN_KINDS = ("human",)


def people_run_names(store: Store) -> set[str]:
    """Names of the runs that hold people's campaign answers."""
    marks = ", ".join("?" for _ in PEOPLE_RUN_KINDS)
    return {r["name"] for r in store.query(f"SELECT name FROM runs WHERE kind IN ({marks})", PEOPLE_RUN_KINDS)}


def audit_set_is_guarded(store: Store, audit_set: Any) -> bool:
    """True when the set's candidates are people's answers (see the module docstring); `audit_set` is an
    `audit.AuditSet` (anything with `source`, `source_id` and `source_name`)."""
    if audit_set.source == "campaign":
        return True
    if audit_set.source != "run":
        return False
    rows = store.query("SELECT name, kind FROM runs WHERE id = ?", (audit_set.source_id,))
    if not rows or rows[0]["name"] != audit_set.source_name:
        return True  # the run is gone (or its id now names another run): cannot tell
    return rows[0]["kind"] in PEOPLE_RUN_KINDS
