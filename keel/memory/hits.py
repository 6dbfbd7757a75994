"""What a search returns, and the one place where a search decides to abstain."""

from __future__ import annotations

from typing import Any


class Hits(list):
    """A list of hit dicts (id, text, score, reliability, similarity, metadata, provenance, ...), plus whether
    the search abstained (its best support was below the threshold) and that support. Hierarchical
    searches also carry the facts and theme ids they went through."""

    abstained: bool = False
    support: float = 0.0
    mode: str = "reliable"
    facts: list[dict[str, Any]]
    themes: list[str]

    def __init__(self, *args: Any, mode: str = "reliable"):
        super().__init__(*args)
        self.mode = mode
        self.facts = []
        self.themes = []

    def decide(self, support: float, threshold: float) -> Hits:
        """Abstain when the best support (cosine similarity x MMA reliability of the best-supported
        candidate) is below `threshold`: the memory then returns nothing rather than weak evidence."""
        self.support = float(support)
        if self.support < threshold:
            self.abstained = True
            self.clear()
        return self
