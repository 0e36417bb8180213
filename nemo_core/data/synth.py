"""Synthetic conversations in the exact raw format of both splits, with the real data's quirks.

One generator serves two purposes: the bundled demo dataset (`demo.py`, a few dozen rows, deterministic)
and the scale benchmark (`bench/bench_ingest.py`, 335,122 rows of the real shape: on average about 8.4
messages, 6.2 tools and 2.1 calls per conversation). It never pretends to be NVIDIA's data: every uuid it
writes starts with "synth-" so synthetic rows can always be told apart.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Callable

WORDS = (
    "account order payment refund delivery address schedule booking flight hotel weather forecast city "
    "temperature recipe ingredient invoice balance transfer report status ticket support policy customer "
    "product price discount warranty shipping tracking subscription plan upgrade appointment doctor "
    "prescription insurance claim vehicle rental pickup return window reservation table restaurant menu "
    "allergy calendar meeting reminder timezone currency exchange rate stock portfolio dividend loan "
    "interest mortgage budget expense category library book author chapter course lesson grade exam"
).split()


def _prop(kind: str, desc: str, **extra: Any) -> dict:
    out = {"type": kind, "description": desc}
    out.update(extra)
    return out


@dataclass
class Domain:
    name: str
    system_policy: str
    tools: list[dict]
    requests: list[tuple[str, str, dict]]  # (user text, tool name, arguments)
    results: Callable[[random.Random, str, dict], Any]
    replies: list[str]


def _fn(name: str, description: str, properties: dict, required: list[str]) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def _result(rng: random.Random, name: str, args: dict) -> Any:
    base = {"status": "ok", "request": name, "id": f"R{rng.randint(1000, 9999)}"}
    base.update({k: v for k, v in list(args.items())[:2]})
    base["value"] = round(rng.uniform(1, 500), 2)
    return base


DOMAINS: list[Domain] = [
    Domain(
        "weather",
        "You are a weather assistant.",
        [
            _fn("get_weather", "Get the current weather for a city.",
                {"city": _prop("string", "City name"), "units": {"type": "string", "enum": ["metric", "imperial"]}}, ["city"]),
            _fn("get_forecast", "Get a multi-day forecast.",
                {"city": _prop("string", "City name"), "days": _prop("integer", "Number of days, 1-10")}, ["city", "days"]),
            _fn("convert_temperature", "Convert a temperature between units.",
                {"value": _prop("number", "Temperature"), "to": {"enum": ["C", "F", "K"]}}, ["value", "to"]),
        ],
        [
            ("What's the weather like in Lyon right now, in metric please?", "get_weather", {"city": "Lyon", "units": "metric"}),
            ("Give me the 5-day forecast for Osaka.", "get_forecast", {"city": "Osaka", "days": 5}),
            ("Convert 72.5 degrees to Celsius.", "convert_temperature", {"value": 72.5, "to": "C"}),
        ],
        _result,
        ["It is currently 18°C and partly cloudy in Lyon.", "Osaka will be mostly sunny for the next five days, highs around 24°C.",
         "72.5°F is about 22.5°C."],
    ),
    Domain(
        "flights",
        "You are a travel agent that books flights.",
        [
            _fn("search_flights", "Search flights between two airports.",
                {"origin": _prop("string", "IATA code"), "destination": _prop("string", "IATA code"),
                 "date": _prop("string", "YYYY-MM-DD"), "passengers": _prop("integer", "Number of passengers"),
                 "cabin": {"type": "string", "enum": ["economy", "premium", "business"]}}, ["origin", "destination", "date"]),
            _fn("book_flight", "Book a flight by its id.",
                {"flight_id": _prop("string", "Flight id"), "passenger_names": {"type": "array", "items": {"type": "string"}},
                 "seat_preference": _prop("string", "aisle, window or none")}, ["flight_id", "passenger_names"]),
            _fn("cancel_booking", "Cancel a booking.", {"booking_ref": _prop("string", "Booking reference"),
                                                        "refund_to_original": _prop("boolean", "Refund to the original payment")}, ["booking_ref"]),
        ],
        [
            ("Find me flights from CDG to JFK on 2025-03-14 for 2 people.", "search_flights",
             {"origin": "CDG", "destination": "JFK", "date": "2025-03-14", "passengers": 2}),
            ("Book flight AF22 for Ana Silva and Tom Berg.", "book_flight", {"flight_id": "AF22", "passenger_names": ["Ana Silva", "Tom Berg"]}),
            ("Please cancel booking QX7Y2 and refund my card.", "cancel_booking", {"booking_ref": "QX7Y2", "refund_to_original": True}),
        ],
        _result,
        ["I found three nonstop options; the cheapest is AF22 at 08:40.", "Your booking is confirmed, reference QX7Y2.",
         "Booking QX7Y2 is cancelled and the refund will reach your card in 5-7 days."],
    ),
    Domain(
        "banking",
        "You are a banking assistant. Never reveal full account numbers.",
        [
            _fn("get_balance", "Get an account balance.", {"account_id": _prop("string", "Account id")}, ["account_id"]),
            _fn("transfer_funds", "Transfer money between accounts.",
                {"from_account": _prop("string", "Source"), "to_account": _prop("string", "Destination"),
                 "amount": _prop("number", "Amount"), "currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]},
                 "memo": _prop("string", "Optional note")}, ["from_account", "to_account", "amount"]),
            _fn("list_transactions", "List recent transactions.",
                {"account_id": _prop("string", "Account id"), "limit": _prop("integer", "How many"),
                 "filters": {"type": "object", "properties": {"min_amount": {"type": "number"}, "category": {"type": "string"}}}},
                ["account_id"]),
        ],
        [
            ("How much is in my checking account CHK-001?", "get_balance", {"account_id": "CHK-001"}),
            ("Move 250 euros from CHK-001 to SAV-009, memo 'rent buffer'.", "transfer_funds",
             {"from_account": "CHK-001", "to_account": "SAV-009", "amount": 250, "currency": "EUR", "memo": "rent buffer"}),
            ("Show my last 5 grocery transactions over 20 on CHK-001.", "list_transactions",
             {"account_id": "CHK-001", "limit": 5, "filters": {"min_amount": 20, "category": "groceries"}}),
        ],
        _result,
        ["Your checking account balance is $1,204.16.", "Done: 250.00 EUR moved to your savings account.",
         "Here are your five most recent grocery purchases over 20."],
    ),
    Domain(
        "recipes",
        "",
        [
            _fn("search_recipes", "Search recipes by ingredient.",
                {"ingredients": {"type": "array", "items": {"type": "string"}}, "max_minutes": _prop("integer", "Time limit"),
                 "diet": {"type": "string", "enum": ["none", "vegetarian", "vegan", "gluten-free"]}}, ["ingredients"]),
            _fn("get_nutrition", "Nutrition facts for a recipe.", {"recipe_id": _prop("string", "Recipe id")}, ["recipe_id"]),
            _fn("scale_recipe", "Scale a recipe to a number of servings.",
                {"recipe_id": _prop("string", "Recipe id"), "servings": _prop("integer", "Servings")}, ["recipe_id", "servings"]),
        ],
        [
            ("What vegetarian dinner can I make with chickpeas and spinach in 30 minutes?", "search_recipes",
             {"ingredients": ["chickpeas", "spinach"], "max_minutes": 30, "diet": "vegetarian"}),
            ("How many calories are in recipe RC-88?", "get_nutrition", {"recipe_id": "RC-88"}),
            ("Scale recipe RC-88 to 6 servings.", "scale_recipe", {"recipe_id": "RC-88", "servings": 6}),
        ],
        _result,
        ["Try a chickpea and spinach curry; it takes about 25 minutes.", "Recipe RC-88 has about 420 kcal per serving.",
         "Here is RC-88 scaled to six servings."],
    ),
    Domain(
        "clinic",
        "You are the scheduling assistant of a medical clinic. Do not give medical advice.",
        [
            _fn("find_slots", "Find free appointment slots.",
                {"doctor": _prop("string", "Doctor's name"), "date": _prop("string", "YYYY-MM-DD"),
                 "urgent": _prop("boolean", "Same-day if possible")}, ["date"]),
            _fn("book_appointment", "Book an appointment slot.",
                {"slot_id": _prop("string", "Slot id"), "patient_id": _prop("string", "Patient id"),
                 "reason": _prop("string", "Reason for the visit")}, ["slot_id", "patient_id"]),
            _fn("refill_prescription", "Request a prescription refill.",
                {"patient_id": _prop("string", "Patient id"), "medication": _prop("string", "Medication name"),
                 "quantity": _prop("integer", "Units")}, ["patient_id", "medication"]),
        ],
        [
            ("Is Dr. Okafor free on 2025-06-02?", "find_slots", {"doctor": "Okafor", "date": "2025-06-02"}),
            ("Book slot S-114 for patient P-5531, reason: annual check-up.", "book_appointment",
             {"slot_id": "S-114", "patient_id": "P-5531", "reason": "annual check-up"}),
            ("I need a refill of lisinopril, 30 tablets, patient P-5531.", "refill_prescription",
             {"patient_id": "P-5531", "medication": "lisinopril", "quantity": 30}),
        ],
        _result,
        ["Dr. Okafor has openings at 09:30 and 14:00 on June 2.", "You're booked for slot S-114.",
         "Your refill request has been sent to the pharmacy."],
    ),
    Domain(
        "ecommerce",
        "You are an online store's support agent.",
        [
            _fn("track_package", "Track a shipment.", {"tracking_number": _prop("string", "Carrier tracking number")}, ["tracking_number"]),
            _fn("start_return", "Start a return.",
                {"order_id": _prop("string", "Order id"), "items": {"type": "array"},
                 "reason": {"enum": ["damaged", "wrong_item", "no_longer_needed"]}}, ["order_id", "items", "reason"]),
            _fn("apply_coupon", "Apply a coupon to a cart.", {"cart_id": _prop("string", "Cart"), "code": _prop("string", "Coupon")},
                ["cart_id", "code"]),
        ],
        [
            ("Where is my package 1Z999AA10123456784?", "track_package", {"tracking_number": "1Z999AA10123456784"}),
            ("Order O-7781 arrived damaged, I want to return the lamp (item L-2).", "start_return",
             {"order_id": "O-7781", "items": ["L-2"], "reason": "damaged"}),
            ("Apply SPRING15 to cart C-42.", "apply_coupon", {"cart_id": "C-42", "code": "SPRING15"}),
        ],
        _result,
        ["Your package is out for delivery and should arrive today.", "Your return for the lamp has started; a label is on its way.",
         "SPRING15 took 15% off your cart."],
    ),
]


def _reasoning(rng: random.Random, size: int) -> str:
    words = [rng.choice(WORDS) for _ in range(max(4, size // 7))]
    return "Okay, let me think. The user asks about " + " ".join(words) + ". So I should respond accordingly."


def _filler_tool(rng: random.Random, i: int) -> dict:
    name = f"{rng.choice(WORDS)}_{rng.choice(WORDS)}_{i}"
    props = {f"{rng.choice(WORDS)}_{j}": _prop(rng.choice(["string", "integer", "number", "boolean"]),
                                               " ".join(rng.choice(WORDS) for _ in range(6))) for j in range(rng.randint(1, 4))}
    return _fn(name, "Looks up " + " ".join(rng.choice(WORDS) for _ in range(10)) + ".", props, list(props)[:1])


def _perturb(rng: random.Random, args: dict) -> dict:
    """A plausible variant of arguments so conversations differ (values, not keys)."""
    out = {}
    for k, v in args.items():
        if isinstance(v, str) and rng.random() < 0.5:
            out[k] = v if len(v) < 4 else v[:-1] + rng.choice("ABCDEFGH0123456789")
        elif isinstance(v, int) and not isinstance(v, bool) and rng.random() < 0.5:
            out[k] = v + rng.randint(1, 3)
        else:
            out[k] = v
    return out


def tool_calling_row(rng: random.Random, uuid: str, *, turns: int | None = None, n_extra_tools: int | None = None,
                     reasoning_chars: int = 1500) -> dict:
    """A row in `tool_calling` format: empty system prompt, `tool_calls` key on every assistant message
    (null when none), arguments as objects, tool replies with no `tool_call_id`, JSON tool content."""
    domain = rng.choice(DOMAINS)
    extra = [_filler_tool(rng, i) for i in range(n_extra_tools if n_extra_tools is not None else rng.randint(1, 5))]
    tools = domain.tools + extra
    rng.shuffle(tools)
    messages: list[dict] = [{"role": "system", "content": ""}]
    for _ in range(turns if turns is not None else rng.choice([1, 1, 2, 2, 3])):
        text, name, args = rng.choice(domain.requests)
        args = _perturb(rng, args)
        messages.append({"role": "user", "content": text})
        n_calls = 2 if rng.random() < 0.08 else 1
        calls = []
        for _c in range(n_calls):
            calls.append({"type": "function", "function": {"name": name, "arguments": args}})
        messages.append({"role": "assistant", "content": "", "tool_calls": calls, "reasoning_content": _reasoning(rng, reasoning_chars)})
        for call in calls:
            result = domain.results(rng, name, call["function"]["arguments"])
            shape = rng.random()
            content: Any = result if shape < 0.8 else ([result] if shape < 0.9 else (True if shape < 0.95 else json.dumps(result)))
            messages.append({"role": "tool", "content": content})
        messages.append({"role": "assistant", "content": rng.choice(domain.replies), "tool_calls": None,
                         "reasoning_content": _reasoning(rng, reasoning_chars // 2)})
    return {"uuid": uuid, "messages": messages, "license": "cc-by-4.0", "used_in": ["synthetic"], "tools": tools}


def interactive_agent_row(rng: random.Random, uuid: str, *, turns: int | None = None, reasoning_chars: int = 600) -> dict:
    """A row in `interactive_agent` format: a long policy prompt, string arguments, `tool_call_id`s,
    "\\n\\n"-prefixed texts, parameters without `"type": "object"`."""
    domain = rng.choice(DOMAINS)
    tools = []
    for tool in domain.tools:
        fn = json.loads(json.dumps(tool["function"]))
        fn["parameters"].pop("type", None)
        fn["strict"] = True
        tools.append({"type": "function", "function": fn})
    policy = (domain.system_policy or "You are a helpful agent.") + "\n\n<policy>\n" + "\n".join(
        f"- Rule {i}: " + " ".join(rng.choice(WORDS) for _ in range(25)) for i in range(30)) + "\n</policy>"
    messages: list[dict] = [{"role": "system", "content": policy}]
    for _ in range(turns if turns is not None else rng.choice([1, 2, 2, 3])):
        text, name, args = rng.choice(domain.requests)
        messages.append({"role": "user", "content": "\n\n" + text})
        if rng.random() < 0.4:
            messages.append({"role": "assistant", "content": "\n\nCould you confirm the details before I go ahead?",
                             "reasoning_content": _reasoning(rng, reasoning_chars)})
            messages.append({"role": "user", "content": "Yes, go ahead."})
        call_id = f"chatcmpl-tool-{rng.getrandbits(128):032x}"
        args = _perturb(rng, args)
        messages.append({"role": "assistant", "tool_calls": [
            {"type": "function", "id": call_id, "function": {"name": name, "arguments": json.dumps(args)}}],
            "content": "", "reasoning_content": _reasoning(rng, reasoning_chars)})
        messages.append({"role": "tool", "tool_call_id": call_id, "content": "\n\n" + json.dumps(domain.results(rng, name, args))})
        messages.append({"role": "assistant", "content": "\n\n" + rng.choice(domain.replies), "reasoning_content": _reasoning(rng, reasoning_chars)})
    return {"uuid": uuid, "messages": messages, "license": "cc-by-4.0", "used_in": ["synthetic"], "tools": tools, "reasoning": "on"}


def synth_uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(96):024x}"
    return f"synth-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:24]}"
