"""Reading a tool call out of a small model's text, tolerantly.

The format asked for is one JSON object per line: {"tool": "send_email", "args": {"to": "..."}} or
{"answer": "..."}. Small models stray from it, so this also accepts single quotes, a missing closing
brace, `"name"`/`"arguments"` keys, a function-call form `send_email(to="a@b.c", subject="x")`, and a bare
word naming a tool. Anything else is a `ParseError` whose message goes back to the model as the tool result.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from keel.agents.base import Action, Finish
from keel.envs.toolworld.tasks import Call


class ParseError(ValueError):
    pass


FORMAT_HINT = 'Reply with one line of JSON: {"tool": NAME, "args": {...}} or {"answer": TEXT}.'


def _balanced(text: str) -> str | None:
    start = text.find("{")
    if start < 0:
        return None
    depth, in_str, esc = 0, False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            esc = ch == "\\" and not esc
            if ch == '"' and not esc:
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    return text[start:] + "}" * depth  # a model that stopped before closing its braces


def _load(obj: str) -> Any:
    for attempt in (obj, obj.replace("'", '"')):
        try:
            return json.loads(attempt)
        except json.JSONDecodeError:
            pass
    try:
        return ast.literal_eval(obj)
    except (ValueError, SyntaxError):
        return None


def _from_dict(d: dict, tools: set[str]) -> Action | None:
    if "answer" in d and "tool" not in d:
        return Finish(str(d["answer"]))
    name = d.get("tool") or d.get("name") or d.get("function")
    args = d.get("args", d.get("arguments", d.get("parameters", {})))
    if isinstance(args, str):
        args = _load(args) or {}
    if not isinstance(name, str):
        raise ParseError(f"no tool name in {json.dumps(d)[:120]}. {FORMAT_HINT}")
    if name not in tools:
        raise ParseError(f"unknown tool {name!r}; tools: {', '.join(sorted(tools))}")
    if not isinstance(args, dict):
        return None  # e.g. {"args": {...}} read as a Python set: salvage what can be read
    return Call(name, args)


_FUNC = re.compile(r"\b([a-z_]+)\s*\((.*)\)", re.S)


_TOOL_KEY = re.compile(r'"(?:tool|name)"\s*:\s*"(\w+)"')
_PAIR = re.compile(r'"(\w+)"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?)')


def _salvage(text: str, tools: set[str]) -> Action | None:
    """Broken JSON such as {"tool": "send_money", "args": {...}}: keep the tool and every "key": value pair."""
    m = _TOOL_KEY.search(text)
    if not m or m.group(1) not in tools:
        return None
    rest = text[m.end():]
    args = {k: _value(v) for k, v in _PAIR.findall(rest) if k not in ("tool", "name", "args", "arguments")}
    return Call(m.group(1), args)


def _value(v: str):
    """A salvaged JSON value; one JSON refuses (a number with a leading zero, "01") stays as its text."""
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v.strip('"')


def parse_action(text: str, tools: set[str]) -> Action:
    text = text.strip()
    if not text:
        raise ParseError(f"empty reply. {FORMAT_HINT}")
    obj = _balanced(text)
    if obj is not None:
        d = _load(obj)
        action = _from_dict(d, tools) if isinstance(d, dict) else None
        if action is not None:
            return action
        salvaged = _salvage(obj, tools)
        if salvaged is not None:
            return salvaged
    m = _FUNC.search(text)
    if m and m.group(1) in tools:
        try:
            node = ast.parse(f"f({m.group(2)})", mode="eval").body
            args = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
            return Call(m.group(1), args)
        except (SyntaxError, ValueError):
            pass
    if obj is not None and '"args"' in obj:
        raise ParseError(f"args must be a JSON object of argument values. {FORMAT_HINT}")
    first = re.split(r"\W+", text)[0] if text else ""
    if first in tools:
        return Call(first, {})
    if obj is None and not any(t in text for t in tools):
        return Finish(text)  # plain prose: the model is answering
    raise ParseError(f"could not read a tool call from {text[:120]!r}. {FORMAT_HINT}")
