"""What the demo database ships besides the data, so every page has content on first start.

Without it the Runs, Failures, Compare, Campaigns and Grader audit pages are empty until someone finds a
model and a key, and the debugging half of the workbench stays invisible to a newcomer. Added when the demo
database is built (`ensure_full_demo_db`, which the app and the CLI use), offline and deterministic:

- a run of each baseline policy (`runs/policies.py`, seed `BASELINE_SEED`) over every demo decision point,
  named `baseline-<policy>`, graded with the keyword grader (never the LLM grader, whatever key is set) by
  the same `run_model` that runs models;
- a small campaign (`CAMPAIGN_NAME`) answered by three *synthetic* annotators: no person answered it. Each
  answer is made by `synthetic_answer` from the item's expected action, changed at random with a fixed seed
  (another tool, a missing argument, half of the reply, a stock reply), with made-up times and confidences,
  so the human baseline page shows agreement and disagreements. data/demo/README.md says so too;
- a calibration audit set (`AUDIT_SET_NAME`: references, half references and replies borrowed from another
  conversation) with its keyword scores; LLM scores are left to whoever has a key.

Layer: this needs runs and people, so it lives here, and `data/demo.py` takes it as a `DemoContent` hook.
Bump `CONTENT_VERSION` when what is added changes: a demo database holding another version is rebuilt.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from ..base.config import DEMO_DB, DEMO_DIR
from ..data import demo as demo_data
from ..data.demo import DemoContent
from ..data.store import Store
from ..runs.model_runner import run_model, select_ids
from ..runs.policies import POLICIES, POLITE_REPLY
from ..runs.policy_runner import PolicyRunner, describe
from . import campaigns as C
from .audit.build import build_audit_set
from .audit.sets import half_reference

CONTENT_VERSION = "1"
BASELINE_SEED = 0
RUN_PREFIX = "baseline-"
CAMPAIGN_NAME = "demo campaign (synthetic annotators)"
CAMPAIGN_SEED = 18
CAMPAIGN_SIZE = 16
ANNOTATORS = ("synthetic-annotator-1", "synthetic-annotator-2", "synthetic-annotator-3")
SYNTHETIC_NOTE = "synthetic answer (demo data): no person wrote it"
AUDIT_SET_NAME = "demo calibration"
AUDIT_LIMIT = 20


def baseline_run_name(policy: str) -> str:
    return RUN_PREFIX + policy


def add_baseline_runs(store: Store) -> None:
    """One run per baseline policy over every decision point, in store order, one at a time (so the stored
    rows are the same on every build), graded by keywords only."""
    ids = select_ids(store, None)
    for name in POLICIES:
        runner = PolicyRunner(name, seed=BASELINE_SEED)
        run_model(store, runner, ids, run_name=baseline_run_name(name), grader="keyword", concurrency=1,
                  settings={"demo": True, **describe(runner)})


def synthetic_answer(dp: Any, rng: random.Random) -> dict[str, Any]:
    """A made-up annotator's answer: the expected action, changed at random (see the module docstring)."""
    if dp.action_type == "message":
        reference = (dp.expected_content or "").strip()
        roll = rng.random()
        if not reference or roll >= 0.85:
            return {"type": "message", "content": POLITE_REPLY}
        return {"type": "message", "content": reference if roll < 0.45 else half_reference(reference)}
    call = dp.expected_calls[0]
    if call.name is None:
        return {"type": "message", "content": POLITE_REPLY}
    arguments = call.arguments if call.arguments is not None else call.arguments_raw
    roll = rng.random()
    others = [n for n in dp.toolset.names if n != call.name]
    if roll >= 0.85 and others:  # a plausible wrong tool, with the right arguments
        return {"type": "function_call", "name": rng.choice(others), "arguments": arguments}
    if roll >= 0.7 and isinstance(arguments, dict) and arguments:  # forgot one argument
        dropped = rng.choice(sorted(arguments))
        return {"type": "function_call", "name": call.name,
                "arguments": {k: v for k, v in arguments.items() if k != dropped}}
    return {"type": "function_call", "name": call.name, "arguments": arguments}


def add_campaign(store: Store, *, now: float | None = None) -> C.Campaign:
    """The demo campaign, answered by the synthetic annotators in turn until their queues are empty; the
    third skips the first item it is handed (a skip has a reason, and the item goes to someone else)."""
    campaign = C.create_campaign(
        store, CAMPAIGN_NAME, sample_size=CAMPAIGN_SIZE, seed=CAMPAIGN_SEED, stratify=True, overlap=2,
        shared_share=0.25, reveal_after_submit=True, grader="keyword",
        instructions="Demo only: every answer in this campaign was made by a script from the expected action "
                     "(see data/demo/README.md). No person answered it.")
    clock = (time.time() if now is None else now) - 3600.0  # answered "in the last hour"
    skipped = False
    active = list(ANNOTATORS)
    while active:
        for who in list(active):
            assignment = C.next_item(store, campaign.id, who, now=clock)
            if assignment is None:
                active.remove(who)
                continue
            rng = random.Random(f"{CAMPAIGN_SEED}:{who}:{assignment.dp_id}")
            clock += rng.uniform(15.0, 120.0)
            if who == ANNOTATORS[-1] and not skipped:
                C.skip_item(store, assignment.id, who, "synthetic skip (demo data): not sure which tool fits",
                            now=clock)
                skipped = True
                continue
            dp = store.get(assignment.dp_id)
            C.submit_answer(store, assignment.id, who, synthetic_answer(dp, rng), note=SYNTHETIC_NOTE,
                            confidence=rng.choice(C.CONFIDENCE_LEVELS[2:]), now=clock)
    return C.get_campaign(store, campaign.id)


def add_demo_content(store: Store) -> None:
    add_baseline_runs(store)
    add_campaign(store)
    build_audit_set(store, "calibration", name=AUDIT_SET_NAME, limit=AUDIT_LIMIT)


DEMO_CONTENT = DemoContent(version=CONTENT_VERSION, add=add_demo_content)


def ensure_full_demo_db(path: Path = DEMO_DB, src: Path = DEMO_DIR, *, rebuild: bool = False) -> Path:
    """The demo database as the app and the CLI ship it: the data plus this module's runs, campaign and audit
    set (rebuilt when it lacks them, or holds another `CONTENT_VERSION` of them)."""
    return demo_data.ensure_demo_db(path, src, rebuild=rebuild, content=DEMO_CONTENT)
