"""Filling an audit set from one source, each item keyword-scored as it is added (free: so the keyword side
and human judgements work with no key):

- `run`: the message predictions of a stored run (a model's replies, or a `human` run's answers);
- `campaign`: people's answers to message items of a human baseline campaign, one item per annotator;
- `calibration`: built-in candidates that need no model, three per decision point: the reference itself
  (a ceiling: both graders should say 1), a reference from another conversation chosen with the seed
  (a floor: both should say about 0), and the reference cut in half (in between: what does each make of it?).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...data.store import Store
from ...grading.grade import TargetLoader
from ...runs.run import RunError, get_run
from . import sets
from .sets import (DEFAULT_SEED, SOURCES, AuditError, AuditSet, _count_items, _ensure_set, _insert_items, _item_row,
                   default_set_name, half_reference, order_key)

@dataclass
class BuildResult:
    """What `build_audit_set` did: the set, how many items it added, and what it left out and why."""

    audit_set: AuditSet
    n_added: int
    n_items: int
    skipped: dict[str, int] = field(default_factory=dict)


def build_audit_set(store: Store, source: str, *, run: str | int | None = None, name: str | None = None,
                    limit: int | None = None, seed: int = DEFAULT_SEED, split: str | None = None,
                    campaign: str | int | None = None) -> BuildResult:
    """Create the audit set (or add what is missing to the one of that name) and keyword-score its items.

    `limit` caps the number of decision points, taken in a seeded order, so the first N are a uniform
    sample and a larger N later extends the set. Items already present are never duplicated.
    """
    if source not in SOURCES:
        raise AuditError(f"unknown audit source {source!r}", f"one of {', '.join(SOURCES)}")
    if limit is not None and limit < 1:
        raise AuditError("--limit must be at least 1", "for example --limit 50")
    if source == "run":
        return _build_from_run(store, run, name=name, limit=limit, seed=seed, split=split)
    if source == "campaign":
        return _build_from_campaign(store, campaign, name=name, limit=limit, seed=seed, split=split)
    return _build_calibration(store, name=name, limit=limit, seed=seed, split=split)


def _build_from_run(store: Store, run: str | int | None, *, name: str | None, limit: int | None, seed: int,
                    split: str | None) -> BuildResult:
    if run is None:
        raise AuditError("an audit of a run needs the run", "pass --run NAME (or use --calibration)")
    try:
        the_run = get_run(store, run)
    except RunError as exc:
        raise AuditError(str(exc), exc.hint) from None
    settings = {"limit": limit, "split": split}
    audit_set = _ensure_set(store, name or default_set_name("run", the_run.name), "run", seed, the_run.id,
                            the_run.name, settings)
    sql = ("SELECT p.dp_id, p.split, p.submitted_type, p.action, d.flag_empty_expected FROM predictions p "
           "JOIN decision_points d ON d.id = p.dp_id WHERE p.run_id = ? AND p.action_type = 'message'")
    params: list[Any] = [the_run.id]
    if split:
        sql += " AND p.split = ?"
        params.append(split)
    rows = store.query(sql, params)
    skipped: dict[str, int] = {}
    eligible = []
    for row in rows:
        reply = _reply_to_audit(row, skipped, "not a message reply (a call, or no valid action)")
        if reply is not None:
            eligible.append((order_key(seed, row["dp_id"], "prediction"), row["dp_id"], reply))
    eligible.sort()
    if limit is not None:
        eligible = eligible[:limit]
    loader = TargetLoader(store)
    added = 0
    for start in range(0, len(eligible), sets.LOAD_CHUNK):
        chunk = eligible[start:start + sets.LOAD_CHUNK]
        targets = loader.load([dp_id for _, dp_id, _ in chunk])
        added += _insert_items(store, [
            _item_row(audit_set.id, seed, dp_id, targets[dp_id].split, "prediction", candidate,
                      targets[dp_id].expected_content or "") for _, dp_id, candidate in chunk])
    return BuildResult(audit_set, added, _count_items(store, audit_set.id), skipped)


def _reply_to_audit(row: dict[str, Any], skipped: dict[str, int], not_a_reply: str) -> str | None:
    """The text of a stored answer worth auditing: a message reply (by its own type and, for a prediction, the
    type it was submitted as) to a decision point whose reference is not empty. None otherwise, counted in
    `skipped` under the reason a user is shown."""
    action = orjson.loads(row["action"]) if row["action"] else None
    if row.get("submitted_type", "message") != "message" or not isinstance(action, dict) \
            or action.get("type") != "message":
        skipped[not_a_reply] = skipped.get(not_a_reply, 0) + 1
        return None
    if row["flag_empty_expected"]:
        skipped["empty reference"] = skipped.get("empty reference", 0) + 1
        return None
    return action.get("content") or ""


def campaigns_available(store: Store) -> list[dict[str, Any]]:
    """Human baseline campaigns (issue 6) with answered message items: `[{id, name, n}]`; [] when the
    campaigns feature is not in this database."""
    if not store.scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'campaign_answers'"):
        return []
    return store.query(
        "SELECT c.id, c.name, count(a.id) AS n FROM campaigns c JOIN campaign_answers a ON a.campaign_id = c.id "
        "JOIN decision_points d ON d.id = a.dp_id WHERE a.status = 'answered' AND d.action_type = 'message' "
        "GROUP BY c.id ORDER BY c.id DESC")


def _build_from_campaign(store: Store, campaign: str | int | None, *, name: str | None, limit: int | None,
                         seed: int, split: str | None) -> BuildResult:
    """People's answers to message decision points in a human baseline campaign (read from its
    `campaign_answers` table): one item per (decision point, annotator)."""
    found = [c for c in campaigns_available(store) if campaign in (c["id"], c["name"])]
    if not found:
        raise AuditError(f"no campaign {campaign!r} with answered message items",
                         "run a human baseline campaign first (issue 6), or audit a run or the calibration set")
    camp = found[0]
    audit_set = _ensure_set(store, name or default_set_name("campaign", camp["name"]), "campaign", seed, camp["id"],
                            camp["name"], {"limit": limit, "split": split})
    sql = ("SELECT a.dp_id, a.annotator, a.action, d.split, d.flag_empty_expected FROM campaign_answers a "
           "JOIN decision_points d ON d.id = a.dp_id WHERE a.campaign_id = ? AND a.status = 'answered' "
           "AND d.action_type = 'message'")
    params: list[Any] = [camp["id"]]
    if split:
        sql += " AND d.split = ?"
        params.append(split)
    skipped: dict[str, int] = {}
    eligible = []
    for row in store.query(sql, params):
        reply = _reply_to_audit(row, skipped, "not a message reply")
        if reply is not None:
            eligible.append((order_key(seed, row["dp_id"]), row["dp_id"], row["annotator"], reply))
    eligible.sort()
    if limit is not None:
        keep = set(list(dict.fromkeys(dp_id for _, dp_id, _, _ in eligible))[:limit])
        eligible = [e for e in eligible if e[1] in keep]
    targets = TargetLoader(store).load([e[1] for e in eligible])
    items = [_item_row(audit_set.id, seed, dp_id, targets[dp_id].split, "human", candidate,
                       targets[dp_id].expected_content or "", variant=annotator)
             for _, dp_id, annotator, candidate in eligible]
    added = _insert_items(store, items)
    return BuildResult(audit_set, added, _count_items(store, audit_set.id), skipped)


def _build_calibration(store: Store, *, name: str | None, limit: int | None, seed: int,
                       split: str | None) -> BuildResult:
    settings = {"limit": limit, "split": split}
    audit_set = _ensure_set(store, name or default_set_name("calibration"), "calibration", seed, None, None, settings)
    sql = "SELECT id, split, conversation_uuid FROM decision_points WHERE action_type = 'message'"
    params: list[Any] = []
    if split:
        sql += " AND split = ?"
        params.append(split)
    rows = store.query(sql + " AND flag_empty_expected = 0", params)
    skipped = {"empty reference": int(store.scalar(
        "SELECT count(*) FROM decision_points WHERE action_type = 'message' AND flag_empty_expected = 1"
        + (" AND split = ?" if split else ""), params) or 0)}
    rows.sort(key=lambda r: order_key(seed, r["id"]))
    chosen = rows[:limit] if limit is not None else rows
    if not chosen:
        return BuildResult(audit_set, 0, _count_items(store, audit_set.id), skipped)
    # The floor's donors: the chosen decision points themselves, plus a few more when they all share one
    # conversation (so there is always another conversation to borrow from when the database has one).
    donors = list(chosen)
    if len({r["conversation_uuid"] for r in donors}) < 2:
        donors += [r for r in rows[len(chosen):] if r["conversation_uuid"] != chosen[0]["conversation_uuid"]][:50]
    targets = TargetLoader(store).load(list(dict.fromkeys([r["id"] for r in chosen] + [r["id"] for r in donors])))
    items = []
    for row in chosen:
        dp_id = row["id"]
        reference = targets[dp_id].expected_content or ""
        items.append(_item_row(audit_set.id, seed, dp_id, row["split"], "reference", reference, reference))
        items.append(_item_row(audit_set.id, seed, dp_id, row["split"], "half_reference", half_reference(reference),
                               reference))
        others = [d for d in donors if d["conversation_uuid"] != row["conversation_uuid"]
                  and (targets[d["id"]].expected_content or "").strip()]
        same_split = [d for d in others if d["split"] == row["split"]]
        pool = same_split or others
        if pool:
            donor = random.Random(order_key(seed, dp_id, "floor")).choice(sorted(pool, key=lambda d: d["id"]))
            items.append(_item_row(audit_set.id, seed, dp_id, row["split"], "other_conversation",
                                   targets[donor["id"]].expected_content or "", reference, donor["id"]))
        else:
            skipped["no other conversation to borrow a floor reply from"] = skipped.get(
                "no other conversation to borrow a floor reply from", 0) + 1
    added = _insert_items(store, items)
    return BuildResult(audit_set, added, _count_items(store, audit_set.id), skipped)
