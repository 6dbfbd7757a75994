"""Trajectory data augmentation (DA), the second AgentArk strategy (arXiv 2602.03955).

Where R-SFT keeps one trajectory per solved problem, DA keeps every distinct trajectory the verifier
accepts, from every agent and round, and also on problems whose debate ended on a wrong majority (a
minority agent that was right still teaches). Each debate-round step is kept twice: as the reply to the
plain problem, and as the reply to the debate prompt it answered (the others' answers and its own), so the
student also sees how a right answer is reached from wrong advice.
"""

from __future__ import annotations

from keel.distill.debate import Transcript
from keel.distill.rsft import Example


def da_examples(transcripts: list[Transcript], system: str | None = None, with_context: bool = True,
                ) -> list[Example]:
    """Every distinct verified trajectory of every transcript (deduplicated on prompt and reply)."""
    out: dict[Example, None] = {}
    for t in transcripts:
        plain = t.problem.messages(system)
        for s in t.steps:
            if not s.correct:
                continue
            out.setdefault(Example.of(plain, s.text))
            if with_context and s.saw:
                out.setdefault(Example.of(s.messages, s.text))
    return list(out)
