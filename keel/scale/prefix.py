"""Prefix-tree merging (Forge): trajectories of a group that share a prefix are computed once.

A GRPO group is `group_size` completions of one prompt; in a multi-turn episode the earlier turns are
shared too. Put every trajectory (prompt + completion tokens) into a trie: each trie node is one token
position the learner's forward pass must compute once, however many trajectories pass through it.
`token_counts` reports the three numbers the issue asks for: tokens trained on (completion tokens),
tokens computed with merging (trie nodes), and tokens computed without (every row in full).

What the learner actually merges today is the prompt level (`keel.llm.logprobs.shared_prefix_logprobs`,
GRPO's `share_prefix`): the distinct prompts run once and their KV cache is repeated to the rows.
`prompt_merged` counts exactly that, so both the achieved and the attainable ratio are visible.
"""

from __future__ import annotations


def trie_size(seqs: list[list[int]]) -> int:
    """Number of distinct prefixes (trie nodes, the root excluded) over `seqs`."""
    root: dict = {}
    nodes = 0
    for s in seqs:
        node = root
        for tok in s:
            nxt = node.get(tok)
            if nxt is None:
                nxt = node[tok] = {}
                nodes += 1
            node = nxt
    return nodes


def token_counts(prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> dict[str, int]:
    trained = sum(len(c) for c in completion_ids)
    unmerged = sum(len(p) + len(c) for p, c in zip(prompt_ids, completion_ids, strict=True))
    distinct_prompts = {tuple(p) for p in prompt_ids}
    return {
        "tokens_trained": trained,
        "tokens_computed_unmerged": unmerged,
        "tokens_computed_prompt_merged": sum(len(p) for p in distinct_prompts) + trained,
        "tokens_computed_trie": trie_size([p + c for p, c in zip(prompt_ids, completion_ids, strict=True)]),
    }
