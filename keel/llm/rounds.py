"""Bounded-round reasoning (InftyThink, arXiv 2503.06692; InftyThink+, arXiv 2602.06960).

The model reasons in rounds of at most `round_tokens` tokens. A round ends either with a summary it writes,
`<summary>...</summary>`, or with the conclusion `Answer: ...`. The next round's prompt is rebuilt from
scratch: the question and the latest summaries (`history` of them; the paper keeps one), never the
reasoning itself, so the context a round sees stays bounded however long the whole solution is (the
"sawtooth" memory pattern). A trajectory ends when a round concludes, when a round is malformed (neither
a summary nor an answer within its tokens), or after `max_rounds` rounds (the paper's phi).

One long chain of thought is the special case `max_rounds=1`: a single round that must conclude, with
`round_tokens` the whole budget. The baseline and the bounded policy thus run through the same code.

Round outputs are kept token-exact (ids and the behaviour log-probs the sampler drew them with), with
their prompts, so RL can train every round of a trajectory (`keel.rl.inftythink`).
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from typing import Literal

from keel.config import KeelModel
from keel.envs.text.chains import Trace, final_answer
from keel.errors import KeelError
from keel.llm.sampler import sample

SUMMARY_OPEN, SUMMARY_CLOSE = "<summary>", "</summary>"
SUMMARY = re.compile(re.escape(SUMMARY_OPEN) + r"(.*?)" + re.escape(SUMMARY_CLOSE), re.DOTALL)


class RoundsConfig(KeelModel):
    round_tokens: int = 48  # N: the most tokens one round may generate, its summary or answer included
    max_rounds: int = 12  # phi: rounds per trajectory at most
    history: int = 1  # summaries the next round sees, the latest ones (0: all of them)

    def check(self) -> None:
        if self.round_tokens < 4 or self.max_rounds < 1 or self.history < 0:
            raise KeelError("rounds: need round_tokens >= 4, max_rounds >= 1 and history >= 0 "
                            f"(got {self.round_tokens}, {self.max_rounds}, {self.history})")

    @property
    def budget(self) -> int:
        """Total tokens a trajectory may generate."""
        return self.round_tokens * self.max_rounds


def round_prompt(question: str, summaries: list[str], history: int = 1) -> str:
    """What a round sees: the question and the latest `history` summaries (all if 0), nothing else."""
    kept = summaries if history == 0 else summaries[-history:]
    return question + "\n" + "".join(f"{SUMMARY_OPEN}{s}{SUMMARY_CLOSE}\n" for s in kept)


def summary_round(steps: list[str], summary: str) -> str:
    return "\n".join([*steps, f"{SUMMARY_OPEN}{summary}{SUMMARY_CLOSE}"])


def final_round(steps: list[str], answer: str) -> str:
    return "\n".join([*steps, answer])


Kind = Literal["summary", "answer", "malformed"]


def parse_round(text: str) -> tuple[Kind, str]:
    """(kind, content): the conclusion's answer, the summary's text, or malformed (neither)."""
    if (ans := final_answer(text)) is not None:
        return "answer", ans
    found = SUMMARY.findall(text)
    if found and found[-1].strip():
        return "summary", found[-1].strip()
    return "malformed", ""


# --- cold-start data: a solver trace cut into rounds ----------------------------------------------------
@dataclass(frozen=True)
class RoundText:
    prompt: str
    completion: str
    final: bool  # ends with the answer (then EOS follows), else with a summary (the stop string)


def cut_trace(question: str, trace: Trace, cfg: RoundsConfig, count_tokens,
              rng: random.Random | None = None) -> list[RoundText]:
    """The trace as rounds: each round takes as many whole steps as fit in `round_tokens` (counted with
    `count_tokens(text)`, plus one for the EOS after an answer), ending where the solver allows a cut with
    that point's summary; the last round ends with the answer. Raises if it needs more than `max_rounds`
    rounds or one step does not fit in a round.

    With `rng`, a round that does not conclude ends at a cut point drawn uniformly among those that fit,
    so that over a training set rounds begin at every step, not only where greedy packing lands (with
    greedy cuts of two steps, a policy never saw a round begin past step 8 and could not begin one at 9)."""
    steps, summaries, out, i = list(trace.steps), [], [], 0
    while True:
        prompt = round_prompt(question, summaries, cfg.history)
        last = final_round(steps[i:], trace.answer)
        if count_tokens(last) + 1 <= cfg.round_tokens:
            out.append(RoundText(prompt, last, True))
            break
        fits = []
        for j in range(i + 1, len(steps) + 1):
            s = trace.summaries[j - 1]
            if s is None:
                continue
            text = summary_round(steps[i:j], s)
            if count_tokens(text) > cfg.round_tokens:
                break
            fits.append((j, s, text))
        if not fits:
            raise KeelError(f"round_tokens={cfg.round_tokens} is too small for one step of this trace and its "
                            "summary; raise rounds.round_tokens")
        i, s, text = rng.choice(fits) if rng is not None else fits[-1]
        out.append(RoundText(prompt, text, False))
        summaries.append(s)
        if len(out) >= cfg.max_rounds:
            raise KeelError(f"the trace needs more than max_rounds={cfg.max_rounds} rounds of "
                            f"{cfg.round_tokens} tokens; raise rounds.max_rounds or use shorter problems")
    return out


# --- rollouts --------------------------------------------------------------------------------------------
@dataclass
class Round:
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]  # behaviour log-probs of completion_ids
    text: str
    kind: Kind


@dataclass
class RoundTrajectory:
    question: str
    rounds: list[Round] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)
    ended: str = ""  # "answer", "malformed" or "rounds" (max_rounds used up without an answer)

    @property
    def final_text(self) -> str:
        """The text graded: the concluding round's, else the last round's."""
        return self.rounds[-1].text if self.rounds else ""

    @property
    def peak_context(self) -> int:
        """The longest context any forward pass of this trajectory attended over (prompt + round)."""
        return max((len(r.prompt_ids) + len(r.completion_ids) for r in self.rounds), default=0)

    @property
    def generated(self) -> int:
        return sum(len(r.completion_ids) for r in self.rounds)


def run_rounds(model, tokenizer, questions: list[str], cfg: RoundsConfig, temperature: float = 0.0,
               seed: int = 0) -> tuple[list[RoundTrajectory], float]:
    """One trajectory per question, all sampled together round by round; returns them and the seconds.

    Each round is one batched call of the KV-cache sampler over the live trajectories' fresh prompts
    (identical prompts, e.g. the first round of a GRPO group, are encoded once). A round stops at its
    summary's closing tag, at EOS, or at `round_tokens`."""
    cfg.check()
    t0 = time.perf_counter()
    trajs = [RoundTrajectory(q) for q in questions]
    for r in range(cfg.max_rounds):
        live = [t for t in trajs if not t.ended]
        if not live:
            break
        prompts = [round_prompt(t.question, t.summaries, cfg.history) for t in live]
        s = sample(model, tokenizer, prompts, n=1, max_new_tokens=cfg.round_tokens, temperature=temperature,
                   top_p=1.0, stop=[SUMMARY_CLOSE], seed=seed * 1_000_003 + r)
        for t, p, c, lp in zip(live, s.prompt_ids, s.completion_ids, s.logprobs, strict=True):
            # the sampler's text has the stop string cut off; the summary needs its closing tag to parse
            full = tokenizer.decode(c, skip_special_tokens=True)
            kind, content = parse_round(full)
            t.rounds.append(Round(list(p), list(c), list(lp), full, kind))
            if kind == "summary":
                t.summaries.append(content)
                if r == cfg.max_rounds - 1:
                    t.ended = "rounds"
            else:
                t.ended = kind
    return trajs, time.perf_counter() - t0
