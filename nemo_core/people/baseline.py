"""The human baseline of a campaign: scores with bootstrap CIs, time per item, inter-annotator agreement,
the items where humans disagree with the reference, and exports.

Everything here reads the campaign's stored answers (`campaigns.answers`) and is pure from there on
(`results_from_rows`), so the statistics are tested on hand-made rows. The bootstrap is seeded with the
campaign's seed: the same answers always give the same intervals.

Definitions (shown on the Campaigns page):
- reward: the stored breakdown's reward of each answer (skips are not scored; an ungradeable reference
  scores None and is counted beside the mean, never as 0). Overall, by split and by action type, each item
  counts once (the mean of its answers) and the bootstrap resamples items; per annotator, their answers;
- tool label of an answer: the called tool's name, or `submit_message` for a message (SPEC §3: a message is a
  call of submit_message), so "same tool" covers both kinds of action;
- agreement is measured on items answered by at least two annotators: pairwise share of pairs with the same
  action type / same tool; Cohen's kappa when exactly two annotators answered overlapping items, Fleiss'
  kappa (items may have different numbers of raters) when more did; argument agreement of two calls of the
  same tool = keys with equal values / keys in either (SPEC §4's arg_match rule, applied between humans);
- an answer disagrees with the reference when its tool label is not one the reference used (a message
  where a call was expected, another tool, or a call where a message was expected).
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import orjson

from .campaigns import Campaign, answers, get_campaign
from ..base.config import SUBMIT_MESSAGE
from ..base.metrics import MeanCI, cohen_kappa, fleiss_kappa_labels, mean_ci, paired_difference_ci
from ..grading.reward import values_equal
from ..data.store import Store
from ..runs.grade_file import grade_file
from ..runs.run import get_run, unique_run_name


@dataclass
class TimeStats:
    n: int
    median: float | None
    mean: float | None

    @classmethod
    def of(cls, seconds: list[float | None]) -> "TimeStats":
        xs = [float(s) for s in seconds if s is not None]
        return cls(len(xs), statistics.median(xs) if xs else None, sum(xs) / len(xs) if xs else None)


@dataclass
class Agreement:
    """Inter-annotator agreement on the items answered by two annotators or more."""

    n_items: int = 0
    n_pairs: int = 0
    annotators: list[str] = field(default_factory=list)
    same_type: float | None = None  # share of pairs with the same action type
    same_tool: float | None = None  # share of pairs with the same tool label
    kappa_method: str | None = None  # "cohen" | "fleiss"
    kappa_type: float | None = None
    kappa_tool: float | None = None
    arg_agreement: float | None = None  # mean over pairs of calls of the same tool
    n_arg_pairs: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Disagreement:
    """One item and how its answers relate to the reference."""

    dp_id: str
    split: str
    action_type: str
    expected: list[str]
    n_answers: int
    n_disagree: int
    mean_reward: float | None
    labels: dict[str, int]
    consensus: str | None  # the label every disagreeing answer shares, when they all share one (and >= 2)

    @property
    def share(self) -> float:
        return self.n_disagree / self.n_answers if self.n_answers else 0.0


@dataclass
class BaselineResults:
    campaign: Campaign | None
    n_answers: int
    n_skips: int
    overall: MeanCI
    by_split: dict[str, MeanCI]
    by_action_type: dict[str, MeanCI]
    by_annotator: dict[str, MeanCI]
    time_overall: TimeStats
    time_by_annotator: dict[str, TimeStats]
    skips_by_annotator: dict[str, int]
    agreement: Agreement
    disagreements: list[Disagreement]
    seconds: list[float] = field(default_factory=list)  # time per answered item, for a histogram
    # the same, per annotator (the page's time plot is split by annotator)
    seconds_by_annotator: dict[str, list[float]] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        """Every score as one row (group, value, mean, CI, n): what the page shows and the CLI could print."""
        rows = [{"group": "overall", "value": "all", **self.overall.to_json()}]
        for group, values in (("split", self.by_split), ("action type", self.by_action_type),
                              ("annotator", self.by_annotator)):
            rows.extend({"group": group, "value": k, **v.to_json()} for k, v in values.items())
        return rows


# ---- pure pieces --------------------------------------------------------------------------------------------
def tool_label(row: dict[str, Any]) -> str | None:
    """The tool an answer called (`submit_message` for a message); None for a skip."""
    if row.get("status", "answered") != "answered":
        return None
    if row.get("submitted_type") == "message":
        return SUBMIT_MESSAGE
    return row.get("submitted_name")


def expected_labels(row: dict[str, Any]) -> list[str]:
    if row["action_type"] == "message":
        return [SUBMIT_MESSAGE]
    return [n for n in (row.get("expected_tools") or "").split(" ") if n]


def argument_agreement(a: Any, b: Any) -> float:
    """Keys with equal values / keys in either (SPEC §4's arg_match between two submitted argument objects);
    1.0 when both are empty, 0.0 when either is not an object."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return 0.0
    keys = set(a) | set(b)
    if not keys:
        return 1.0
    return sum(1 for k in keys if k in a and k in b and values_equal(a[k], b[k])) / len(keys)


def _action(row: dict[str, Any]) -> dict[str, Any] | None:
    value = row.get("action")
    if isinstance(value, (str, bytes)):
        return orjson.loads(value)
    return value


def agreement_of(rows: list[dict[str, Any]]) -> Agreement:
    """Agreement over answered rows (`dp_id`, `annotator`, `submitted_type`, `submitted_name`, `action`)."""
    by_item: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        if row.get("status", "answered") == "answered":
            by_item[row["dp_id"]][row["annotator"]] = row
    overlapping = {k: v for k, v in by_item.items() if len(v) >= 2}
    out = Agreement(n_items=len(overlapping))
    if not overlapping:
        return out
    people = sorted({a for item in overlapping.values() for a in item})
    out.annotators = people
    same_type = same_tool = pairs = 0
    arg_scores: list[float] = []
    for item in overlapping.values():
        for (_, x), (_, y) in combinations(sorted(item.items()), 2):
            pairs += 1
            same_type += x["submitted_type"] == y["submitted_type"]
            same = tool_label(x) == tool_label(y)
            same_tool += same
            if same and x["submitted_type"] == "function_call":
                arg_scores.append(argument_agreement((_action(x) or {}).get("arguments"),
                                                     (_action(y) or {}).get("arguments")))
    out.n_pairs = pairs
    out.same_type = same_type / pairs
    out.same_tool = same_tool / pairs
    out.arg_agreement = sum(arg_scores) / len(arg_scores) if arg_scores else None
    out.n_arg_pairs = len(arg_scores)
    if len(people) == 2:
        a, b = people
        both = [item for item in overlapping.values() if a in item and b in item]
        out.kappa_method = "cohen"
        out.kappa_type = cohen_kappa([i[a]["submitted_type"] for i in both], [i[b]["submitted_type"] for i in both])
        out.kappa_tool = cohen_kappa([tool_label(i[a]) for i in both], [tool_label(i[b]) for i in both])
    else:
        out.kappa_method = "fleiss"
        out.kappa_type = fleiss_kappa_labels([[r["submitted_type"] for r in i.values()] for i in overlapping.values()])
        out.kappa_tool = fleiss_kappa_labels([[tool_label(r) for r in i.values()] for i in overlapping.values()])
    return out


def disagreements_of(rows: list[dict[str, Any]], limit: int = 50) -> list[Disagreement]:
    """Items with at least one answer that disagrees with the reference, most disagreed first (share, then
    number of answers, then lowest mean reward): candidates for a bad reference."""
    by_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("status", "answered") == "answered":
            by_item[row["dp_id"]].append(row)
    out: list[Disagreement] = []
    for dp_id, item_rows in by_item.items():
        expected = expected_labels(item_rows[0])
        labels = Counter(tool_label(r) or "?" for r in item_rows)
        against = [tool_label(r) for r in item_rows if tool_label(r) not in expected]
        if not against:
            continue
        rewards = [r["reward"] for r in item_rows if r["reward"] is not None]
        consensus = against[0] if len(against) >= 2 and len(set(against)) == 1 else None
        out.append(Disagreement(dp_id, item_rows[0]["split"], item_rows[0]["action_type"], expected, len(item_rows),
                                len(against), sum(rewards) / len(rewards) if rewards else None, dict(labels),
                                consensus))
    out.sort(key=lambda d: (-d.share, -d.n_answers, d.mean_reward if d.mean_reward is not None else 2.0, d.dp_id))
    return out[:limit]


def item_means(answered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per item: its split, expected action type and the mean reward of its graded answers (None
    when none is graded). Answers to the same item are not independent (the item's difficulty is shared),
    so the overall, split and action type scores average each item's answers first and the bootstrap
    resamples items; otherwise an overlap of 3 would count one hard item three times and narrow the CI."""
    by_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in answered:
        by_item[r["dp_id"]].append(r)
    out = []
    for dp_id, rs in by_item.items():
        rewards = [r["reward"] for r in rs if r["reward"] is not None]
        out.append({"dp_id": dp_id, "split": rs[0]["split"], "action_type": rs[0]["action_type"],
                    "reward": sum(rewards) / len(rewards) if rewards else None, "n_answers": len(rs)})
    return out


def results_from_rows(rows: list[dict[str, Any]], *, seed: int, campaign: Campaign | None = None,
                      n_resamples: int = 2000) -> BaselineResults:
    """All the results from submitted rows (`campaigns.answers`); seeded bootstrap (95%). Overall, by split
    and by action type: over items (`item_means`, n = items); per annotator: over their answers."""
    answered = [r for r in rows if r["status"] == "answered"]
    skipped = [r for r in rows if r["status"] == "skipped"]

    def ci(values: list[float | None]) -> MeanCI:
        return mean_ci(values, seed=seed, n_resamples=n_resamples)

    def grouped(units: list[dict[str, Any]], key: str) -> dict[str, MeanCI]:
        groups: dict[str, list[float | None]] = defaultdict(list)
        for r in units:
            groups[r[key]].append(r["reward"])
        return {k: ci(v) for k, v in sorted(groups.items())}

    items = item_means(answered)

    times: dict[str, list[float | None]] = defaultdict(list)
    for r in answered:
        times[r["annotator"]].append(r["seconds"])
    return BaselineResults(
        campaign=campaign,
        n_answers=len(answered),
        n_skips=len(skipped),
        overall=ci([m["reward"] for m in items]),
        by_split=grouped(items, "split"),
        by_action_type=grouped(items, "action_type"),
        by_annotator=grouped(answered, "annotator"),
        time_overall=TimeStats.of([r["seconds"] for r in answered]),
        time_by_annotator={k: TimeStats.of(v) for k, v in sorted(times.items())},
        skips_by_annotator=dict(Counter(r["annotator"] for r in skipped)),
        agreement=agreement_of(answered),
        disagreements=disagreements_of(answered),
        seconds=[float(r["seconds"]) for r in answered if r["seconds"] is not None],
        seconds_by_annotator={k: [float(x) for x in v if x is not None] for k, v in sorted(times.items())},
    )


def campaign_results(store: Store, campaign_id: int) -> BaselineResults:
    campaign = get_campaign(store, campaign_id)
    return results_from_rows(answers(store, campaign_id), seed=campaign.seed, campaign=campaign)


# ---- humans against a model run ------------------------------------------------------------------------------
@dataclass
class RunComparison:
    """The human baseline beside a stored run, on the campaign items both graded (paired)."""

    run_name: str
    n_items: int  # campaign items with a graded human answer
    n_paired: int  # ... that the run also graded
    human: MeanCI
    model: MeanCI
    difference: MeanCI  # model - human, paired bootstrap over items


def compare_with_run(store: Store, campaign_id: int, run: int | str) -> RunComparison:
    """Model minus human reward on the same items (each item's human answers averaged first), with seeded
    bootstrap intervals; items the run did not grade (or graded None) are left out of every figure."""
    campaign = get_campaign(store, campaign_id)
    the_run = get_run(store, run)
    humans = {m["dp_id"]: m["reward"] for m in item_means(answers(store, campaign_id, statuses=("answered",)))
              if m["reward"] is not None}
    ids = list(humans)
    model: dict[str, float] = dict(store.fetch_in(
        "SELECT dp_id, reward FROM predictions WHERE run_id = ? AND reward IS NOT NULL AND dp_id IN ({marks})",
        ids, (the_run.id,)))
    paired = [i for i in ids if i in model]
    h = [humans[i] for i in paired]
    m = [model[i] for i in paired]
    return RunComparison(the_run.name, len(ids), len(paired), mean_ci(h, seed=campaign.seed),
                         mean_ci(m, seed=campaign.seed), paired_difference_ci(m, h, seed=campaign.seed))


# ---- export -------------------------------------------------------------------------------------------------
CSV_COLUMNS = (
    "campaign", "id", "annotator", "status", "split", "expected_action_type", "shared", "submitted_type", "tool",
    "action", "reward", "action_type_match", "name_match", "arg_match", "grader", "reason", "seconds", "note",
    "confidence", "skip_reason", "shown_at", "submitted_at", "breakdown",
)


def export_rows(store: Store, campaign_id: int, *, annotator: str | None = None) -> list[dict[str, Any]]:
    """Every submitted answer and skip of a campaign, flat (what the CSV holds)."""
    name = get_campaign(store, campaign_id).name
    out = []
    for r in answers(store, campaign_id, annotator=annotator):
        out.append({
            "campaign": name, "id": r["dp_id"], "annotator": r["annotator"], "status": r["status"],
            "split": r["split"], "expected_action_type": r["action_type"], "shared": bool(r["shared"]),
            "submitted_type": r["submitted_type"], "tool": tool_label(r), "action": r["action"],
            "reward": r["reward"], "action_type_match": r["action_type_match"], "name_match": r["name_match"],
            "arg_match": r["arg_match"], "grader": r["grader"], "reason": r["reason"],
            # tenths of a second: a timer's 17.412691354751587 claims a precision nobody measured
            "seconds": None if r["seconds"] is None else round(r["seconds"], 1),
            "note": r["note"], "confidence": r["confidence"], "skip_reason": r["skip_reason"],
            "shown_at": r["shown_at"], "submitted_at": r["submitted_at"], "breakdown": r["breakdown"],
        })
    return out


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})
    return buf.getvalue()


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    """The answered rows as `grade` input (`{"id", "action", ...extra}`): `grade` re-grades the file as a run.
    Skips have no action and are left out. One annotator's file grades cleanly; a file of several annotators
    repeats the ids of overlapping items, which `grade` reports as duplicates."""
    lines = []
    for r in rows:
        if r["status"] != "answered":
            continue
        lines.append(orjson.dumps({
            "id": r["id"], "action": orjson.loads(r["action"]), "annotator": r["annotator"], "campaign": r["campaign"],
            "reward": r["reward"], "seconds": r["seconds"], "note": r["note"], "confidence": r["confidence"],
            "submitted_at": r["submitted_at"],
            "breakdown": orjson.loads(r["breakdown"]) if r["breakdown"] else None,
        }).decode())
    return "".join(line + "\n" for line in lines)


def save_as_run(store: Store, campaign_id: int, annotator: str, folder: str | Path, *, llm: Any = None) -> Any:
    """Re-grade one annotator's answers as a `human` run (through the export, exactly as `grade` would):
    messages by the LLM grader when `llm` (an `LLMGrader`) is given, else by keyword overlap."""
    campaign = get_campaign(store, campaign_id)
    path = Path(folder) / f"campaign-{campaign_id}-{annotator}.jsonl".replace("/", "_")
    path.write_text(to_jsonl(export_rows(store, campaign_id, annotator=annotator)), encoding="utf-8")
    name = unique_run_name(store, f"human: {annotator} ({campaign.name})")
    return grade_file(store, path, run_name=name, grader="auto" if llm is not None else "keyword", llm=llm,
                      kind="human")
