"""LLM mutators: ask a language model to rewrite one of the three CFR parts.

As in AlphaEvolve (arXiv 2602.16928), the model sees the parent program and its scores and returns a
new version of one function; we splice that function into the parent and hand the result to the
sandbox. Two back ends: any OpenAI-compatible chat-completions endpoint (plain urllib, so no client
library; base URL, model and key configurable), and the local SmolLM2 through `keel.llm`.
"""

from __future__ import annotations

import ast
import json
import os
import random
import re
import urllib.error
import urllib.request

from keel.discovery.sandbox import PARTS, UnsafeCode, check_source
from keel.errors import KeelError

SYSTEM = (
    "You design counterfactual regret minimization (CFR) variants for imperfect-information games. "
    "A variant is three numpy functions over one player's action slots: accumulate_regret(R, r, t, mem, seg) "
    "returns new accumulated regrets from the old ones R and this iteration's instantaneous regrets r; "
    "regret_to_policy(R, r, t, mem, seg) returns non-negative weights (normalised per information set); "
    "accumulate_policy(S, c, t, mem, seg) folds c = reach * current policy into the average-policy "
    "accumulator S. t is the iteration (from 1), mem a dict kept across iterations, seg.sum(x)/seg.max(x) "
    "reduce over each information set. Only numpy (as np) and math may be used; no I/O, no imports."
)


SYSTEM_PSRO = (
    "You design meta-strategy solvers for PSRO (policy-space response oracles). "
    "meta_solver(M, iteration) gets the empirical payoff tensor M of shape (|Pi_0|, ..., |Pi_{n-1}|, n), "
    "M[i_0, ..., p] = player p's return, and the PSRO iteration, and returns one probability vector "
    "per player over its population. Helpers: "
    "pure_payoffs(M, mixes, p), regret_match(r), project_simplex(y, floor). Only numpy (as np) and math; "
    "no I/O, no imports."
)


def build_prompt(code: str, part: str, fitness: float | None, system: str = SYSTEM) -> list[dict]:
    score = "unknown" if fitness is None else f"{-fitness:.3e}"
    user = (
        f"Current program (mean exploitability after training: {score}; lower is better):\n"
        f"```python\n{code}\n```\n"
        f"Rewrite the function `{part}` so that the average policy converges faster. "
        f"Reply with only the new `def {part}(...)` in one ```python block."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def extract_function(text: str, part: str) -> ast.FunctionDef:
    """The first `def part` in the reply (inside a code block if there is one)."""
    blocks = re.findall(r"```(?:python)?\s*\n(.*?)```", text, flags=re.S) or [text]
    for block in blocks:
        m = re.search(rf"^([ \t]*)def {re.escape(part)}\s*\(", block, flags=re.M)
        if not m:
            continue
        lines = block[m.start() :].splitlines()
        indent = len(m.group(1))
        src = "\n".join(line[indent:] if len(line) >= indent else line for line in lines)
        # Grow the snippet until it parses (stop at the first line that breaks the function).
        for end in range(len(src.splitlines()), 0, -1):
            try:
                mod = ast.parse("\n".join(src.splitlines()[:end]))
            except SyntaxError:
                continue
            fns = [s for s in mod.body if isinstance(s, ast.FunctionDef) and s.name == part]
            if fns:
                return fns[0]
    raise ValueError(f"the reply contains no parsable `def {part}`")


def splice(code: str, fn: ast.FunctionDef, parts: tuple[str, ...] = PARTS) -> str:
    tree = ast.parse(code)
    for i, s in enumerate(tree.body):
        if isinstance(s, ast.FunctionDef) and s.name == fn.name:
            tree.body[i] = fn
    ast.fix_missing_locations(tree)
    new = ast.unparse(tree) + "\n"
    check_source(new, parts)
    return new


class _LLMMutatorBase:
    def __init__(self, seed: int = 0, parts: tuple[str, ...] = PARTS):
        self.rng = random.Random(seed)
        self.parts = parts
        self.system = SYSTEM if parts == PARTS else SYSTEM_PSRO

    def complete(self, messages: list[dict]) -> str:
        raise NotImplementedError

    def mutate(self, code: str, other: str | None = None, fitness: float | None = None) -> tuple[str, str]:
        part = self.rng.choice(self.parts)
        text = self.complete(build_prompt(code, part, fitness, self.system))
        try:
            new = splice(code, extract_function(text, part), self.parts)
        except (ValueError, UnsafeCode, SyntaxError) as e:
            raise ValueError(f"unusable LLM rewrite of {part}: {e}") from None
        return new, f"llm: rewrite of {part}"


class OpenAIMutator(_LLMMutatorBase):
    """Any OpenAI-compatible `/chat/completions` endpoint (OpenAI, vLLM, llama.cpp server, Ollama...)."""

    def __init__(
        self,
        base_url: str,
        model: str = "default",
        api_key: str | None = None,
        seed: int = 0,
        temperature: float = 0.8,
        max_tokens: int = 600,
        timeout: float = 120.0,
        parts: tuple[str, ...] = PARTS,
    ):
        super().__init__(seed, parts)
        if not re.match(r"^https?://", base_url or ""):
            raise KeelError(
                f"--llm-url must be an http(s) URL like http://localhost:8000/v1, got {base_url!r}"
            )
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.temperature, self.max_tokens, self.timeout = model, temperature, max_tokens, timeout
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")

    def complete(self, messages: list[dict]) -> str:
        body = json.dumps(
            {
                "model": self.model,
                "messages": messages,
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data = json.loads(resp.read(2_000_000))
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as e:
            raise ValueError(f"LLM endpoint {self.url} failed: {e}") from None
        try:
            return data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"LLM endpoint {self.url} returned no choices[0].message.content") from None


class LocalMutator(_LLMMutatorBase):
    """The local SmolLM2 (or any `keel.llm.load_model` source), loaded lazily on first use."""

    def __init__(
        self,
        source: str = "smollm2",
        seed: int = 0,
        max_new_tokens: int = 300,
        parts: tuple[str, ...] = PARTS,
    ):
        super().__init__(seed, parts)
        self.source, self.max_new_tokens, self._model = source, max_new_tokens, None
        self._calls = 0

    def complete(self, messages: list[dict]) -> str:
        import keel.llm

        if self._model is None:
            self._model = keel.llm.load_model(self.source)
        model, tok = self._model
        self._calls += 1
        return keel.llm.generate(
            model,
            tok,
            [messages],
            max_new_tokens=self.max_new_tokens,
            temperature=0.8,
            seed=self.rng.randrange(2**31),
        )[0]
