"""Multi-agent debate (Du et al. 2023, arXiv 2305.14325) on Keel's verifiable text tasks: the teacher of
AgentArk (arXiv 2602.03955).

N agents answer each problem alone (round 0); in every later round each agent sees its own last answer and
the others' and answers again. The debate's answer is the majority of the last round's answers. An agent is
a policy: the same model with its own sampling seed and optional system prompt, or another checkpoint.

A transcript records every step with its attribution: which agent spoke in which round, what it saw (the
indices of the earlier steps shown to it), its answer key, whether the task's verifier accepts it, and the
tokens it cost (prompt + generated), so the debate's inference cost is measured, not estimated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from keel.config import KeelModel
from keel.distill.answers import answer_key
from keel.distill.ensemble import majority_vote
from keel.envs.text import Problem, TextTask
from keel.errors import KeelError
from keel.llm.sampler import sample


class DebateConfig(KeelModel):
    agents: int = 3
    rounds: int = 2  # round 0 (alone) + rounds - 1 rounds of debate
    max_new_tokens: int = 8
    temperature: float = 0.7
    top_p: float = 1.0
    batch: int = 32  # problems per sampling call


@dataclass
class Agent:
    """One debater: a model (or checkpoint) with its tokenizer and optional system prompt."""

    model: object
    tokenizer: object
    system: str | None = None


@dataclass
class Step:
    round: int
    agent: int
    text: str
    key: str | None  # the answer it commits to (keel.distill.answers)
    correct: bool  # the task's verifier accepts it
    messages: list[dict]  # the prompt the agent saw
    saw: list[int]  # indices into Transcript.steps of the steps shown to it
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Transcript:
    problem: Problem
    steps: list[Step] = field(default_factory=list)
    answer: str | None = None  # the majority of the last round
    correct: bool = False

    @property
    def tokens(self) -> int:
        """Tokens processed by all agents for this problem (prompt + generated, every step)."""
        return sum(s.prompt_tokens + s.completion_tokens for s in self.steps)

    @property
    def generated(self) -> int:
        return sum(s.completion_tokens for s in self.steps)

    def round(self, r: int) -> list[Step]:
        return [s for s in self.steps if s.round == r]


def debate_messages(problem: Problem, own: str | None, others: list[str], system: str | None) -> list[dict]:
    """The prompt of a debate round: the others' answers and the agent's own, then the original question
    (last, so its instruction on the reply's form is what the agent reads last)."""
    if own is None and not others:
        return problem.messages(system)
    lines = ["Other agents answered this question:"] + [f"- {o.strip() or '(no answer)'}" for o in others]
    if own is not None:
        lines.append(f"Your previous answer: {own.strip() or '(no answer)'}")
    lines += ["Check these answers, then answer the question yourself.", "", problem.prompt]
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": "\n".join(lines)}]


def debate(agents: list[Agent], task: TextTask, problems: list[Problem], cfg: DebateConfig,
           seed: int = 0) -> list[Transcript]:
    """Run the debate on every problem (batched per agent and round); one transcript per problem."""
    if len(agents) != cfg.agents:
        raise KeelError(f"debate config says {cfg.agents} agents but {len(agents)} were given")
    if cfg.agents < 1 or cfg.rounds < 1:
        raise KeelError(f"a debate needs agents >= 1 and rounds >= 1 (got {cfg.agents}, {cfg.rounds})")
    out = [Transcript(p) for p in problems]
    last: list[list[int]] = [[-1] * cfg.agents for _ in problems]  # step index of each agent's last answer
    for r in range(cfg.rounds):
        new: list[list[int]] = [row[:] for row in last]
        for a, agent in enumerate(agents):
            prompts, saw = [], []
            for i, t in enumerate(out):
                own = t.steps[last[i][a]].text if r > 0 else None
                other_idx = [last[i][b] for b in range(cfg.agents) if b != a] if r > 0 else []
                prompts.append(debate_messages(t.problem, own, [t.steps[j].text for j in other_idx], agent.system))
                saw.append(([last[i][a]] if r > 0 else []) + other_idx)
            for lo in range(0, len(problems), cfg.batch):
                chunk = list(range(lo, min(lo + cfg.batch, len(problems))))
                s = sample(agent.model, agent.tokenizer, [prompts[i] for i in chunk], n=1,
                           max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                           seed=seed * 1_000_003 + r * 1009 + a * 101 + lo)
                for k, i in enumerate(chunk):
                    t, text = out[i], s.texts[k]
                    t.steps.append(Step(r, a, text, answer_key(task, text), task.score(t.problem, text).correct,
                                        prompts[i], saw[i], len(s.prompt_ids[k]), len(s.completion_ids[k])))
                    new[i][a] = len(t.steps) - 1
        last = new
    for t in out:
        final = t.round(cfg.rounds - 1)
        t.answer = majority_vote([s.key for s in final])
        t.correct = any(s.correct for s in final if s.key == t.answer) if t.answer is not None else False
    return out


def summary(transcripts: list[Transcript]) -> dict:
    """Accuracy of the debate's answer, of round 0's single agents, and its cost per problem in tokens."""
    n = max(len(transcripts), 1)
    first = [s for t in transcripts for s in t.round(0)]
    return {
        "accuracy": sum(t.correct for t in transcripts) / n,
        "round0_agent_accuracy": sum(s.correct for s in first) / max(len(first), 1),
        "tokens_per_problem": sum(t.tokens for t in transcripts) / n,
        "generated_per_problem": sum(t.generated for t in transcripts) / n,
        "n": len(transcripts),
    }


def to_dicts(transcripts: list[Transcript]) -> list[dict]:
    """Plain JSON-able transcripts (for debate.json in a run directory)."""
    return [{"problem": {"prompt": t.problem.prompt, "answer": t.problem.answer, "meta": t.problem.meta},
             "steps": [asdict(s) for s in t.steps], "answer": t.answer, "correct": t.correct} for t in transcripts]


def from_dicts(rows: list[dict]) -> list[Transcript]:
    return [Transcript(Problem(**r["problem"]), [Step(**s) for s in r["steps"]], r["answer"], r["correct"])
            for r in rows]
