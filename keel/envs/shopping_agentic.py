"""PAHF's shopping world as an agentic text environment in which the agent's memory is a tool.

PAHF (Liang et al., "Learning Personalized Agents from Human Feedback", arXiv 2602.16173) keeps a user's
preferences in memory, asks before acting when memory has nothing, and rewrites a preference when the
user corrects a purchase. Here those moves are the agent's own tool calls, so RL can learn them: one
episode is a shopping session of REQUESTS requests from one simulated user (`keel.memory.shopping_env`),
each slot (category, context) asked for twice, with four tools:

    ask_user()              the user states the preference for the current request (costs ask_cost)
    memory_search(query)    searches the agent's memory (`keel.memory.Memory`, empty at each reset)
    memory_add(text)        writes to it
    buy(product_id)         buys; the user answers (with a correction when wrong) and the next request comes

Calls are one JSON line as in toolworld (`keel.agents.parsing`). Reward, on the last turn: the share of
purchases the user wanted minus ask_cost per question over REQUESTS, so asking once and remembering beats
asking every time. Splits: `test` = unseen users (personas) on the training categories, `test-templates` =
sessions over the held-out categories (HELD_OUT_CATEGORIES).
"""

from __future__ import annotations

import hashlib
import json
import random
from functools import cache
from typing import Any, Literal

import gymnasium as gym
from pydantic import Field

from keel.agents.base import Finish
from keel.agents.parsing import ParseError, parse_action
from keel.config import KeelModel, validate
from keel.envs.agentic_space import clean, text_space
from keel.envs.toolworld.tasks import Call
from keel.errors import KeelError
from keel.memory.pahf import parse_value
from keel.memory.shopping_env import CATEGORIES, CONTEXTS, ShoppingEnv

USERS, SESSIONS = 60, 20  # task ids shop.USER.SESSION
REQUESTS = 4
HELD_OUT_CATEGORIES = ("backpack", "shirt")
TEST_USER_FRACTION = 0.2
TOOLS = ("ask_user", "memory_search", "memory_add", "buy")
MAX_OBS, MAX_ACTION = 4096, 512

SYSTEM = (
    "You are Emma's shopping assistant. For each request buy the product she prefers. You have a memory that "
    "lasts the whole session.\nTools:\n"
    "- ask_user(): ask Emma which variant she prefers for this request (asking has a cost)\n"
    "- memory_search(query): search your memory\n"
    "- memory_add(text): remember something\n"
    "- buy(product_id): buy a product from the catalog\n"
    'Reply with ONE line of JSON: {"tool": "NAME", "args": {"ARGUMENT": "VALUE"}}.\n'
    'Example: {"tool": "memory_search", "args": {"query": "preference for tea for work"}}'
)


class ShoppingEnvConfig(KeelModel):
    split: Literal["train", "test", "test-templates"] = "train"  # sessions drawn when reset names none
    max_turns: int = Field(20, gt=0)
    ask_cost: float = Field(0.25, ge=0)
    drift: float = Field(0.0, ge=0, le=1)  # share of preferences that change halfway through the session
    embedder: Literal["hash", "minilm"] = "hash"  # hash: instant, lexical; minilm: the bundled sentence embedder


def _user_split(user: int) -> str:
    h = int.from_bytes(hashlib.sha256(f"shop-user-{user}".encode()).digest()[:8], "big")
    return "test" if h % 10_000 < TEST_USER_FRACTION * 10_000 else "train"


@cache
def all_sessions() -> dict[str, dict[str, Any]]:
    """Every session by id: its user (persona seed), its request slots, its split."""
    trained = [c for c in CATEGORIES if c not in HELD_OUT_CATEGORIES]
    out = {}
    for user in range(USERS):
        for s in range(SESSIONS):
            rng = random.Random(f"{user}-{s}")
            held = s % 4 == 3  # a quarter of each user's sessions use the held-out categories
            cats = list(HELD_OUT_CATEGORIES) if held else rng.sample(trained, 2)
            pair = [(c, rng.choice(CONTEXTS)) for c in cats]
            order = pair + pair
            rng.shuffle(order)
            while order[0] == order[1] or order[2] == order[3]:  # a repeat should need memory, not context
                rng.shuffle(order)
            split = "test-templates" if held else _user_split(user)
            out[f"shop.{user}.{s}"] = {"user": user, "slots": order, "split": split}
    return out


class ShoppingAgentEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, **config: Any):
        self.cfg = validate(ShoppingEnvConfig, config, "shopping agent env")
        self.observation_space = text_space(MAX_OBS)
        self.action_space = text_space(MAX_ACTION)
        self.memory = None
        self.episodes = 0
        self.done = True

    def close(self) -> None:
        if self.memory is not None:
            self.memory.close()
            self.memory = None

    def _fresh_memory(self):
        from keel.memory.memory import Memory

        if self.memory is None:
            if self.cfg.embedder == "hash":
                from keel.memory.embedder import HashEmbedder

                emb = HashEmbedder()
            else:
                from keel.memory.embedder import default_embedder

                emb = default_embedder()
            self._embedder = emb
        else:
            self.memory.close()
        self.episodes += 1  # a new namespace: the agent starts each session with an empty memory
        self.memory = Memory(":memory:", namespace=f"session{self.episodes}", embedder=self._embedder,
                             organise=False, abstain_below=0.0)

    # --- AgentTasks -----------------------------------------------------------------------------
    def task_ids(self, split: str) -> list[str]:
        from keel.envs.agentic import SPLITS

        if split not in SPLITS:
            raise KeelError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
        ids = [t for t, s in all_sessions().items() if s["split"] == split]
        # a fixed hash order, so that any prefix (an eval's first N sessions) mixes users
        return sorted(ids, key=lambda t: hashlib.sha256(f"order|{t}".encode()).digest())

    def expert_reply(self) -> str | None:
        """PAHF's policy as tool calls: store a correction, search memory, ask if it has nothing, store the
        answer, buy what the user prefers."""
        if self.done:
            return None
        c, ctx = self.slot
        if self.pending_correction is not None:
            return _call("memory_add", text=self.pending_correction)
        if self.searched is None:
            return _call("memory_search", query=f"preference for {c} {ctx}")
        value = self.searched or self.asked_value
        if value is None and not self.asked:
            return _call("ask_user")
        if self.asked_value is not None and not self.stored:
            return _call("memory_add", text=f"For {c} {ctx} the user prefers {self.asked_value}.")
        pick = next((p["id"] for p in self.shop.products if p["category"] == c and p["value"] == value),
                    self._candidates()[0])
        return _call("buy", product_id=pick)

    # --- Gymnasium ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = random.Random(int(self.np_random.integers(2**31)))
        tid = (options or {}).get("task")
        if tid is None:
            ids = self.task_ids(self.cfg.split)
            tid = rng.choice(ids)
        sessions = all_sessions()
        if tid not in sessions:
            raise KeelError(f"unknown shopping session {tid!r}; ids look like shop.USER.SESSION "
                            f"(USER < {USERS}, SESSION < {SESSIONS})")
        self.task_id, self.session = str(tid), sessions[tid]
        self.shop = ShoppingEnv(seed=self.session["user"], post_feedback=True)
        self._fresh_memory()
        self.k, self.correct, self.questions = 0, 0, 0
        self.stats = {"turns": 0, "calls": 0, "malformed": 0, "memory_searches": 0, "memory_adds": 0}
        self.pending_correction: str | None = None
        self.done = False
        msg = self._start_request()
        return clean(msg, MAX_OBS), {"system": SYSTEM, "task": self.task_id, "role": "user",
                                     "template": "held-out categories" if self.session["split"] == "test-templates"
                                     else "trained categories"}

    def _candidates(self) -> list[str]:
        return [p["id"] for p in self.shop.products if p["category"] == self.slot[0]]

    def _start_request(self) -> str:
        if self.cfg.drift and self.k == REQUESTS // 2:
            self.shop.drift(self.cfg.drift)
        self.slot = tuple(self.session["slots"][self.k])
        obs, _ = self.shop.reset(options={"task": self.slot})
        self.searched: str | None = None  # the preference the last search found ("" when none)
        self.asked, self.asked_value, self.stored = False, None, False
        return f"Request {self.k + 1} of {REQUESTS}: {obs.removeprefix('Task: ')}"

    def step(self, action: str):
        if self.done:
            raise KeelError("shopping agent env: call reset() before step() (and again after an episode ends)")
        self.stats["turns"] += 1
        malformed, terminated = False, False
        try:
            act = parse_action(str(action), set(TOOLS))
            if isinstance(act, Finish):
                raise ParseError('the session is not over: call a tool, e.g. {"tool": "buy", "args": '
                                 '{"product_id": "p000"}}')
        except ParseError as e:
            malformed, msg, role = True, f"ERROR: {e}", "user"
            self.stats["malformed"] += 1
        else:
            self.stats["calls"] += 1
            msg, terminated = self._tool(act)
            role = "tool"
        truncated = not terminated and self.stats["turns"] >= self.cfg.max_turns
        reward = 0.0
        info: dict[str, Any] = {"role": role, "malformed": malformed, "denied": False, "task": self.task_id}
        if terminated or truncated:
            self.done = True
            accuracy = self.correct / REQUESTS
            reward = accuracy - self.cfg.ask_cost * self.questions / REQUESTS
            info["episode"] = {"success": self.correct == REQUESTS, "accuracy": accuracy,
                               "questions": self.questions, **self.stats, "denied": 0, "truncated": truncated}
        return clean(msg, MAX_OBS), reward, terminated, truncated, info

    def _tool(self, call: Call) -> tuple[str, bool]:
        args = call.args if isinstance(call.args, dict) else {}
        c, ctx = self.slot
        if call.tool == "ask_user":
            if self.asked:
                return "Result of ask_user: I already told you for this request.", False
            self.asked, self.questions = True, self.questions + 1
            answer, *_ = self.shop.step("ask")
            self.asked_value = parse_value(answer, c)
            return f"Result of ask_user: {answer}", False
        if call.tool == "memory_search":
            query = str(args.get("query", "")).strip()
            if not query:
                return "ERROR: memory_search needs a query", False
            self.stats["memory_searches"] += 1
            hits = self.memory.search(query, k=3, mode="hybrid")
            mine = sorted((h for h in hits if c in h["text"] and ctx in h["text"]), key=lambda h: h["ts"])
            found = parse_value(mine[-1]["text"], c) if mine else None
            if self.searched is None or found:
                self.searched = found or ""
            lines = [f"- {h['text']}" for h in hits]
            return "Result of memory_search: " + ("\n".join(lines) if lines else "nothing found"), False
        if call.tool == "memory_add":
            text = str(args.get("text", "")).strip()
            if not text:
                return "ERROR: memory_add needs a text", False
            self.memory.add(text[:500], source="agent")
            self.stats["memory_adds"] += 1
            if self.pending_correction is not None and text == self.pending_correction:
                self.pending_correction = None
            if self.asked_value is not None and self.asked_value in text and c in text:
                self.stored = True
            return "Result of memory_add: stored", False
        # buy
        pid = str(args.get("product_id", args.get("id", ""))).strip()
        if pid not in self._candidates():
            return (f"ERROR: {pid!r} is not a {c} in the catalog; ids: {', '.join(self._candidates())}", False)
        feedback, r, *_ = self.shop.step(f"buy {pid}")
        self.correct += int(r >= 1)
        if r < 1:
            value = parse_value(feedback, c)
            self.pending_correction = f"For {c} {ctx} the user prefers {value}." if value else None
        self.k += 1
        if self.k == REQUESTS:
            return f"Result of buy: {feedback} The session is over.", True
        return f"Result of buy: {feedback}\n\n{self._start_request()}", False


def _call(tool: str, **args: Any) -> str:
    return json.dumps({"tool": tool, "args": args})
