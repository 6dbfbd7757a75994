"""The research world (Search-R1 / Search-R1++): its entities and relations, the entity split, that every
question is answerable from the corpus, the agentic env's contract, and the reward switches."""

from collections import Counter

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import keel.envs  # noqa: F401  (registers the Gymnasium ids)
from keel.envs.agentic import AgentTasks
from keel.envs.research.agentic_env import ResearchAgentEnv, read_reply
from keel.envs.research.baseline import asked_type
from keel.envs.research.data import research_data
from keel.envs.research.questions import exact_match, f1, normalize
from keel.envs.research.world import RELATIONS, TYPES, generate_world
from keel.errors import KeelError


@pytest.fixture(scope="module")
def data():
    return research_data()


@pytest.fixture(scope="module")
def env():
    return ResearchAgentEnv(retriever="bm25")


def run_expert(env, task):
    env.reset(seed=0, options={"task": task})
    while True:
        _, reward, term, trunc, info = env.step(env.expert_reply())
        if term or trunc:
            return reward, info["episode"]


def test_world_has_2000_entities_with_typed_functional_relations(data):
    w = data.world
    assert len(w.entities) >= 2000
    assert set(Counter(e.type for e in w.entities)) == set(TYPES)
    assert len({e.name.lower() for e in w.entities}) == len(w.entities)  # names are unique
    assert sum(e.twin_of is not None for e in w.entities) > 100  # near-twin names exist
    for e in w.entities:
        assert set(e.facts) == {r for r, (st, _) in RELATIONS.items() if st == e.type}
        for r, o in e.facts.items():
            assert w.entities[o].type == RELATIONS[r][1]
            assert w.entities[o].split == e.split  # relations never cross the entity split
    for c in w.by_type("country"):  # a capital lies in its own country
        assert w.entities[c.facts["capital"]].facts["located_in"] == c.id


def test_generation_is_deterministic_and_seeded():
    a, b, c = generate_world(3, 600), generate_world(3, 600), generate_world(4, 600)
    assert [(e.name, e.facts) for e in a.entities] == [(e.name, e.facts) for e in b.entities]
    assert [e.name for e in a.entities] != [e.name for e in c.entities]


def test_every_chain_fact_is_stated_in_two_documents_in_different_words(data):
    stated: dict[tuple, list[str]] = {}
    for d in data.docs:
        for f in d.facts:
            stated.setdefault(f, []).append(d.text)
    ents = data.world.entities
    for q in data.questions.values():
        for f in zip(q.chain[:-1], q.relations, q.chain[1:], strict=True):
            texts = stated[f]
            assert len(texts) >= 2 and all(ents[f[0]].name in t and ents[f[2]].name in t for t in texts)
    kinds = Counter(d.kind for d in data.docs)
    assert kinds["distractor"] > 0 and kinds["note"] > 0


def test_questions_cover_1_to_4_hops_and_splits_are_entity_disjoint(data, env):
    train, test = env.task_ids("train"), env.task_ids("test")
    assert train and test and not set(train) & set(test)
    qs = data.questions
    assert {qs[i].hops for i in test} == {1, 2, 3, 4}
    seen = {e for i in train for e in qs[i].chain}
    assert all(not set(qs[i].chain) & seen for i in test)
    assert env.task_ids("test-templates") == []


def test_expert_finds_every_hop_in_the_corpus_and_answers_exactly(data, env):
    ids = env.task_ids("test")
    for h in (1, 2, 3, 4):
        for t in [i for i in ids if data.questions[i].hops == h][:6]:
            reward, ep = run_expert(env, t)
            assert ep["em"] == 1.0 and reward == 1.0 and ep["answered"] and ep["hops"] == h
            assert ep["blind"] == 0 and ep["evidence"] == 1.0  # every hop's fact came back from search


def test_search_returns_information_and_a_malformed_turn_continues(env):
    env.reset(seed=0, options={"task": "test-2-0"})
    msg, r, term, trunc, info = env.step("I am not sure what to do")
    assert info["malformed"] and info["role"] == "user" and "ERROR" in msg and not (term or trunc) and r == 0
    msg, _, term, _, info = env.step("<think>look it up</think><search> who founded something </search>")
    assert msg.startswith("<information>") and msg.endswith("</information>") and info["role"] == "tool"
    assert not term


def test_max_turns_truncates_unanswered():
    env = ResearchAgentEnv(max_turns=2)
    env.reset(seed=0, options={"task": "train-1-0"})
    env.step("<search> x </search>")
    _, reward, term, trunc, info = env.step("<search> y </search>")
    assert trunc and not term and not info["episode"]["answered"] and reward == 0.0


def _answer(env, task, text, searches=0):
    env.reset(seed=0, options={"task": task})
    for _ in range(searches):
        env.step("<search> anything </search>")
    return env.step(f"<answer>{text}</answer>")


def test_reward_switches(data):
    task = next(i for i, q in data.questions.items() if q.split == "train" and q.answer_type == "person")
    gold = data.questions[task].answer
    partial = gold.split()[0]  # the first name only
    em, f1_, pen = (ResearchAgentEnv(reward=r, search_penalty=0.1) for r in ("em", "f1", "f1_penalised"))
    assert _answer(em, task, partial)[1] == 0.0
    assert _answer(f1_, task, partial)[1] == pytest.approx(f1(partial, gold)) and 0 < f1(partial, gold) < 1
    assert _answer(em, task, f"The {gold}.")[1] == 1.0
    assert _answer(pen, task, gold, searches=2)[1] == pytest.approx(1.0 - 0.2)
    for e in (f1_, pen):  # avoidance: never answering
        e.reset(seed=0, options={"task": task})
        for _ in range(e.cfg.max_turns):
            _, reward, term, trunc, info = e.step("<search> stalling </search>")
        assert trunc
        if e is f1_:
            assert reward == 0.0
        else:
            assert reward == pytest.approx(-e.cfg.avoid_penalty - 0.1 * e.cfg.max_turns)


def test_scoring_and_parsing():
    assert normalize("The  Quillax-Labs!") == "quillaxlabs"
    assert exact_match("the Orlen Vask", "Orlen Vask") == 1.0 and f1("Orlen", "Orlen Vask") == pytest.approx(2 / 3)
    assert read_reply("<think>hm</think> <search>a b</search>") == ("search", "a b", "hm")
    assert read_reply("<answer> X </answer>")[:2] == ("answer", "X")
    assert read_reply("just text")[0] is None
    assert asked_type("Who is the founder of the employer of Orlen Vask?") == "person"
    assert asked_type("What is the country containing Varn?") == "country"


def test_contract_and_check_env():
    env = gymnasium.make("keel/ResearchAgent-v0", template="slow").unwrapped
    assert isinstance(env, AgentTasks)
    _, info = env.reset(seed=1)
    assert "<think>" in info["system"] and info["task"].startswith("train-")
    assert env.expert_reply().startswith("<think>")
    check_env(env, skip_render_check=True)


def test_bad_config_is_a_clear_error():
    with pytest.raises(KeelError, match="hops"):
        ResearchAgentEnv(hops=[5])
    with pytest.raises(KeelError):
        ResearchAgentEnv(reward="bleu")
    with pytest.raises(KeelError, match="unknown task"):
        ResearchAgentEnv().reset(options={"task": "nope"})
