"""The research world as an agentic text environment (`keel.envs.agentic`): Search-R1's interaction loop
(arXiv 2503.09516) with the switches of the Search-R1++ study (arXiv 2602.19526).

One episode is one question. Each model turn is optionally `<think>...</think>`, then exactly one action:
`<search>query</search>` (the env answers with the top-k passages of `keel.memory` retrieval inside
`<information>...</information>`, role "tool", so the trainer masks it out of the loss) or
`<answer>text</answer>` (the episode ends and is judged). A turn with neither is an error observation, never
the end; running out of turns truncates the episode unanswered.

Switches (config fields):
- `template`: "slow" is Search-R1's prompt (reason in <think> before every action); "fast" asks for the
  action directly with no written reasoning, the template Search-R1++ found more stable.
- `reward`: "em" (exact match), "f1" (token F1, which rewards partial answers and, in the study, collapses
  through answer avoidance), "f1_penalised" (F1 minus `avoid_penalty` when the episode ends with no answer
  and minus `search_penalty` per search: the action-level penalties). Rewards are given on the last turn.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace
from typing import Any, Literal

import gymnasium as gym
from pydantic import Field

from keel.config import KeelModel, validate
from keel.envs.agentic_space import clean, text_space
from keel.envs.research.data import corpus_index, research_data
from keel.envs.research.questions import QUERIES, exact_match, f1
from keel.envs.research.search import EmbedderName, Mode, information
from keel.errors import KeelError

MAX_OBS = 8192
MAX_ACTION = 2048

SLOW = ("Answer the question by searching a knowledge base. Every time you receive new information, first "
        "reason inside <think> and </think>. If you lack knowledge, search with <search> query </search>; the "
        "results come back between <information> and </information>. Search as often as you need. When you "
        "know the answer, give it inside <answer> and </answer> with no explanation, e.g. "
        "<answer> Varlo Dunmere </answer>.")
FAST = ("Answer the question by searching a knowledge base. Do not write out your reasoning. If you lack "
        "knowledge, reply with <search> query </search>; the results come back between <information> and "
        "</information>. Search as often as you need. When you know the answer, reply with <answer> and "
        "</answer> around it and nothing else, e.g. <answer> Varlo Dunmere </answer>.")
TEMPLATES = {"slow": SLOW, "fast": FAST}

_THINK = re.compile(r"^\s*<think>(.*?)</think>", re.S)
_ACTION = re.compile(r"<(search|answer)>(.*?)(?:</\1>|$)", re.S)  # an unclosed last tag (a stop string) counts
FORMAT_HINT = "Reply with <search> query </search> or <answer> answer </answer>."


class ResearchEnvConfig(KeelModel):
    """The env's settings (what an agent-training preset puts under env.options)."""

    seed: int = 0  # the world's seed
    entities: int = Field(2400, ge=200)
    split: Literal["train", "test"] = "train"  # questions drawn when reset names none
    hops: list[int] = [1, 2, 3, 4]  # the hop counts drawn from (task_ids keeps to these too)
    template: Literal["fast", "slow"] = "fast"
    reward: Literal["em", "f1", "f1_penalised"] = "em"
    avoid_penalty: float = Field(0.5, ge=0)  # f1_penalised: charged when the episode ends with no answer
    search_penalty: float = Field(0.02, ge=0)  # f1_penalised: charged per search
    retriever: Mode = "hybrid"
    embedder: EmbedderName = "hash"
    top_k: int = Field(3, ge=1, le=20)
    max_turns: int = Field(6, gt=0)
    max_passage_chars: int = Field(300, gt=0)


def read_reply(reply: str) -> tuple[str | None, str, str]:
    """(action, argument, thought) of a turn; action None when it holds neither <search> nor <answer>. A
    tag left open at the end of the turn reads to the end (samplers that stop at "</search>" cut it off)."""
    m = _THINK.match(reply)
    thought = m.group(1).strip() if m else ""
    act = _ACTION.search(reply, m.end() if m else 0)
    if act is None:
        return None, "", thought
    return act.group(1), act.group(2).strip(), thought


class ResearchAgentEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, **config: Any):
        self.cfg = validate(ResearchEnvConfig, config, "research agent env")
        if not set(self.cfg.hops) <= {1, 2, 3, 4} or not self.cfg.hops:
            raise KeelError(f"research agent env: hops must be a non-empty subset of [1, 2, 3, 4], got {self.cfg.hops}")
        self.observation_space = text_space(MAX_OBS)
        self.action_space = text_space(MAX_ACTION)
        self.data = research_data(self.cfg.seed, self.cfg.entities)
        self.index = corpus_index(self.cfg.seed, self.cfg.entities, self.cfg.embedder)
        self.question = None
        self.done = True

    # --- AgentTasks -----------------------------------------------------------------------------
    def task_ids(self, split: str) -> list[str]:
        if split not in ("train", "test"):
            return []  # the world has no held-out templates; its test split holds out entities
        hops = set(self.cfg.hops)
        return [i for i in self.data.split(split) if self.data.questions[i].hops in hops]

    def expert_reply(self) -> str | None:
        """Search hop by hop for the entity the chain passes through, reading each hop's answer from the
        passages retrieved last (the facts they state); rephrase the query when they miss it, and after
        `len(QUERIES)` misses go on with the true entity (counted as `blind` hops). Then answer."""
        if self.question is None or self.done:
            return None
        q, ents = self.question, self.data.world.entities
        if len(self.found) < q.hops:  # read the last results for the hop being searched
            subject, rel = self.found[-1] if self.found else q.chain[0], q.relations[len(self.found)]
            for d in self.last_docs:
                hit = next((o for s_, r, o in self.data.docs[d].facts if s_ == subject and r == rel), None)
                if hit is not None:
                    self.found.append(hit)
                    self.tries = 0
                    break
            else:
                if self.tries >= len(QUERIES):
                    self.found.append(q.chain[len(self.found) + 1])
                    self.stats["blind"] += 1
                    self.tries = 0
        slow = self.cfg.template == "slow"
        if len(self.found) < q.hops:
            subject = ents[self.found[-1] if self.found else q.chain[0]].name
            query = QUERIES[self.tries](q.relations[len(self.found)], subject)
            self.tries += 1
            think = f"<think>I need to find {query}.</think>\n" if slow else ""
            return f"{think}<search> {query} </search>"
        answer = ents[self.found[-1]].name
        think = f"<think>The answer is {answer}.</think>\n" if slow else ""
        return f"{think}<answer> {answer} </answer>"

    # --- Gymnasium ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        task = options.get("task")
        if task is None:
            ids = self.task_ids(self.cfg.split)
            task = random.Random(int(self.np_random.integers(2**31))).choice(ids)
        if task not in self.data.questions:
            raise KeelError(f"research agent env: unknown task {task!r}; ids look like 'train-2-17' "
                            "(split-hops-index), see task_ids(split)")
        self.question = self.data.questions[task]
        self.done = False
        self.stats = {"turns": 0, "searches": 0, "malformed": 0, "thoughts": 0, "blind": 0}
        self.answer: str | None = None
        self.found: list[int] = []  # the expert's notebook: the entity each hop led to
        self.tries, self.last_docs = 0, []
        self.evidence: set[tuple[int, str, int]] = set()
        info = {"system": TEMPLATES[self.cfg.template], "task": task, "role": "user", "hops": self.question.hops}
        return clean(f"Question: {self.question.text}", MAX_OBS), info

    def step(self, action: str):
        if self.question is None or self.done:
            raise KeelError("research agent env: call reset() before step() (and again after an episode ends)")
        s, q = self.stats, self.question
        s["turns"] += 1
        act, arg, thought = read_reply(str(action))
        s["thoughts"] += int(bool(thought))
        terminated, malformed, role = False, False, "tool"
        if act == "search" and arg:
            s["searches"] += 1
            passages = self.index.search(arg, self.cfg.top_k, self.cfg.retriever)
            self.last_docs = [p.doc for p in passages]
            need = set(zip(q.chain[:-1], q.relations, q.chain[1:], strict=True))
            self.evidence |= {f for d in self.last_docs for f in self.data.docs[d].facts if f in need}
            msg = information([replace(p, text=p.text[: self.cfg.max_passage_chars]) for p in passages])
        elif act == "answer":
            self.answer, terminated, role, msg = arg, True, "user", "The episode is over."
        else:
            malformed, role = True, "user"
            s["malformed"] += 1
            what = "an empty search" if act == "search" else f"no action in {str(action).strip()[:80]!r}"
            msg = f"ERROR: {what}. {FORMAT_HINT}"
        truncated = not terminated and s["turns"] >= self.cfg.max_turns
        reward = 0.0
        info: dict[str, Any] = {"role": role, "malformed": malformed, "task": q.id}
        if terminated or truncated:
            self.done = True
            reward, info["episode"] = self._judge(truncated)
        return clean(msg, MAX_OBS), reward, terminated, truncated, info

    def _judge(self, truncated: bool) -> tuple[float, dict[str, Any]]:
        q, s, cfg = self.question, self.stats, self.cfg
        answered = self.answer is not None
        em = exact_match(self.answer, q.answer) if answered else 0.0
        score = f1(self.answer, q.answer) if answered else 0.0
        if cfg.reward == "em":
            reward = em
        elif cfg.reward == "f1":
            reward = score
        else:
            reward = score - cfg.search_penalty * s["searches"] - (0.0 if answered else cfg.avoid_penalty)
        episode = {"success": bool(em), "em": em, "f1": score, "searches": s["searches"], "hops": q.hops,
                   "answered": answered, "turns": s["turns"], "malformed": s["malformed"],
                   "thoughts": s["thoughts"], "evidence": len(self.evidence) / q.hops, "blind": s["blind"], "truncated": truncated,
                   "answer_type": q.answer_type}
        return reward, episode
