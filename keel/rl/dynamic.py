"""DAPO dynamic sampling: over-sample and keep only groups whose rewards differ.

Yu et al. 2025, "DAPO", arXiv 2503.14476, section 3.2. A group whose G rewards are all equal has advantage
0 for every completion (all right or all wrong), so it carries no gradient and only dilutes the batch.
DAPO keeps drawing fresh groups and drops those, until the batch holds `want` informative groups:
    keep group g  iff  0 < #{i in g : correct_i} < G   (here: iff max_i r_i > min_i r_i)
The number of draws is bounded (`max_tries`); what happened is reported, and a batch that could not be
filled trains on the informative groups it found (none: the step is a no-op).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar


class GroupBatch(Protocol):
    rewards: object  # [B] tensor, rows laid out group by group

    def groups(self, group_size: int) -> int: ...
    def informative(self, group_size: int) -> list[int]: ...
    def select_groups(self, idx: list[int], group_size: int): ...


B = TypeVar("B", bound=GroupBatch)


def fill(draw: Callable[[int], B], cat: Callable[[list[B]], B], want: int, group_size: int,
         max_tries: int) -> tuple[B, dict]:
    """Call `draw(try_index)` until `want` informative groups are found or `max_tries` draws were made."""
    kept: list[B] = []
    n_kept = drawn = 0
    last = None
    tries = 0
    while tries < max(1, max_tries) and n_kept < want:
        last = draw(tries)
        tries += 1
        good = last.informative(group_size)[: want - n_kept]
        drawn += last.groups(group_size)
        if good:
            kept.append(last.select_groups(good, group_size))
            n_kept += len(good)
    batch = cat(kept) if kept else last.select_groups([], group_size)
    stats = {"dyn_tries": tries, "dyn_groups_drawn": drawn, "dyn_groups_kept": n_kept,
             "dyn_fill": n_kept / max(want, 1)}
    return batch, stats
