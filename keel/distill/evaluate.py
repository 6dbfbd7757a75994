"""One model answering alone: held-out accuracy and its inference cost in tokens, the yardstick every
distilled student, debate and ensemble in keel.distill is compared with."""

from __future__ import annotations

from keel.envs.text import Problem, TextTask
from keel.llm.sampler import sample


def single_model(model, tokenizer, task: TextTask, problems: list[Problem], max_new_tokens: int = 8,
                 system: str | None = None, batch: int = 32) -> dict:
    """Greedy accuracy, and tokens processed (prompt + generated) and generated per problem."""
    correct = tokens = generated = 0
    for lo in range(0, len(problems), batch):
        chunk = problems[lo : lo + batch]
        s = sample(model, tokenizer, [p.messages(system) for p in chunk], n=1, max_new_tokens=max_new_tokens,
                   temperature=0.0, seed=0)
        correct += sum(task.score(p, t).correct for p, t in zip(chunk, s.texts, strict=True))
        tokens += sum(len(p) for p in s.prompt_ids) + s.num_tokens
        generated += s.num_tokens
    n = max(len(problems), 1)
    return {"accuracy": correct / n, "tokens_per_problem": tokens / n, "generated_per_problem": generated / n,
            "n": len(problems)}
