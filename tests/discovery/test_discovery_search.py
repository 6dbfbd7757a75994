"""Mutators, the population database, resuming, the LLM mutator against a local fake endpoint, the CLI."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from typer.testing import CliRunner

from keel.discovery.db import PopulationDB
from keel.discovery.llm_mutator import OpenAIMutator, extract_function
from keel.discovery.mutate import OPERATORS, ProgramMutator
from keel.discovery.sandbox import check_source
from keel.discovery.search import SearchConfig, run_search, seed_source
from keel.errors import KeelError


@pytest.mark.parametrize("op", OPERATORS)
def test_each_operator_makes_a_new_valid_program(op):
    m = ProgramMutator(seed=1, operators=[op])
    parent, other = seed_source("dcfr"), seed_source("pcfr_plus")
    child, desc = m.mutate(parent, other)
    assert desc.startswith(op) and child.strip() != parent.strip()
    check_source(child)


def test_mutator_is_deterministic_per_seed():
    src = seed_source("cfr_plus")
    a = [ProgramMutator(seed=5).mutate(src, seed_source("dcfr"))[0] for _ in range(2)]
    assert a[0] == a[1]


def test_db_lineage_and_top(tmp_path):
    db = PopulationDB(tmp_path / "p.sqlite")
    a = db.add(generation=0, code="a", mutation="seed", ok=True, fitness=-2.0, name="a")
    b = db.add(generation=1, code="b", mutation="m1", ok=True, fitness=-1.0, parent_id=a)
    db.add(generation=1, code="c", mutation="m2", ok=False, error="boom", parent_id=a)
    assert [p.id for p in db.top(5)] == [b, a]
    assert [x["id"] for x in db.lineage(b)] == [b, a]
    assert db.counts() == {"evaluated": 3, "ok": 2, "failed": 1}
    assert db.has_code("b") and not db.has_code("z")
    db.close()
    (tmp_path / "bad.sqlite").write_text("not a database at all" * 100)
    with pytest.raises(KeelError, match="not a Keel population database"):
        PopulationDB(tmp_path / "bad.sqlite")


def _cfg(**kw):
    base = dict(
        train=["kuhn_poker"],
        test=["goofspiel(num_cards=3)"],
        generations=1,
        population=3,
        iters=30,
        test_iters=40,
        seeds=["cfr", "cfr_plus"],
        cpu_seconds=30,
        wall_seconds=60,
    )
    base.update(kw)
    return SearchConfig(**base)


def test_search_resumes_and_refuses_other_settings(tmp_path):
    db = str(tmp_path / "pop.sqlite")
    out1 = run_search(_cfg(), db)
    assert out1["evaluated"] == 2 + 3
    assert out1["best_fitness"] >= out1["seed_fitness"]["cfr_plus"]  # the best is never worse than a seed
    out2 = run_search(_cfg(generations=2), db)  # resume: only generation 2 is new
    assert out2["evaluated"] == 2 + 3 + 3
    assert set(out2["test"]["exploitability"]) == {"best", "cfr_plus", "dcfr"}
    with pytest.raises(KeelError, match="other settings"):
        run_search(_cfg(iters=31), db)


class _FakeLLM(BaseHTTPRequestHandler):
    requests: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeLLM.requests.append(body)
        part = next(
            p
            for p in ("accumulate_regret", "regret_to_policy", "accumulate_policy")
            if f"Rewrite the function `{p}`" in body["messages"][-1]["content"]
        )
        args = {"accumulate_policy": "S, c, t, mem, seg"}.get(part, "R, r, t, mem, seg")
        ret = {
            "accumulate_regret": "np.maximum(R + 1.5 * r, 0.0)",
            "regret_to_policy": "np.maximum(R + r, 0.0)",
            "accumulate_policy": "S + t ** 2 * c",
        }[part]
        reply = f"Here you go:\n```python\ndef {part}({args}):\n    return {ret}\n```\nDone."
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture()
def fake_llm():
    server = HTTPServer(("127.0.0.1", 0), _FakeLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_openai_mutator_splices_the_rewrite(fake_llm):
    m = OpenAIMutator(fake_llm, model="canned", seed=0)
    child, desc = m.mutate(seed_source("cfr"), fitness=-0.1)
    assert desc.startswith("llm: rewrite of")
    check_source(child)
    req = _FakeLLM.requests[-1]
    assert req["model"] == "canned" and req["messages"][0]["role"] == "system"
    assert "1.000e-01" in req["messages"][-1]["content"]


def test_search_with_llm_mutator(tmp_path, fake_llm):
    out = run_search(_cfg(mutator="llm", llm_url=fake_llm, test=[]), str(tmp_path / "llm.sqlite"))
    assert out["evaluated"] >= 3 and out["ok"] >= 3


def test_llm_errors_are_clear(tmp_path):
    with pytest.raises(KeelError, match="--llm-url"):
        run_search(_cfg(mutator="llm"), str(tmp_path / "x.sqlite"))
    with pytest.raises(ValueError, match="no parsable"):
        extract_function("I cannot help with that.", "accumulate_regret")
    m = OpenAIMutator("http://127.0.0.1:9/v1", timeout=2)
    with pytest.raises(ValueError, match="failed"):
        m.mutate(seed_source("cfr"))


def test_discover_cli_json(tmp_path):
    res = CliRunner().invoke(
        __import__("keel.cli", fromlist=["app"]).app,
        [
            "discover",
            "cfr",
            "--train",
            "kuhn_poker,goofspiel(num_cards=3)",
            "--test",
            "kuhn_poker",
            "--generations",
            "1",
            "--population",
            "2",
            "--iters",
            "20",
            "--test-iters",
            "20",
            "--seeds",
            "cfr_plus",
            "--db",
            str(tmp_path / "cli.sqlite"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["evaluated"] == 3 and "def accumulate_regret" in out["code"]
    assert set(out["train_scores"]) == {"kuhn_poker", "goofspiel(num_cards=3)"}


def test_psro_meta_solver_search(tmp_path):
    cfg = _cfg(test=["kuhn_poker"], population=2, iters=4, test_iters=4, kind="psro", seeds=["uniform", "rm"])
    out = run_search(cfg, str(tmp_path / "psro.sqlite"))
    assert out["ok"] >= 2 and "def meta_solver" in out["code"]
    assert out["seed_fitness"]["rm"] > out["seed_fitness"]["uniform"]  # regret matching beats fictitious play
    assert set(out["test"]["exploitability"]) == {"best", "rm", "prd"}
    with pytest.raises(KeelError, match="needs scipy"):
        seed_source("nash", "psro")


def test_validation_picks_among_discovered_programs(tmp_path):
    cfg = _cfg(validate=["goofspiel(num_cards=3)"], finalists=2, test=[])
    out = run_search(cfg, str(tmp_path / "val.sqlite"))
    val = out["validation"]
    assert val["picked"] == out["best_id"] and len(val["mean_exploitability"]) == 2
    assert out["best_name"] is None  # a discovered program, not a seed
    scored = {k: v for k, v in val["mean_exploitability"].items() if v is not None}
    assert scored[out["best_id"]] == min(scored.values())
