"""Writes tool_calling_shapes.jsonl and interactive_agent_shapes.jsonl: one small row per raw-data shape of
SPEC §1 (see README.md here). Run it once after editing; the JSONL files are what the tests read."""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
S = {"type": "string"}
def tool(name, props=None, required=None, **extra):
    params = {"type": "object", "properties": props or {}}
    if required: params["required"] = required
    return {"type": "function", "function": {"name": name, "description": f"{name} tool", "parameters": params, **extra}}
def call(name, args, **kw):
    return {"type": "function", "function": {"name": name, "arguments": args}, **kw}
SYS = {"role": "system", "content": ""}
tc = [
 {"uuid": "tc-parallel", "messages": [SYS,
   {"role": "user", "content": "Weather in Oslo and Bergen, and the time in Oslo?"},
   {"role": "assistant", "content": "", "reasoning_content": "PARALLEL-REASONING three calls", "tool_calls": [
      call("get_weather", {"city": "Oslo"}, index=0), call("get_weather", {"city": "Bergen"}, index=1),
      call("get_time", {"tz": "Europe/Oslo"}, index=2)]},
   {"role": "tool", "content": {"city": "Oslo", "temp_c": 4}},
   {"role": "tool", "content": [{"city": "Bergen"}, {"temp_c": 7}]},
   {"role": "assistant", "content": "Oslo is 4C and Bergen 7C.", "tool_calls": None, "reasoning_content": "third call unanswered"},
   {"role": "user", "content": "ok"},
   {"role": "assistant", "content": "  \n ", "tool_calls": None}],
  "tools": [tool("get_weather", {"city": S}, ["city"]), tool("get_time", {"tz": S}, ["tz"])],
  "license": "cc-by-4.0", "used_in": ["test"]},
 {"uuid": "tc-content-shapes", "messages": [SYS,
   {"role": "user", "content": "Is 2024 a leap year? zanzibarquux"},
   {"role": "assistant", "content": "", "reasoning_content": "r", "tool_calls": [call("is_leap_year", {"year": 2024})]},
   {"role": "tool", "content": True},
   {"role": "assistant", "content": "", "reasoning_content": "r", "tool_calls": [call("lookup", {"q": "holidays"})]},
   {"role": "tool", "content": "plain platypusreply string"},
   {"role": "tool", "content": {"orphan": True}},
   {"role": "assistant", "content": "Yes, it is.", "tool_calls": None, "reasoning_content": "r"}],
  "tools": [tool("is_leap_year", {"year": {"type": "integer"}}, ["year"]), tool("lookup", {"q": S}, ["q"])],
  "license": "cc-by-4.0", "used_in": ["test"]},
 {"uuid": "tc-args-list", "messages": [SYS,
   {"role": "user", "content": "Add 2, 3 and 4."},
   {"role": "assistant", "content": "", "reasoning_content": "r", "tool_calls": [call("add_numbers", [2, 3, 4])]},
   {"role": "tool", "content": 9},
   {"role": "assistant", "content": "", "reasoning_content": "r", "tool_calls": [call("add_numbers", "{\"numbers\": [1, 2]}")]},
   {"role": "tool", "content": 3},
   {"role": "assistant", "content": "9 and 3.", "tool_calls": None, "reasoning_content": "r"}],
  "tools": [tool("add_numbers", {"numbers": {"type": "array", "items": {"type": "number"}}}, ["numbers"])],
  "license": "cc-by-4.0", "used_in": ["test"]},
 {"uuid": "tc-no-tools", "messages": [SYS,
   {"role": "user", "content": "A fun fact?"},
   {"role": "assistant", "content": "Octopuses have three hearts.", "tool_calls": None, "reasoning_content": "r"}],
  "tools": [], "license": "cc-by-4.0", "used_in": ["test"]},
 {"uuid": "tc-duplicate-tools", "messages": [SYS,
   {"role": "user", "content": "Find the book 978-0140449136."},
   {"role": "assistant", "content": "", "reasoning_content": "r", "tool_calls": [call("lookup_book", {"isbn": "978-0140449136"})]},
   {"role": "tool", "content": {"title": "The Odyssey"}}],
  "tools": [tool("lookup_book", {"isbn": S}, ["isbn"]), tool("lookup_book", {"isbn": S, "edition": S}, ["isbn", "edition"]),
            tool("other", {"x": S}), tool("other", {"x": S})],
  "license": "cc-by-4.0", "used_in": ["test"]},
 {"uuid": "tc-odd-tools", "messages": [SYS,
   {"role": "user", "content": "Time in Tokyo?"},
   {"role": "assistant", "content": "", "reasoning_content": "r", "tool_calls": [call("get_time", {"timezone": "Asia/Tokyo"})]},
   {"role": "tool", "content": "09:12"},
   {"role": "assistant", "content": "09:12.", "tool_calls": None, "reasoning_content": "r"}],
  "tools": [
    {"type": "function", "function": {"name": "get_time", "description": "required at function level",
                                      "parameters": {"type": "object", "properties": {"timezone": S}}, "required": ["timezone"]}},
    {"type": "function", "function": {"name": "no_params", "description": "no parameters at all"}},
    {"type": "function", "function": {"name": "no_properties", "description": "no properties", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "empty_properties", "description": "", "parameters": {"type": "object", "properties": {}}}},
    {"type": "function", "function": {"name": "root_string", "parameters": {"type": "string"}}},
    {"type": "function", "function": {"description": "nameless"}},
    42,
    "a string, not a tool"],
  "license": "cc-by-4.0", "used_in": ["test"]},
 {"uuid": "tc-submit-clash", "messages": [SYS,
   {"role": "user", "content": "Text Sam."},
   {"role": "assistant", "content": "", "reasoning_content": "r", "tool_calls": [call("send_sms", {"to": "Sam"})]},
   {"role": "tool", "content": {"ok": True}},
   {"role": "assistant", "content": "Sent.", "tool_calls": None, "reasoning_content": "r"}],
  "tools": [tool("send_sms", {"to": S}, ["to"]), tool("submit_message", {"body": S}, ["body"])],
  "license": "cc-by-4.0", "used_in": ["test"]},
 {"uuid": "tc-extra-keys", "messages": [SYS,
   {"role": "user", "content": "Hello"},
   {"role": "assistant", "content": "Hi!", "tool_calls": None, "reasoning_content": "r"}],
  "tools": [tool("noop")], "license": "cc-by-4.0", "used_in": ["test"],
  "x_source": {"batch": 7, "tags": ["a", "b"]}, "x_score": 0.5},
]
ia_sys = {"role": "system", "content": "\n\nYou are an airline agent. Policy: verify identity. systemonlyword appears only here."}
ia_tools = [
  {"type": "function", "function": {"name": "find_user", "description": "Find a user by email.",
     "parameters": {"properties": {"email": {"type": "string"}}, "required": ["email"]}, "strict": False}},
  {"type": "function", "function": {"name": "book", "description": "Book a seat.",
     "parameters": {"properties": {"cabin": {"enum": ["economy", "business"]}, "legs": {"type": "array"}}, "required": ["cabin"]}, "strict": True}},
]
def iacall(cid, name, args):
    return {"type": "function", "id": cid, "function": {"name": name, "arguments": json.dumps(args) if not isinstance(args, str) else args}}
ia = [
 {"uuid": "ia-ids", "messages": [ia_sys,
   {"role": "user", "content": "\n\nBook me a business seat, I am a@b.example"},
   {"role": "assistant", "content": "", "reasoning_content": "find the user", "tool_calls": [iacall("call_1", "find_user", {"email": "a@b.example"})]},
   {"role": "tool", "tool_call_id": "call_1", "content": "{\"user_id\": \"u1\"}"},
   {"role": "assistant", "content": "", "reasoning_content": "book", "tool_calls": [iacall("call_2", "book", {"cabin": "business", "legs": []})]},
   {"role": "tool", "tool_call_id": "call_WRONG", "content": "{\"booking\": \"B1\"}"},
   {"role": "assistant", "content": "\n\nBooked: B1."}],
  "tools": ia_tools, "license": "cc-by-4.0", "used_in": ["test"], "reasoning": "on", "x_extra": [1, {"two": 2}]},
 {"uuid": "ia-ids-out-of-order", "messages": [ia_sys,
   {"role": "user", "content": "Two lookups"},
   {"role": "assistant", "content": "", "reasoning_content": "two", "tool_calls": [
      iacall("call_a", "find_user", {"email": "a@x.example"}), iacall("call_b", "find_user", {"email": "b@x.example"})]},
   {"role": "tool", "tool_call_id": "call_b", "content": "B"},
   {"role": "tool", "tool_call_id": "call_a", "content": "A"},
   {"role": "assistant", "content": "Both found.", "reasoning_content": "done"}],
  "tools": ia_tools, "license": "cc-by-4.0", "used_in": ["test"], "reasoning": "on"},
 {"uuid": "ia-args-string-of-list", "messages": [ia_sys,
   {"role": "user", "content": "x"},
   {"role": "assistant", "content": "", "reasoning_content": "r", "tool_calls": [iacall("c1", "find_user", "[\"a@b.example\"]")]},
   {"role": "tool", "tool_call_id": "c1", "content": "none"}],
  "tools": ia_tools, "license": "cc-by-4.0", "used_in": ["test"], "reasoning": "on"},
 {"uuid": "ia-args-invalid-json", "messages": [ia_sys,
   {"role": "user", "content": "x"},
   {"role": "assistant", "content": "", "reasoning_content": "r", "tool_calls": [iacall("c1", "find_user", "{\"email\": ")]}],
  "tools": ia_tools, "license": "cc-by-4.0", "used_in": ["test"], "reasoning": "on"},
]
for row in tc + ia:  # every chain of thought unique, so a test can tell whether one leaked into a context
    for i, msg in enumerate(row["messages"]):
        if "reasoning_content" in msg:
            msg["reasoning_content"] = f"REASONING {row['uuid']} message {i}: {msg['reasoning_content']}"
for name, rows in (("tool_calling_shapes.jsonl", tc), ("interactive_agent_shapes.jsonl", ia)):
    with open(HERE / name, "w", encoding="utf-8") as f:
        for r in rows: f.write(json.dumps(r, ensure_ascii=False) + "\n")
