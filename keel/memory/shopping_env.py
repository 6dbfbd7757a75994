"""A small online-shopping environment with a simulated user whose preferences drift, for PAHF
(Liang et al., "Learning Personalized Agents from Human Feedback", arXiv 2602.16173, whose shopping
benchmark this miniaturises).

Each episode the user asks for a product of some category in some context ("Buy me coffee for work."):
the request is ambiguous, because the catalog holds products of that category with different values of
one attribute (roast, colour, fit, ...), and the user wants the value their persona prefers for that
(category, context) slot. The agent may ask one clarifying question (action "ask"), then buys (action
"buy <product id>"). Reward 1 for the preferred product, 0 otherwise. When post-action feedback is on,
a wrong purchase is answered with a correction naming the current preference. `drift(fraction)`
changes that share of the persona's preferences (PAHF's persona shift).

It is a Gymnasium environment with text observations and actions.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

CATEGORIES: dict[str, tuple[str, list[str]]] = {
    "coffee": ("roast", ["light roast", "medium roast", "dark roast"]),
    "running shoes": ("colour", ["black", "white", "red", "blue"]),
    "headphones": ("style", ["over-ear", "in-ear", "on-ear"]),
    "tea": ("type", ["green", "black", "herbal"]),
    "shirt": ("fit", ["slim fit", "regular fit", "loose fit"]),
    "backpack": ("material", ["leather", "canvas", "nylon"]),
}
CONTEXTS = ["for work", "for the weekend"]
BRANDS = ["Acme", "Northwind", "Globex", "Initech", "Umbra", "Vela"]
_CHARSET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-'[]()#\n"


def catalog() -> list[dict[str, str]]:
    """Two products (brands) per category and attribute value."""
    items = []
    for c, (attr, values) in CATEGORIES.items():
        for v in values:
            for b in BRANDS[:2]:
                pid = f"p{len(items):03d}"
                items.append({"id": pid, "category": c, "attribute": attr, "value": v, "title": f"{b} {v} {c}"})
    return items


def slots() -> list[tuple[str, str]]:
    return [(c, ctx) for c in CATEGORIES for ctx in CONTEXTS]


class ShoppingEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, seed: int = 0, post_feedback: bool = True):
        self.observation_space = gym.spaces.Text(max_length=4096, charset=_CHARSET)
        self.action_space = gym.spaces.Text(max_length=32, charset=_CHARSET)
        self.products = catalog()
        self.by_id = {p["id"]: p for p in self.products}
        self.post_feedback = post_feedback
        self.rng = np.random.default_rng(seed)
        self.persona = {s: str(self.rng.choice(CATEGORIES[s[0]][1])) for s in slots()}
        self.task: tuple[str, str] | None = None
        self.asked = False

    # -- the simulated user -------------------------------------------------------------------------
    def drift(self, fraction: float = 0.5) -> list[tuple[str, str]]:
        """Change `fraction` of the preferences to a different value; returns the changed slots."""
        keys = slots()
        changed = [keys[i] for i in self.rng.choice(len(keys), size=round(fraction * len(keys)), replace=False)]
        for s in changed:
            others = [v for v in CATEGORIES[s[0]][1] if v != self.persona[s]]
            self.persona[s] = str(self.rng.choice(others))
        return changed

    def preference_text(self, slot: tuple[str, str]) -> str:
        c, ctx = slot
        return f"For {c} {ctx} I prefer {self.persona[slot]}."

    # -- Gymnasium ------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        keys = slots()
        self.task = keys[int(self.rng.integers(len(keys)))] if not options or "task" not in options \
            else tuple(options["task"])
        self.asked = False
        c, ctx = self.task
        listing = "\n".join(f"[{p['id']}] {p['title']}" for p in self.products if p["category"] == c)
        obs = f"Task: buy me {c} {ctx}.\nCatalog:\n{listing}"
        return obs, {"category": c, "context": ctx, "candidates": [p["id"] for p in self.products
                                                                    if p["category"] == c]}

    def step(self, action: str):
        assert self.task is not None, "call reset() first"
        act = str(action).strip()
        if act == "ask" and not self.asked:
            self.asked = True
            return self.preference_text(self.task), 0.0, False, False, {"asked": True}
        if act.startswith("buy "):
            p = self.by_id.get(act[4:].strip())
            if p is not None and p["category"] == self.task[0]:
                ok = p["value"] == self.persona[self.task]
                if ok:
                    fb = "Great, that is what I wanted."
                elif self.post_feedback:
                    fb = f"Not quite. {self.preference_text(self.task)}"
                else:
                    fb = ""
                return fb, float(ok), True, False, {"success": ok, "bought": p["id"]}
        return "I did not understand that.", 0.0, True, False, {"success": False, "invalid": True}
