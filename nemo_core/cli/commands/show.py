from __future__ import annotations

HELP = """One decision point: its context, the tools offered and the expected action.

example:
  python -m nemo_core show interactive_agent/ff6ab2b0-7551-468c-8606-a7c3b0c75b68/2 --json
"""


def register(sub) -> None:
    from ..options import HelpFormatter, add_db_option

    p = sub.add_parser("show", help="one decision point, as text or JSON", description=HELP, formatter_class=HelpFormatter)
    p.add_argument("id", metavar="ID", help="a decision point id: {split}/{uuid}/{message index}")
    add_db_option(p)
    p.add_argument("--json", action="store_true", help="print JSON (keys: id, split, conversation_uuid, turn_index, "
                   "action_type, flags, context, tools, expected)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..options import resolve_db
    from ...data.jsontext import dumps_text
    from ...data.records import content_text, parse_tool_calls
    from ...data.store import Store

    with Store.open(resolve_db(args.db)) as store:
        dp = store.get(args.id)
    if args.json:
        print(dumps_text(dp.to_json()))  # valid JSON: a NaN a dataset row holds prints as null
        return 0
    print(f"{dp.id}  ({dp.action_type}; turn {dp.turn_index}; flags: {', '.join(dp.flags) or 'none'})")
    print(f"tools offered: {', '.join(t['function']['name'] for t in dp.tools)}")
    print("context:")
    for i, msg in enumerate(dp.context):
        text = content_text(msg.get("content")).strip().replace("\n", " ")
        # parse_tool_calls copes with every shape a call can have (a "function" that is not an object, no name)
        calls = ", ".join(c.name or "?" for c in parse_tool_calls(msg.get("tool_calls")))
        line = text[:160] + ("…" if len(text) > 160 else "")
        print(f"  [{i}] {msg.get('role')}: {line}" + (f"  -> calls {calls}" if calls else ""))
    print("expected:")
    print("  " + dumps_text(dp.expected(), indent=False))
    return 0
