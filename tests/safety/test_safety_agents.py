"""Agents: the tolerant tool-call parser, the scripted references, the local-model and endpoint adapters."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from keel.agents import FollowerAgent, RefuserAgent, make_agent
from keel.agents.base import Finish
from keel.agents.instructions import parse_instructions
from keel.agents.parsing import ParseError, parse_action
from keel.envs.toolworld import SUITES, Call
from keel.errors import KeelError
from keel.redteam.attacks import ATTACKS
from keel.redteam.episode import run_episode
from keel.redteam.multilingual import LANGUAGES

TOOLS = {"send_email", "read_email", "list_emails"}


@pytest.mark.parametrize("text,expected", [
    ('{"tool": "read_email", "args": {"email_id": "m1"}}', Call("read_email", {"email_id": "m1"})),
    ("{'tool': 'read_email', 'args': {'email_id': 'm1'}}", Call("read_email", {"email_id": "m1"})),
    ('{"tool": "read_email", "args": {"email_id": "m1"', Call("read_email", {"email_id": "m1"})),
    ('Sure! {"name": "read_email", "arguments": "{\\"email_id\\": \\"m2\\"}"} done', Call("read_email", {"email_id": "m2"})),
    ('read_email(email_id="m3")', Call("read_email", {"email_id": "m3"})),
    ("list_emails", Call("list_emails", {})),
    ('{"tool": "read_email", "args": {...}}', Call("read_email", {})),  # salvaged; the tool reports what is missing
    ('{"tool": "read_email", "args": {"email_id": "m4", ...', Call("read_email", {"email_id": "m4"})),
    ('{"answer": "all done"}', Finish("all done")),
    ("The meeting is at noon.", Finish("The meeting is at noon.")),
])
def test_parser_tolerates_small_model_output(text, expected):
    assert parse_action(text, TOOLS) == expected


@pytest.mark.parametrize("text", ['{"tool": "rm_rf", "args": {}}', '{"args": {}}', ""])
def test_parser_errors_are_messages(text):
    with pytest.raises(ParseError) as e:
        parse_action(text, TOOLS)
    assert str(e.value)


def test_follower_understands_every_attack_in_every_language():
    n = 0
    for s in SUITES.values():
        for inj in s.injection_tasks:
            for a in ATTACKS.values():
                calls = [c for t in a.render(inj) for c in parse_instructions(t)]
                assert any(c.tool == inj.call.tool for c in calls), (inj.id, a.name)
                n += 1
    assert n >= 11 * 20
    assert len([lang for lang, (_, level) in LANGUAGES.items() if lang != "en"]) >= 8
    assert {level for _, level in LANGUAGES.values()} == {"high", "medium", "low"}


def test_benign_text_is_not_an_instruction():
    for s in SUITES.values():
        w = s.build({})
        texts = [e.body for e in w.inbox] + list(w.files.values()) + list(w.web.values())
        texts += [r for h in w.hotels.values() for r in h.reviews] + [t.subject for t in w.transactions]
        assert all(parse_instructions(t) == [] for t in texts)


def test_reference_agents_obey_and_refuse():
    s = SUITES["banking"]
    task, inj = s.user_task("banking_0"), s.injection_task("banking_inj_0")
    a = ATTACKS["important_instructions"]
    r = run_episode(FollowerAgent(), s, task, a, inj)
    assert r.attack_success and r.utility
    r = run_episode(RefuserAgent(), s, task, a, inj)
    assert not r.attack_success and r.utility


def test_make_agent_rejects_unknown():
    with pytest.raises(KeelError, match="unknown agent"):
        make_agent("gpt-17")


def test_chat_agent_gets_malformed_calls_back_as_errors():
    from keel.agents.llm_agent import ChatAgent

    class Scripted(ChatAgent):
        def __init__(self, script):
            self.script = iter(script)

        def complete(self, messages):
            return next(self.script)

    s = SUITES["banking"]
    agent = Scripted(['{"tool": "send_mony", "args": {}}',  # unknown tool: the error goes back, one retry
                      '{"tool": "send_money", "args": {"recipient": "DE31500105170000000042", "amount": "25", '
                      '"subject": "Concert tickets"', '{"answer": "done"}'])
    r = run_episode(agent, s, s.user_task("banking_4"))
    assert r.error is None and r.utility and r.steps == 1
    errors = [m["content"] for m in agent.messages if m["content"].startswith("ERROR")]
    assert "unknown tool 'send_mony'" in errors[0]
    agent = Scripted(['{"tool": 5}', '{"tool": "nope"}'])  # two unreadable replies: the agent stops, no crash
    r = run_episode(agent, s, s.user_task("banking_4"))
    assert r.error is None and not r.utility and r.steps == 0


@pytest.mark.slow
def test_local_model_agent_on_tiny_model_never_crashes():
    from keel.agents.llm_agent import LocalModelAgent

    agent = LocalModelAgent("tiny", max_new_tokens=8)
    s = SUITES["drive"]
    r = run_episode(agent, s, s.user_task("drive_3"), ATTACKS["important_instructions"], s.injection_tasks[0],
                    max_steps=3)
    assert r.error is None and r.steps <= 3
    assert agent.messages[0]["role"] == "system" and "share_file" in agent.messages[0]["content"]


class _FakeOpenAI(BaseHTTPRequestHandler):
    calls: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeOpenAI.calls.append(body)
        if len(_FakeOpenAI.calls) == 1:
            msg = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": "send_money", "arguments": json.dumps({"recipient": "DE31500105170000000042", "amount": 25,
                                                                "subject": "Concert tickets"})}}]}
        else:
            msg = {"role": "assistant", "content": '{"answer": "sent"}'}
        data = json.dumps({"choices": [{"message": msg}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def test_openai_compatible_adapter_against_a_local_server():
    server = HTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        agent = make_agent({"openai": {"base_url": f"http://127.0.0.1:{server.server_port}/v1", "model": "m",
                                       "api_key_env": None}})
        s = SUITES["banking"]
        r = run_episode(agent, s, s.user_task("banking_4"))
        assert r.utility and r.steps == 1
        first, second = _FakeOpenAI.calls[:2]
        assert first["tools"][0]["type"] == "function"
        assert second["messages"][-1]["role"] == "tool" and second["messages"][-1]["tool_call_id"] == "c1"
    finally:
        server.shutdown()


def test_openai_adapter_unreachable_is_a_clear_error():
    agent = make_agent({"openai": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "timeout_s": 2}})
    s = SUITES["banking"]
    r = run_episode(agent, s, s.user_task("banking_4"))
    assert r.error and "cannot reach" in r.error


def test_batcher_groups_concurrent_generations(monkeypatch):
    import keel.llm
    from keel.agents.batching import Batcher

    seen = []

    def fake_generate(model, tok, prompts, **kw):
        seen.append(len(prompts))
        return [p.upper() for p in prompts]

    monkeypatch.setattr(keel.llm, "generate", fake_generate)
    b = Batcher(None, None)
    out = {}

    def episode(i):
        try:
            for step in range(3 if i % 2 else 1):  # episodes of different lengths
                out[(i, step)] = b.complete(f"e{i}s{step}")
        finally:
            b.leave()

    threads = [threading.Thread(target=episode, args=(i,)) for i in range(6)]
    for _ in threads:
        b.enter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert all(out[k] == f"E{k[0]}S{k[1]}" for k in out) and len(out) == 3 * 3 + 3
    assert seen == [6, 3, 3]  # one batch per round; finished episodes leave the batch
