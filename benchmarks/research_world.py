"""Reference numbers of the research world (Search-R1 / Search-R1++ setting) before any learning:

- expert: the scripted expert (search hop by hop, read the hop's entity from the retrieved passages,
  rephrase on a miss, answer) on the test split, EM by hop count and retriever: the sanity ceiling, with
  its evidence recall (share of the chain's facts that came back from search), searches per question and
  "blind" hops (no rephrasing found the fact; the expert then goes on with the true entity).
- retrieval-then-answer (`keel.envs.research.baseline`): one search with the question, the answer read
  from the top passage; EM by hops and retriever: the no-RL row a trained agent must beat.

Retrievers: BM25, dense and hybrid (keel.memory's score fusion); dense with the hashing embedder and, unless
--quick, with MiniLM. Everything is on the test split (held-out entities).

    python benchmarks/research_world.py [--quick | --hash-only]   (full: flock /tmp/keel-long.lock nice -n 5 ...)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.resultsfile import goal, write_results  # noqa: E402
from keel.envs.research.agentic_env import ResearchAgentEnv  # noqa: E402
from keel.envs.research.baseline import retrieve_then_answer  # noqa: E402
from keel.envs.research.questions import exact_match  # noqa: E402


def expert(env: ResearchAgentEnv, ids: list[str]) -> dict:
    by: dict[int, list[dict]] = {}
    for t in ids:
        env.reset(seed=0, options={"task": t})
        while True:
            _, _, term, trunc, info = env.step(env.expert_reply())
            if term or trunc:
                break
        by.setdefault(info["episode"]["hops"], []).append(info["episode"])
    out = {}
    for h, eps in sorted(by.items()):
        n = len(eps)
        out[str(h)] = {"n": n, "em": sum(e["em"] for e in eps) / n,
                       "evidence_recall": sum(e["evidence"] for e in eps) / n,
                       "searches": sum(e["searches"] for e in eps) / n,
                       "blind_hops": sum(e["blind"] for e in eps) / n,
                       "truncated": sum(e["truncated"] for e in eps) / n}
    return out


def baseline(env: ResearchAgentEnv, ids: list[str]) -> dict:
    by: dict[int, list[float]] = {}
    for t in ids:
        q = env.data.questions[t]
        pred = retrieve_then_answer(env.data, env.index, q, env.cfg.retriever)
        by.setdefault(q.hops, []).append(exact_match(pred, q.answer))
    return {str(h): {"n": len(v), "em": sum(v) / len(v)} for h, v in sorted(by.items())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="hashing embedder only, 40 questions per hop")
    ap.add_argument("--hash-only", action="store_true", help="every test question, hashing embedder only "
                    "(no MiniLM indexing: well under a minute)")
    args = ap.parse_args()
    load0 = list(os.getloadavg())
    settings = [("bm25", "hash"), ("dense", "hash"), ("hybrid", "hash")]
    if not (args.quick or args.hash_only):
        settings += [("dense", "minilm"), ("hybrid", "minilm")]
    tables: dict = {"expert": {}, "retrieve_then_answer": {}, "world": {}, "seconds": {}}
    for mode, emb in settings:
        name = f"{mode}/{emb}" if mode != "bm25" else "bm25"
        t0 = time.perf_counter()
        env = ResearchAgentEnv(retriever=mode, embedder=emb)
        tables["seconds"][f"{name} build"] = round(time.perf_counter() - t0, 2)
        ids = env.task_ids("test")
        if args.quick:
            ids = [i for h in (1, 2, 3, 4) for i in [j for j in ids if env.data.questions[j].hops == h][:40]]
        t0 = time.perf_counter()
        tables["expert"][name] = expert(env, ids)
        tables["retrieve_then_answer"][name] = baseline(env, ids)
        tables["seconds"][f"{name} eval"] = round(time.perf_counter() - t0, 2)
        print(name, tables["expert"][name], tables["retrieve_then_answer"][name], flush=True)
    d = env.data
    tables["world"] = {"entities": len(d.world.entities), "triples": len(d.world.triples()),
                       "documents": len(d.docs), "train_questions": len(d.split("train")),
                       "test_questions": len(d.split("test")),
                       "test_entities": sum(e.split == "test" for e in d.world.entities)}
    ex = tables["expert"]["hybrid/hash"]
    rta = tables["retrieve_then_answer"]["hybrid/hash"]
    goals = [
        goal("expert EM on 4-hop test questions (hybrid, hash embedder)", ex["4"]["em"], 1.0, "EM",
             ex["4"]["em"] >= 0.99),
        goal("expert evidence recall, 4-hop (every hop's fact retrieved)", ex["4"]["evidence_recall"], 0.95,
             "share of chain facts", ex["4"]["evidence_recall"] >= 0.95),
        goal("retrieval-then-answer EM falls with hops (1-hop > 4-hop, hybrid)",
             [rta["1"]["em"], rta["4"]["em"]], "1-hop > 4-hop", "EM", rta["1"]["em"] > rta["4"]["em"]),
    ]
    notes = ["test split = questions whose whole chain is on the held-out side of the entity split",
             "expert EM is a ceiling of the world, not of a model: it knows which relation each hop needs; "
             "blind hops (fact not found by any rephrasing) continue with the true entity and are counted",
             "retrieval-then-answer knows the answer's type from the question's outer phrase and reads the "
             "first entity of that type in the top passage that the question does not name"]
    path = write_results("research_world", tables, goals, notes, load_average_start=load0)
    print(path)


if __name__ == "__main__":
    main()
