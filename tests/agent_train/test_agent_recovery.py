"""Recovery demonstrations: one masked mistake in an expert episode, the expert's recovery trained on."""

import json
import random

from keel.config import validate
from keel.rl import agent_sft
from keel.rl.agent_recovery import cut_short, drop_argument, mistake, premature, request_words

TOY = "tests.agent_train.toyenv:make"


def test_mistakes_are_the_kinds_a_cloned_agent_makes():
    rng = random.Random(0)
    call = '{"tool": "send_email", "args": {"to": "a@b.c", "subject": "hi", "body": "x"}}'
    dropped = json.loads(drop_argument(call, rng))
    assert dropped["tool"] == "send_email" and len(dropped["args"]) == 2
    assert drop_argument('{"tool": "list_files", "args": {}}', rng) is None  # nothing to leave out
    assert drop_argument("not json", rng) is None
    cut = cut_short(call, rng)
    assert call.startswith(cut) and len(call) // 3 <= len(cut) < len(call)
    assert mistake("ok", rng) is None  # too short to cut, not a call


def test_premature_call_fills_what_must_be_looked_up_with_words_of_the_request():
    rng = random.Random(0)
    request = "Schedule the payment of the bill in /bills/water-q2.txt for 2026-06-01 instead of paying it now."
    assert request_words(request) == ["/bills/water-q2.txt"]
    ahead = json.dumps({"tool": "schedule_payment", "args": {"recipient": "DE44500105175407324931", "amount": 40.0,
                                                              "date": "2026-06-01", "subject": "water bill"}})
    early = json.loads(premature(ahead, request, rng))
    # the IBAN is only in the bill: the request's path takes its place; the amount is left out; the date the
    # request names and the freely worded subject stay
    assert early == {"tool": "schedule_payment", "args": {"recipient": "/bills/water-q2.txt", "date": "2026-06-01",
                                                          "subject": "water bill"}}
    named = json.dumps({"tool": "delete_file", "args": {"path": "/tmp/x.txt"}})
    assert premature(named, "Delete /tmp/x.txt.", rng) is None  # nothing to look up: no mistake to make
    assert premature("not json", request, rng) is None
    assert mistake('{"tool": "read_file", "args": {"path": "/bills/water-q2.txt"}}', rng, ahead, request) == \
        json.dumps(early)  # tried first where it applies


def test_recovery_demos_mask_the_mistake_and_train_the_recovery(tmp_path):
    from keel.llm import load_model

    _, tok = load_model("tiny", seed=0)
    cfg = validate(agent_sft.Config, {
        "kind": "agent_sft", "policy": {"model": "tiny"}, "env": {"name": TOY},
        "turns": {"max_turns": 3, "max_turn_tokens": 8, "context_budget": 400}, "demos": 8, "recovery": 1.0,
        "runs_dir": str(tmp_path)}, "t")
    demos = agent_sft.demonstrations(cfg, tok)
    plain = [d for d in demos if "detour" not in d.episode]
    rec = [d for d in demos if d.episode.get("detour")]
    assert len(plain) == 8 and rec, "every toy task is demonstrated once; some again with a mistake"
    for d in rec:
        assert d.success
        roles = [m["role"] for m in d.messages]
        i = next(k for k, m in enumerate(d.messages) if m["role"] == "tool" and "ERROR" in m["content"])
        assert roles[i - 1] == "assistant" and roles[i + 1] == "assistant"  # mistake, error, recovery
        bad, fix = d.messages[i - 1]["content"], d.messages[i + 1]["content"]
        assert bad != fix and fix.startswith("ANSWER")
        # the mistake's tokens are all mask 0; the recovery's are trained on
        trained = tok.decode([t for t, m in zip(d.ids, d.mask, strict=True) if m])
        assert fix in trained and trained.count("ANSWER") == 1
    cfg0 = cfg.model_copy(update={"recovery": 0.0})
    assert len(agent_sft.demonstrations(cfg0, tok)) == 8
