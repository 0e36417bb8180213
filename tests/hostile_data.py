"""A workbench database full of hostile names and data, for the tests that check every page keeps them inert
(AppTest: `test_app_hostile.py`; a real browser: `browser/test_hostile_browser.py`).

Every user- or data-supplied string the app shows gets the same payload: a Markdown image, bare URLs (which
GFM autolinks even when escaped), an e-mail address, `<script>`, a `javascript:` link and raw HTML, all
pointing at TEST-NET-3 (203.0.113.0/24, never routed) or `.example`. Each string starts with an alphanumeric
tag naming where it was put, so a test can tell which one leaked.

The campaign's answers and annotator names also carry plain tokens (`SECRET_TOKENS`) that the passphrase
tests look for: none of them may reach a page while the admin passphrase is set and not entered.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nemo_core.people import campaigns as C
from nemo_core.people.attempts import save_attempt
from nemo_core.people.audit.build import build_audit_set
from nemo_core.people.audit.sets import list_audit_sets
from nemo_core.people.audit.scores import next_blind_item, record_human
from nemo_core.people.baseline import save_as_run
from nemo_core.grading.grade import grade_action, load_target
from nemo_core.data.ingest import ingest
from nemo_core.data.store import Store
from nemo_core.runs.uploads import grade_upload

HOST = "203.0.113.9"


def hostile(tag: str) -> str:
    """Every kind of hostile markup in one string, starting with `tag`."""
    return (f"{tag} ![p](http://{HOST}/{tag}.png) http://{HOST}/{tag} www.evil-{tag}.example {tag}@evil.example "
            f"<script>alert('{tag}')</script> [click](javascript:alert(1)) <img src=http://{HOST}/i.png> "
            f"<a href='https://{HOST}/a'>a</a>")


def short_hostile(tag: str) -> str:
    """A hostile name short enough for an annotator (80 characters at most)."""
    return f"{tag} ![p](http://{HOST}/p.png) www.evil.example <b>x</b>"


# What the passphrase guards: annotator names and the text of their answers, notes and skip reasons.
ANNOTATORS = (short_hostile("ZeldaAnn"), "QuinnAnn <script>x</script> http://" + HOST + "/q")
SECRET_TOKENS = ("ZeldaAnn", "QuinnAnn", "SecretAnswerZ", "SecretAnswerQ", "SecretNoteZ", "SecretSkipQ")

HOSTILE_UUID = "hostile-www.evil.example-x@evil.example"
TOOL_NAME = f"get_page ![t](http://{HOST}/t.png) www.evil-tool.example"
PARAM = f"url http://{HOST}/param"
CALL_DP = f"tool_calling/{HOSTILE_UUID}/2"
MESSAGE_DP = f"tool_calling/{HOSTILE_UUID}/4"
RUN_NAME = hostile("RunName")
SET_NAME = hostile("SetName")
CAMPAIGN_NAME = hostile("CampName")
CRAFTED_ID = f"http://{HOST}/crafted www.evil-id.example ![i](http://{HOST}/id.png)"


def hostile_row() -> dict:
    """One `tool_calling` conversation whose every string is hostile: user and assistant text, reasoning,
    a tool with a hostile name, description, parameter name, enum and default, and its results."""
    tool = {"type": "function", "function": {
        "name": TOOL_NAME, "description": hostile("ToolDesc"),
        "parameters": {"type": "object", "properties": {
            PARAM: {"type": "string", "description": hostile("ParamDesc"),
                    "enum": [f"http://{HOST}/enum", "www.evil-enum.example"]},
            "mode": {"type": "string", "description": hostile("ModeDesc"), "default": f"http://{HOST}/default"},
        }, "required": [PARAM]}}}
    return {
        "uuid": HOSTILE_UUID,
        "messages": [
            {"role": "system", "content": ""},
            {"role": "user", "content": hostile("UserText")},
            {"role": "assistant", "content": "", "reasoning_content": hostile("Reasoning"),
             "tool_calls": [{"type": "function", "function": {
                 "name": TOOL_NAME, "arguments": {PARAM: f"http://{HOST}/arg", "mode": hostile("ArgValue")}}}]},
            {"role": "tool", "content": hostile("ToolResult")},
            {"role": "assistant", "content": hostile("Reply"), "tool_calls": None, "reasoning_content": "done"},
        ],
        "tools": [tool, {"type": "function", "function": {
            "name": f"www.evil-second.example@x", "description": f"http://{HOST}/second",
            "parameters": {"type": "object", "properties": {}}}}],
        "license": "cc-by-4.0", "used_in": ["hostile"],
    }


@dataclass
class HostileDB:
    path: Path
    campaign_id: int
    human_run: str
    upload_run: str
    campaign_set: str


def _answer_queue(store: Store, campaign_id: int, who: str, token: str) -> None:
    """Answer every item of `who`'s queue with a hostile message (the last one skipped)."""
    n = 0
    while (a := C.next_item(store, campaign_id, who)) is not None:
        n += 1
        if n == 4:
            C.skip_item(store, a.id, who, f"SecretSkip{token} " + hostile("Skip"))
            continue
        C.submit_answer(store, a.id, who, {"type": "message", "content": f"SecretAnswer{token} " + hostile("Answer")},
                        note=f"SecretNote{token} " + hostile("Note"), confidence=3)


def build(db: Path) -> HostileDB:
    """Add the hostile data to the workbench database at `db` (a copy of the demo database)."""
    work = Path(tempfile.mkdtemp(prefix="hostile-"))
    source = work / "tool_calling_hostile.jsonl"
    source.write_text(json.dumps(hostile_row()) + "\n" + '{"not": "a row", "x": "' + hostile("Rejected") + '"}\n')
    store = Store.open(db)
    try:
        ingest(store, [source], workers=1)

        # a run with a hostile name, model, file name and predictions (a call and a message), plus a bad line
        message_dps = [r["id"] for r in store.query(
            "SELECT id FROM decision_points WHERE action_type = 'message' AND flag_empty_expected = 0 "
            "ORDER BY id LIMIT 4")]
        lines = [
            {"id": CALL_DP, "model": hostile("Model"),
             "action": {"type": "function_call", "name": TOOL_NAME + " x", "arguments": {PARAM: hostile("Pred")}}},
            {"id": MESSAGE_DP, "model": hostile("Model"), "action": {"type": "message", "content": hostile("PredMsg")}},
            *({"id": i, "action": {"type": "message", "content": hostile("PredMsg")}} for i in message_dps),
            {"id": "tool_calling/nowhere/1", "action": {"type": "message", "content": hostile("BadLine")}},
        ]
        data = "".join(json.dumps(x) + "\n" for x in lines).encode()
        upload, _ = grade_upload(store, data, run_name=RUN_NAME, filename="www.evil.example@x.jsonl", grader="keyword")

        # a campaign with a hostile name and instructions, answered by two hostile annotators
        camp = C.create_campaign(store, CAMPAIGN_NAME, selection={"action_type": "message"}, sample_size=6, seed=3,
                                 overlap=2, instructions=hostile("Instructions"), reveal_after_submit=True,
                                 grader="keyword")
        _answer_queue(store, camp.id, ANNOTATORS[0], "Z")
        _answer_queue(store, camp.id, ANNOTATORS[1], "Q")
        human = save_as_run(store, camp.id, ANNOTATORS[0], work)

        # audit sets: calibration under a hostile name, the campaign's answers, the hostile run's replies
        build_audit_set(store, "calibration", name=SET_NAME, limit=2)
        campaign_set = build_audit_set(store, "campaign", campaign=camp.id).audit_set.name
        build_audit_set(store, "run", run=RUN_NAME)
        for s in list_audit_sets(store):
            item = next_blind_item(store, s.id, hostile("Rater"))
            if item is not None:
                record_human(store, item.item_id, hostile("Rater"), 7)

        # attempts at the hostile decision point: a person's and a model's that failed
        action = {"type": "message", "content": hostile("Attempt")}
        breakdown = grade_action(store, load_target(store, MESSAGE_DP), action, grader="keyword")
        save_attempt(store, MESSAGE_DP, who=hostile("Who"), kind="human", action=action, breakdown=breakdown)
        save_attempt(store, MESSAGE_DP, who=hostile("ModelWho"), kind="model", action=None,
                     extra={"model": hostile("ModelWho"), "error": hostile("Error"), "error_kind": "api"})
        return HostileDB(db, camp.id, human.run_name, upload.run_name, campaign_set)
    finally:
        store.close()
