"""Write the sample datasets in this folder; the same seed gives the same bytes.

    python data/make_samples.py

`toolcall_sample.jsonl` is a tool-calling SFT set in the messages + tools + metadata format:
OpenAI-style messages whose last message is an assistant tool call (the completion), the tools as
JSON-schema function specs, and `metadata` "train" or "eval". It is small and regular on purpose:
`builtin:tiny` learns it within the `small-dataset` preset in a minute on two CPU cores.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 1234
N_TRAIN = 160
N_EVAL = 24
MULTI_TURN_SHARE = 0.25  # records with an earlier call, its result and a follow-up question
HERE = Path(__file__).resolve().parent


def _tool(name: str, description: str, properties: dict, required: list[str]) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


TOOLS = {
    "get_weather": _tool(
        "get_weather",
        "Current weather for a city.",
        {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        ["city"],
    ),
    "create_event": _tool(
        "create_event",
        "Add an event to the calendar.",
        {
            "title": {"type": "string"},
            "date": {"type": "string", "description": "YYYY-MM-DD"},
            "time": {"type": "string", "description": "HH:MM"},
        },
        ["title", "date"],
    ),
    "convert_currency": _tool(
        "convert_currency",
        "Convert money between currencies.",
        {
            "amount": {"type": "number"},
            "from": {"type": "string"},
            "to": {"type": "string"},
        },
        ["amount", "from", "to"],
    ),
    "convert_units": _tool(
        "convert_units",
        "Convert a value between units.",
        {
            "value": {"type": "number"},
            "from_unit": {"type": "string"},
            "to_unit": {"type": "string"},
        },
        ["value", "from_unit", "to_unit"],
    ),
    "web_search": _tool(
        "web_search",
        "Search the web.",
        {"query": {"type": "string"}},
        ["query"],
    ),
    "get_time": _tool(
        "get_time",
        "Current local time in a city.",
        {"city": {"type": "string"}},
        ["city"],
    ),
}

CITIES = ["Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Denver", "Madrid", "Seoul", "Nairobi", "Berlin",
          "Toronto", "Sydney", "Dublin", "Hanoi", "Quito", "Vienna"]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "INR"]
UNIT_PAIRS = [("km", "mi"), ("mi", "km"), ("kg", "lb"), ("lb", "kg"), ("c", "f"), ("f", "c"),
              ("m", "ft"), ("ft", "m"), ("l", "gal"), ("gal", "l")]
EVENTS = ["dentist", "team meeting", "lunch with Sam", "yoga class", "project review", "call mom",
          "flight to Rome", "book club", "standup", "haircut"]
TOPICS = ["best hiking trails", "python dataclasses", "how tides work", "cheap flights to Lisbon",
          "history of jazz", "vegan lasagna recipe", "electric bikes review", "solar panel cost",
          "chess openings", "how to repot a cactus", "marathon training plan", "rust borrow checker"]
SYSTEMS = [
    "You are a helpful assistant with access to tools.",
    "You are a concise assistant. Use a tool when one fits the request.",
    "You help users by calling the right function.",
]


def _weather(rng: random.Random) -> tuple[str, str, dict]:
    city = rng.choice(CITIES)
    if rng.random() < 0.5:
        unit = rng.choice(["celsius", "fahrenheit"])
        ask = rng.choice([f"What's the weather in {city} in {unit}?",
                          f"How warm is it in {city}? Give me {unit}.",
                          f"Weather for {city} please, in {unit}."])
        return ask, "get_weather", {"city": city, "unit": unit}
    ask = rng.choice([f"What's the weather like in {city}?", f"Is it raining in {city}?",
                      f"How is the weather in {city} today?", f"Weather in {city}?"])
    return ask, "get_weather", {"city": city}


def _event(rng: random.Random) -> tuple[str, str, dict]:
    title = rng.choice(EVENTS)
    date = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if rng.random() < 0.6:
        time = f"{rng.randint(7, 19):02d}:{rng.choice(['00', '15', '30', '45'])}"
        ask = rng.choice([f"Put {title} on my calendar on {date} at {time}.",
                          f"Schedule {title} for {date} at {time}.",
                          f"Add {title} on {date}, {time}."])
        return ask, "create_event", {"title": title, "date": date, "time": time}
    ask = rng.choice([f"Add {title} to my calendar on {date}.", f"Schedule {title} on {date}."])
    return ask, "create_event", {"title": title, "date": date}


def _currency(rng: random.Random) -> tuple[str, str, dict]:
    amount = rng.choice([5, 10, 20, 50, 75, 100, 250, 500, 1000, 12.5, 99.99])
    src, dst = rng.sample(CURRENCIES, 2)
    ask = rng.choice([f"Convert {amount} {src} to {dst}.", f"How much is {amount} {src} in {dst}?",
                      f"What is {amount} {src} worth in {dst}?"])
    return ask, "convert_currency", {"amount": amount, "from": src, "to": dst}


def _units(rng: random.Random) -> tuple[str, str, dict]:
    value = rng.choice([1, 2, 3, 5, 10, 12, 20, 42, 100, 2.5, 0.5])
    src, dst = rng.choice(UNIT_PAIRS)
    ask = rng.choice([f"Convert {value} {src} to {dst}.", f"How many {dst} is {value} {src}?",
                      f"{value} {src} in {dst}?"])
    return ask, "convert_units", {"value": value, "from_unit": src, "to_unit": dst}


def _search(rng: random.Random) -> tuple[str, str, dict]:
    topic = rng.choice(TOPICS)
    ask = rng.choice([f"Search the web for {topic}.", f"Look up {topic} for me.",
                      f"Can you find {topic} online?"])
    return ask, "web_search", {"query": topic}


def _time(rng: random.Random) -> tuple[str, str, dict]:
    city = rng.choice(CITIES)
    ask = rng.choice([f"What time is it in {city}?", f"Current time in {city}?",
                      f"Tell me the local time in {city}."])
    return ask, "get_time", {"city": city}


INTENTS = [_weather, _event, _currency, _units, _search, _time]


# A plausible tool result and the assistant's summary of it, for multi-turn records.
def _result(rng: random.Random, name: str, args: dict) -> tuple[dict, str]:
    if name == "get_weather":
        temp = rng.randint(-5, 35)
        sky = rng.choice(["sunny", "cloudy", "rain", "windy"])
        return {"temp": temp, "sky": sky}, f"It is {temp} degrees and {sky} in {args['city']}."
    if name == "create_event":
        return {"ok": True}, f"Done, {args['title']} is on your calendar for {args['date']}."
    if name == "convert_currency":
        out = round(args["amount"] * rng.uniform(0.5, 1.5), 2)
        return {"result": out}, f"{args['amount']} {args['from']} is about {out} {args['to']}."
    if name == "convert_units":
        out = round(args["value"] * rng.uniform(0.3, 3.0), 2)
        return {"result": out}, f"{args['value']} {args['from_unit']} is {out} {args['to_unit']}."
    if name == "web_search":
        return {"results": [f"{args['query']} - a guide"]}, f"I found a guide on {args['query']}."
    hour = f"{rng.randint(0, 23):02d}:{rng.choice(['05', '20', '40'])}"
    return {"time": hour}, f"It is {hour} in {args['city']}."


def _call(call_id: str, name: str, args: dict) -> dict:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{
            "id": call_id,
            "type": "function",
            # A JSON string, as the OpenAI API sends it.
            "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)},
        }],
    }


def _tools_for(rng: random.Random, *needed: str) -> list[dict]:
    """The tools the record needs plus one to three distractors, in random order."""
    others = [n for n in TOOLS if n not in needed]
    names = list(dict.fromkeys(needed)) + rng.sample(others, rng.randint(1, 3))
    rng.shuffle(names)
    return [TOOLS[n] for n in names]


def make_record(rng: random.Random, index: int, split: str) -> dict:
    """One record: a system prompt, a request, optionally an earlier call, and the final call."""
    messages = [{"role": "system", "content": rng.choice(SYSTEMS)}]
    intent = rng.choice(INTENTS)
    ask, name, args = intent(rng)
    if rng.random() < MULTI_TURN_SHARE:
        # A different tool first, so the final call has to follow the newest request.
        first_ask, first_name, first_args = rng.choice([i for i in INTENTS if i is not intent])(rng)
        result, summary = _result(rng, first_name, first_args)
        call_id = f"call_{index}_0"
        messages += [
            {"role": "user", "content": first_ask},
            _call(call_id, first_name, first_args),
            {"role": "tool", "tool_call_id": call_id, "name": first_name,
             "content": json.dumps(result, ensure_ascii=False)},
            {"role": "assistant", "content": summary},
            {"role": "user", "content": rng.choice(["Thanks. ", "Great. ", "Also: ", ""]) + ask},
        ]
        tools = _tools_for(rng, first_name, name)
    else:
        messages.append({"role": "user", "content": ask})
        tools = _tools_for(rng, name)
    messages.append(_call(f"call_{index}_1", name, args))
    return {"messages": messages, "tools": tools, "metadata": split}


def make_toolcall_sample(seed: int = SEED) -> list[dict]:
    """The records of toolcall_sample.jsonl: N_TRAIN train then N_EVAL eval."""
    rng = random.Random(seed)
    records = [make_record(rng, i, "train") for i in range(N_TRAIN)]
    records += [make_record(rng, N_TRAIN + i, "eval") for i in range(N_EVAL)]
    return records


def write_jsonl(path: Path, records: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def main() -> None:
    path = HERE / "toolcall_sample.jsonl"
    records = make_toolcall_sample()
    write_jsonl(path, records)
    print(f"wrote {path} ({len(records)} records)")


if __name__ == "__main__":
    main()
