"""Human baseline campaigns: a seeded sample of decision points, handed out to annotators, answered blind.

A *campaign* is a sample of decision points drawn from a selection (a `DecisionPointFilter`, stored as its
URL query dict) with a seed, optionally stratified by split × action type with proportional allocation.
Each item is answered by `overlap` annotators; a `shared_share` of the items (the *shared* items) goes to
every annotator, so agreement can be measured on them whatever the overlap.

Handing out and answering are written for several annotators at once on one database (several browser
sessions in one Streamlit process, or several processes): every hand-out and every answer is ONE write
transaction (`BEGIN IMMEDIATE`, so the check "is there room on this item?" and the insert that takes the room
cannot interleave with another writer's). WAL and a busy timeout are set by `Store.open`. Invariants:
- a non-shared item never has more than `overlap` live assignments (handed out or answered; a skip gives the
  slot back, so someone else answers it instead);
- an annotator never gets the same item twice (`UNIQUE(item_id, annotator)`);
- an annotator has at most one open assignment per campaign: asking again returns it (a page rerun or a
  browser refresh does not hand out a second item);
- an answer is written once; grading (which may call an LLM) happens *before* the transaction, so the write
  lock is held for milliseconds.

An open assignment left behind (a closed browser) keeps its slot until an admin releases stale assignments
(`release_stale`); an answer submitted after its release is still stored when the item has room, else
refused with a clear error (never silently dropped).
"""

from __future__ import annotations

import dataclasses
import hmac
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from ..grading.actions import parse_action
from ..base.config import ACTION_TYPES, SPLITS, SUBMIT_MESSAGE
from ..base.errors import NemoError
from ..data.filters import DecisionPointFilter
from ..data.store import Store
from ..grading.grade import grade_action, load_target


LIVE = ("assigned", "answered")  # the statuses that hold a slot of an item's overlap
CONFIDENCE_LEVELS = (1, 2, 3, 4, 5)
GRADERS = ("auto", "keyword")  # for message items; `auto` never blocks an answer for want of a key
MAX_NAME = 80
_WS = re.compile(r"\s+")


class CampaignError(NemoError):
    """A campaign that cannot be created or found, or an answer that cannot be stored as given."""


class AlreadySubmitted(CampaignError):
    """The assignment was already answered or skipped (a double click, or a second tab)."""

    hint = "ask for the next item"


class AssignmentTaken(CampaignError):
    """A released (stale) assignment whose slot someone else took before the late answer arrived."""

    hint = "your answer was not stored; ask for your next item"


# ---- small pure helpers ------------------------------------------------------------------------------------
def _now_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def clean_annotator(name: Any) -> str:
    """An annotator's name as stored: trimmed, inner whitespace collapsed; `CampaignError` if empty or long."""
    text = _WS.sub(" ", str(name or "")).strip()
    if not text:
        raise CampaignError("an annotator needs a name", "type the name you annotate under")
    if len(text) > MAX_NAME:
        raise CampaignError(f"an annotator name has at most {MAX_NAME} characters", "use a shorter name")
    return text


def passphrase_ok(expected: str | None, typed: str | None) -> bool:
    """Admin check: open when no passphrase is configured, else a constant-time comparison."""
    if not expected:
        return True
    return hmac.compare_digest((typed or "").encode("utf-8"), expected.encode("utf-8"))


def allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Proportional allocation of `n` draws over strata of the given sizes, by largest remainder
    (Hamilton): every stratum gets floor(n * size / total), the draws left go to the largest remainders
    (ties: the stratum listed first). Sums to min(n, total) exactly and never exceeds a stratum's size."""
    total = sum(sizes.values())
    n = min(max(int(n), 0), total)
    if total == 0 or n == 0:
        return dict.fromkeys(sizes, 0)
    out = {k: n * s // total for k, s in sizes.items()}  # integer arithmetic: ties are exact, not float noise
    left = n - sum(out.values())
    names = list(sizes)
    order = sorted(names, key=lambda k: (-((n * sizes[k]) % total), names.index(k)))
    for k in order[:left]:
        out[k] += 1
    return out


def stratum_of(split: str, action_type: str) -> str:
    return f"{split} × {action_type}"


# ---- campaigns -----------------------------------------------------------------------------------------
@dataclass
class Campaign:
    id: int
    name: str
    selection: dict[str, str]
    sample_size: int
    seed: int
    stratify: bool
    overlap: int
    shared_share: float
    instructions: str
    reveal_after_submit: bool
    grader: str
    n_items: int
    n_population: int
    allocation: dict[str, Any]
    status: str
    created_at: str

    @property
    def filter(self) -> DecisionPointFilter:
        return DecisionPointFilter.from_query(self.selection)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Campaign":
        return cls(
            id=row["id"], name=row["name"], selection=orjson.loads(row["selection"]), sample_size=row["sample_size"],
            seed=row["seed"], stratify=bool(row["stratify"]), overlap=row["overlap"],
            shared_share=row["shared_share"], instructions=row["instructions"] or "",
            reveal_after_submit=bool(row["reveal_after_submit"]), grader=row["grader"], n_items=row["n_items"],
            n_population=row["n_population"], allocation=orjson.loads(row["allocation"] or "{}"),
            status=row["status"], created_at=row["created_at"],
        )


@dataclass
class Sample:
    """What `draw_sample` chose: item ids in hand-out order, their strata, which are shared, and the
    columns a campaign item keeps (`info`: id -> split, action_type, expected_tools)."""

    ids: list[str]
    strata: dict[str, str]
    shared: set[str]
    population: int
    allocation: dict[str, dict[str, int]] = field(default_factory=dict)  # stratum -> {"population", "drawn"}
    info: dict[str, dict[str, Any]] = field(default_factory=dict)


def _info(store: Store, rowids: list[int]) -> dict[int, dict[str, Any]]:
    return {rid: {"id": dp_id, "split": split, "action_type": action_type, "expected_tools": expected_tools}
            for rid, dp_id, split, action_type, expected_tools in store.fetch_in(
                "SELECT rowid, id, split, action_type, expected_tools FROM decision_points WHERE rowid IN ({marks})",
                rowids)}


def _pools(store: Store, flt: DecisionPointFilter) -> dict[str, list[int]]:
    """The rowids the filter matches in each split × action type stratum (in `SPLITS` × `ACTION_TYPES` order,
    each in rowid order): what a campaign draws from."""
    flt.validate()
    pools: dict[str, list[int]] = {}
    for split in SPLITS:
        if flt.split and flt.split != split:
            continue
        for action_type in ACTION_TYPES:
            if flt.action_type and flt.action_type != action_type:
                continue
            pools[stratum_of(split, action_type)] = store.rowids(
                dataclasses.replace(flt, split=split, action_type=action_type))
    return pools


def selection_sizes(store: Store, flt: DecisionPointFilter) -> dict[str, int]:
    """How many decision points each stratum of a selection holds, before a campaign is created from it: the
    same pools `draw_sample` draws from, so the sum is exactly the campaign's `n_population` ("drawn from N
    matching"). About 1-2 s at 1.2 M decision points (the pools are read off the split × action type index)."""
    return {key: len(pool) for key, pool in _pools(store, flt).items()}


def draw_sample(store: Store, flt: DecisionPointFilter, n: int, seed: int, *, stratify: bool = False,
                shared_share: float = 0.0) -> Sample:
    """A reproducible sample of `n` decision points from the filter (all of them when fewer match).

    One `random.Random(seed)` does everything, in a fixed order, so the same store, filter and seed always
    give the same items in the same order. The pool of each split × action type stratum (in `SPLITS` ×
    `ACTION_TYPES` order) is the filter's matches in rowid order (`Store.rowids`, the order of `store.ids`).
    Stratified: `n` allocated proportionally (`allocate`), a simple random sample in each stratum; else a
    simple random sample of all the pools joined. The items are then shuffled into one hand-out order, and
    the first round(shared_share × n) of that order are the shared items (a random subset)."""
    rng = random.Random(int(seed))
    allocation: dict[str, dict[str, int]] = {}
    pools = _pools(store, flt)
    stratum_of_row: dict[int, str] = {}
    population = sum(len(p) for p in pools.values())
    chosen: list[int] = []
    if stratify:
        counts = allocate({k: len(p) for k, p in pools.items()}, n)
        for key, pool in pools.items():
            picked = rng.sample(pool, counts[key])
            chosen.extend(picked)
            stratum_of_row.update(dict.fromkeys(picked, key))
            allocation[key] = {"population": len(pool), "drawn": counts[key]}
    else:
        everything = [(rowid, key) for key, pool in pools.items() for rowid in pool]
        picked = rng.sample(everything, min(max(int(n), 0), len(everything)))
        for key, pool in pools.items():
            allocation[key] = {"population": len(pool), "drawn": 0}
        for rowid, key in picked:
            chosen.append(rowid)
            stratum_of_row[rowid] = key
            allocation[key]["drawn"] += 1
    rng.shuffle(chosen)
    info = _info(store, chosen)
    ids = [info[r]["id"] for r in chosen]
    n_shared = round(len(ids) * float(shared_share))
    return Sample(ids, {info[r]["id"]: stratum_of_row[r] for r in chosen}, set(ids[:n_shared]), population,
                  allocation, {info[r]["id"]: info[r] for r in chosen})


def create_campaign(store: Store, name: str, *, selection: DecisionPointFilter | dict[str, Any] | None = None,
                    sample_size: int, seed: int = 0, stratify: bool = False, overlap: int = 1,
                    shared_share: float = 0.0, instructions: str = "", reveal_after_submit: bool = False,
                    grader: str = "auto") -> Campaign:
    """Draw the sample and store the campaign with its items (one transaction)."""
    name = _WS.sub(" ", str(name or "")).strip()
    if not name:
        raise CampaignError("a campaign needs a name")
    flt = selection if isinstance(selection, DecisionPointFilter) else DecisionPointFilter.from_query(selection or {})
    if int(sample_size) < 1:
        raise CampaignError("the sample size must be at least 1")
    if int(overlap) < 1:
        raise CampaignError("the overlap (annotators per item) must be at least 1")
    if not 0.0 <= float(shared_share) <= 1.0:
        raise CampaignError("the shared share must be between 0 and 1")
    if grader not in GRADERS:
        raise CampaignError(f"unknown grader {grader!r}", "choose auto (the LLM grader when a key is configured, "
                            "else keyword) or keyword")
    if store.scalar("SELECT 1 FROM campaigns WHERE name = ?", (name,)):
        raise CampaignError(f"a campaign named {name!r} exists already", "choose another name")
    sample = draw_sample(store, flt, int(sample_size), int(seed), stratify=stratify, shared_share=shared_share)
    if not sample.ids:
        raise CampaignError("no decision point matches this selection", "widen the selection")
    info = sample.info
    with store.transaction() as conn:
        if conn.execute("SELECT 1 FROM campaigns WHERE name = ?", (name,)).fetchone():
            raise CampaignError(f"a campaign named {name!r} exists already", "choose another name")
        cid = conn.execute(
            "INSERT INTO campaigns(name, selection, sample_size, seed, stratify, overlap, shared_share, instructions, "
            "reveal_after_submit, grader, n_items, n_population, allocation, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, _dumps(flt.to_query()), int(sample_size), int(seed), int(bool(stratify)), int(overlap),
             float(shared_share), instructions or "", int(bool(reveal_after_submit)), grader, len(sample.ids),
             sample.population, _dumps(sample.allocation), _now_iso(time.time())),
        ).lastrowid
        conn.executemany(
            "INSERT INTO campaign_items(campaign_id, position, dp_id, split, action_type, expected_tools, stratum, "
            "shared) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(cid, pos, dp_id, info[dp_id]["split"], info[dp_id]["action_type"], info[dp_id]["expected_tools"],
              sample.strata[dp_id], int(dp_id in sample.shared)) for pos, dp_id in enumerate(sample.ids)],
        )
    return get_campaign(store, cid)


def get_campaign(store: Store, campaign: int | str) -> Campaign:
    """A campaign by id or name."""
    return Campaign.from_row(store.named_row("campaigns", campaign, CampaignError(
        f"no campaign {campaign!r}", "create one on the Campaigns page")))


def list_campaigns(store: Store, *, status: str | None = None) -> list[Campaign]:
    if status:
        rows = store.query("SELECT * FROM campaigns WHERE status = ? ORDER BY id DESC", (status,))
    else:
        rows = store.query("SELECT * FROM campaigns ORDER BY id DESC")
    return [Campaign.from_row(r) for r in rows]


def set_status(store: Store, campaign_id: int, status: str) -> None:
    if status not in ("open", "closed"):
        raise CampaignError(f"unknown campaign status {status!r}", "open or closed")
    with store.transaction() as conn:
        conn.execute("UPDATE campaigns SET status = ? WHERE id = ?", (status, campaign_id))


def delete_campaign(store: Store, campaign_id: int) -> dict[str, int]:
    """Delete a campaign with its items and every answer, in one transaction; what was deleted.

    SQLite does not enforce the tables' foreign keys unless asked per connection, so the rows are
    deleted explicitly. Runs saved from the campaign's answers are runs of their own and stay."""
    get_campaign(store, campaign_id)  # an unknown id: CampaignError with the usual message
    with store.transaction() as conn:
        n_answers = conn.execute("DELETE FROM campaign_answers WHERE campaign_id = ?", (campaign_id,)).rowcount
        n_items = conn.execute("DELETE FROM campaign_items WHERE campaign_id = ?", (campaign_id,)).rowcount
        conn.execute("DELETE FROM campaigns WHERE id = ?", (campaign_id,))
    return {"items": n_items, "answers": n_answers}


def items(store: Store, campaign_id: int) -> list[dict[str, Any]]:
    return store.query("SELECT * FROM campaign_items WHERE campaign_id = ? ORDER BY position", (campaign_id,))


# ---- handing out ---------------------------------------------------------------------------------------
@dataclass
class Assignment:
    """One item handed to one annotator (and, once submitted, their answer)."""

    id: int
    campaign_id: int
    item_id: int
    dp_id: str
    annotator: str
    status: str
    shown_at: str
    shown_ts: float
    position: int = 0
    shared: bool = False
    action: dict[str, Any] | None = None
    breakdown: dict[str, Any] | None = None
    reward: float | None = None
    note: str | None = None
    confidence: int | None = None
    skip_reason: str | None = None
    submitted_at: str | None = None
    seconds: float | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Assignment":
        return cls(
            id=row["id"], campaign_id=row["campaign_id"], item_id=row["item_id"], dp_id=row["dp_id"],
            annotator=row["annotator"], status=row["status"], shown_at=row["shown_at"], shown_ts=row["shown_ts"],
            position=row.get("position") or 0, shared=bool(row.get("shared")),
            action=orjson.loads(row["action"]) if row.get("action") else None,
            breakdown=orjson.loads(row["breakdown"]) if row.get("breakdown") else None,
            reward=row.get("reward"), note=row.get("note"), confidence=row.get("confidence"),
            skip_reason=row.get("skip_reason"), submitted_at=row.get("submitted_at"), seconds=row.get("seconds"),
        )


_ASSIGNMENT_SQL = ("SELECT a.*, i.position, i.shared FROM campaign_answers AS a JOIN campaign_items AS i "
                   "ON i.id = a.item_id")


def get_assignment(store: Store, assignment_id: int) -> Assignment:
    rows = store.query(f"{_ASSIGNMENT_SQL} WHERE a.id = ?", (assignment_id,))
    if not rows:
        raise CampaignError(f"no assignment #{assignment_id}")
    return Assignment.from_row(rows[0])


# The next item for annotator :who — shared items first, in the sample's order (agreement accrues even if
# people stop early), then the items with the fewest live assignments (coverage before overlap), then order.
_NEXT_SQL = """
SELECT i.id, i.dp_id FROM campaign_items AS i
WHERE i.campaign_id = :cid
  AND NOT EXISTS (SELECT 1 FROM campaign_answers AS mine WHERE mine.item_id = i.id AND mine.annotator = :who)
  AND (i.shared = 1 OR (SELECT count(*) FROM campaign_answers AS a
                        WHERE a.item_id = i.id AND a.status IN ('assigned', 'answered')) < :overlap)
ORDER BY i.shared DESC,
         CASE WHEN i.shared = 1 THEN 0 ELSE (SELECT count(*) FROM campaign_answers AS a
                                             WHERE a.item_id = i.id AND a.status IN ('assigned', 'answered')) END,
         i.position
LIMIT 1
"""


def next_item(store: Store, campaign_id: int, annotator: str, *, now: float | None = None) -> Assignment | None:
    """The annotator's current item: their open assignment if they have one, else a new one handed out in
    this same write transaction (so no other writer can take the last slot between the check and the
    insert). None when their queue is empty (or the campaign is closed)."""
    who = clean_annotator(annotator)
    ts = time.time() if now is None else float(now)
    with store.transaction() as conn:
        row = conn.execute("SELECT overlap, status FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
        if row is None:
            raise CampaignError(f"no campaign #{campaign_id}")
        overlap, status = row
        open_id = conn.execute(
            "SELECT id FROM campaign_answers WHERE campaign_id = ? AND annotator = ? AND status = 'assigned' "
            "ORDER BY id LIMIT 1", (campaign_id, who)).fetchone()
        if open_id is not None:
            assignment_id = open_id[0]
        elif status != "open":
            return None
        else:
            found = conn.execute(_NEXT_SQL, {"cid": campaign_id, "who": who, "overlap": overlap}).fetchone()
            if found is None:
                return None
            assignment_id = conn.execute(
                "INSERT INTO campaign_answers(campaign_id, item_id, dp_id, annotator, status, shown_at, shown_ts) "
                "VALUES (?, ?, ?, ?, 'assigned', ?, ?)", (campaign_id, found[0], found[1], who, _now_iso(ts), ts),
            ).lastrowid
    return get_assignment(store, assignment_id)


def _take_back(conn: Any, assignment_id: int, who: str) -> tuple:
    """The assignment row for a submission, checked: it is this annotator's and not yet submitted. A
    released assignment is taken back when its item still has room (else `CampaignError`)."""
    row = conn.execute(
        "SELECT a.status, a.shown_ts, a.item_id, i.shared, c.overlap FROM campaign_answers AS a "
        "JOIN campaign_items AS i ON i.id = a.item_id JOIN campaigns AS c ON c.id = a.campaign_id "
        "WHERE a.id = ? AND a.annotator = ?", (assignment_id, who)).fetchone()
    if row is None:
        raise CampaignError(f"assignment #{assignment_id} is not {who}'s", "ask for your next item")
    status, shown_ts, item_id, shared, overlap = row
    if status in ("answered", "skipped"):
        raise AlreadySubmitted(f"this item was already {status} by {who}")
    if status == "released":
        live = conn.execute("SELECT count(*) FROM campaign_answers WHERE item_id = ? AND status IN "
                            "('assigned', 'answered')", (item_id,)).fetchone()[0]
        if not shared and live >= overlap:
            raise AssignmentTaken("this item was handed to someone else after your assignment was released as stale",
                                "your answer was not stored; ask for your next item")
    return row


def submit_answer(store: Store, assignment_id: int, annotator: str, action: Any, *, note: str | None = None,
                  confidence: int | None = None, now: float | None = None, llm: Any = None) -> Assignment:
    """Grade the action (outside any transaction: an LLM grader may take seconds), then store the answer,
    its breakdown and the time since the item was shown, in one transaction. `ActionError` for an action
    in no accepted form; `AlreadySubmitted` for a second submission."""
    who = clean_annotator(annotator)
    act = parse_action(action)
    if confidence is not None and int(confidence) not in CONFIDENCE_LEVELS:
        raise CampaignError(f"confidence is one of {CONFIDENCE_LEVELS}, or none")
    current = get_assignment(store, assignment_id)
    if current.annotator != who:
        raise CampaignError(f"assignment #{assignment_id} is not {who}'s", "ask for your next item")
    if current.status in ("answered", "skipped"):
        raise AlreadySubmitted(f"this item was already {current.status} by {who}")
    grader = store.scalar("SELECT grader FROM campaigns WHERE id = ?", (current.campaign_id,)) or "auto"
    target = load_target(store, current.dp_id)
    breakdown = grade_action(store, target, act, grader="keyword" if grader == "keyword" else "auto", llm=llm)
    ts = time.time() if now is None else float(now)
    stored_action = act.to_json()
    submitted_name = act.name if act.type == "function_call" else SUBMIT_MESSAGE
    with store.transaction() as conn:
        _status, shown_ts, *_ = _take_back(conn, assignment_id, who)
        conn.execute(
            "UPDATE campaign_answers SET status = 'answered', action = ?, submitted_type = ?, submitted_name = ?, "
            "breakdown = ?, reward = ?, action_type_match = ?, name_match = ?, arg_match = ?, grader = ?, reason = ?, "
            "note = ?, confidence = ?, submitted_at = ?, seconds = ? WHERE id = ?",
            (_dumps(stored_action), act.type, submitted_name, _dumps(breakdown.to_json()), breakdown.reward,
             breakdown.action_type_match, breakdown.name_match, breakdown.arg_match, breakdown.grader,
             breakdown.reason, (note or "").strip() or None, None if confidence is None else int(confidence),
             _now_iso(ts), max(ts - shown_ts, 0.0), assignment_id),
        )
    return get_assignment(store, assignment_id)


def skip_item(store: Store, assignment_id: int, annotator: str, reason: str, *, now: float | None = None) -> Assignment:
    """Skip with a reason (required: a skip without one teaches nothing). The slot goes back to the item,
    so another annotator answers it; this annotator is never handed it again."""
    who = clean_annotator(annotator)
    reason = (reason or "").strip()
    if not reason:
        raise CampaignError("a skip needs a reason", "say why this item cannot be answered")
    ts = time.time() if now is None else float(now)
    with store.transaction() as conn:
        _status, shown_ts, *_ = _take_back(conn, assignment_id, who)
        conn.execute("UPDATE campaign_answers SET status = 'skipped', skip_reason = ?, submitted_at = ?, seconds = ? "
                     "WHERE id = ?", (reason[:2000], _now_iso(ts), max(ts - shown_ts, 0.0), assignment_id))
    return get_assignment(store, assignment_id)


def release_stale(store: Store, campaign_id: int, older_than_minutes: float, *, now: float | None = None) -> int:
    """Give back the slots of items handed out more than `older_than_minutes` ago and never answered (an
    annotator who closed the browser). Returns how many were released."""
    ts = time.time() if now is None else float(now)
    with store.transaction() as conn:
        return conn.execute(
            "UPDATE campaign_answers SET status = 'released' WHERE campaign_id = ? AND status = 'assigned' "
            "AND shown_ts < ?", (campaign_id, ts - float(older_than_minutes) * 60)).rowcount


# ---- progress ------------------------------------------------------------------------------------------
@dataclass
class AnnotatorProgress:
    annotator: str
    answered: int
    skipped: int
    open: int
    remaining: int  # items this annotator could still be handed now (open one included)

    @property
    def done(self) -> int:
        return self.answered + self.skipped

    @property
    def total(self) -> int:
        return self.done + self.remaining

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass
class CampaignProgress:
    n_items: int
    n_shared: int
    overlap: int
    annotators: list[AnnotatorProgress]
    answers: int
    skips: int
    items_answered: int  # items with at least one answer
    target_answers: int  # non-shared items × overlap + shared items × max(1, annotators)

    @property
    def done(self) -> int:
        return min(self.answers, self.target_answers)

    @property
    def fraction(self) -> float:
        return self.done / self.target_answers if self.target_answers else 1.0


def answers_signature(store: Store, campaign_id: int) -> tuple:
    """Changes exactly when an answer or a skip is submitted: the key under which a page may keep a campaign's
    results (summarising 40,000 answers takes seconds)."""
    row = store.query("SELECT count(*) AS n, max(submitted_at) AS last, sum(status = 'answered') AS answered "
                      "FROM campaign_answers WHERE campaign_id = ?", (campaign_id,))[0]
    return tuple(row.values())


def remaining_for(store: Store, campaign_id: int, annotator: str) -> int:
    """How many items this annotator could still be handed now, their open item included."""
    open_ = store.scalar("SELECT count(*) FROM campaign_answers WHERE campaign_id = ? AND annotator = ? "
                         "AND status = 'assigned'", (campaign_id, annotator)) or 0
    overlap = store.scalar("SELECT overlap FROM campaigns WHERE id = ?", (campaign_id,)) or 1
    available = store.scalar(
        "SELECT count(*) FROM campaign_items AS i WHERE i.campaign_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM campaign_answers AS m WHERE m.item_id = i.id AND m.annotator = ?) AND (i.shared = 1 OR "
        "(SELECT count(*) FROM campaign_answers AS a WHERE a.item_id = i.id AND a.status IN ('assigned', 'answered')) "
        "< ?)", (campaign_id, annotator, overlap)) or 0
    return open_ + available


def annotator_progress(store: Store, campaign_id: int, annotator: str) -> AnnotatorProgress:
    who = clean_annotator(annotator)
    counts = {r["status"]: r["n"] for r in store.query(
        "SELECT status, count(*) AS n FROM campaign_answers WHERE campaign_id = ? AND annotator = ? GROUP BY status",
        (campaign_id, who))}
    return AnnotatorProgress(who, counts.get("answered", 0), counts.get("skipped", 0), counts.get("assigned", 0),
                             remaining_for(store, campaign_id, who))


def progress(store: Store, campaign_id: int) -> CampaignProgress:
    """Progress of the campaign and of everyone who has started it. Two queries and one pass in Python
    (per-annotator SQL counting was O(items) per annotator: 1.2 s for 10 annotators on 20,000 items)."""
    campaign = get_campaign(store, campaign_id)
    item_rows = store.query("SELECT id, shared FROM campaign_items WHERE campaign_id = ?", (campaign_id,))
    answer_rows = store.query("SELECT item_id, annotator, status FROM campaign_answers WHERE campaign_id = ?",
                              (campaign_id,))
    live: Counter = Counter(r["item_id"] for r in answer_rows if r["status"] in LIVE)
    open_items = {r["id"] for r in item_rows if r["shared"] or live[r["id"]] < campaign.overlap}
    held: dict[str, set[int]] = defaultdict(set)
    by_status: dict[str, Counter] = defaultdict(Counter)
    for r in answer_rows:
        held[r["annotator"]].add(r["item_id"])
        by_status[r["annotator"]][r["status"]] += 1
    people = [
        AnnotatorProgress(name, by_status[name]["answered"], by_status[name]["skipped"], by_status[name]["assigned"],
                          by_status[name]["assigned"] + len(open_items - held[name]))
        for name in sorted(held)
    ]
    n_shared = sum(1 for r in item_rows if r["shared"])
    statuses = Counter(r["status"] for r in answer_rows)
    items_answered = len({r["item_id"] for r in answer_rows if r["status"] == "answered"})
    target = (campaign.n_items - n_shared) * campaign.overlap + n_shared * max(1, len(people))
    return CampaignProgress(campaign.n_items, n_shared, campaign.overlap, people, statuses["answered"],
                            statuses["skipped"], items_answered, target)


def answers(store: Store, campaign_id: int, *, annotator: str | None = None,
            statuses: tuple[str, ...] = ("answered", "skipped")) -> list[dict[str, Any]]:
    """Submitted rows (with the item's split, expected action type and tools, shared flag), in order."""
    marks = ",".join("?" * len(statuses))
    sql = (f"SELECT a.id, a.dp_id, a.annotator, a.status, a.action, a.submitted_type, a.submitted_name, a.breakdown, "
           f"a.reward, a.action_type_match, a.name_match, a.arg_match, a.grader, a.reason, a.note, a.confidence, "
           f"a.skip_reason, a.shown_at, a.submitted_at, a.seconds, i.split, i.action_type, i.expected_tools, "
           f"i.stratum, i.shared, i.position FROM campaign_answers AS a JOIN campaign_items AS i ON i.id = a.item_id "
           f"WHERE a.campaign_id = ? AND a.status IN ({marks})")
    params: list[Any] = [campaign_id, *statuses]
    if annotator is not None:
        sql += " AND a.annotator = ?"
        params.append(annotator)
    return store.query(sql + " ORDER BY i.position, a.annotator", params)
