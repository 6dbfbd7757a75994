"""Per-token log-probabilities and entropies of given completions under a model, in one batched pass.

Layout: prompts left-padded to a common width P, completions right-padded to T, so that every completion
starts at column P. Only the T positions that predict completion tokens go through the vocabulary head
(`logits_to_keep`), which is most of the cost for a 49k-token vocabulary.

`temperature` gives the log-probs of the tempered policy softmax(logits / T), the distribution the sampler
drew from (`keel.llm.sampler`), so importance ratios and STAPO's probability test use the sampled policy.
"""

from __future__ import annotations

import torch


def pack(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int):
    """(input_ids, attention_mask, completion_mask, P) for left-padded prompts + right-padded completions."""
    P = max(len(p) for p in prompt_ids)
    T = max(max((len(c) for c in completion_ids), default=0), 1)
    B = len(prompt_ids)
    ids = torch.full((B, P + T), pad_id, dtype=torch.long)
    attn = torch.zeros((B, P + T), dtype=torch.long)
    cmask = torch.zeros((B, T), dtype=torch.float32)
    for i, (p, c) in enumerate(zip(prompt_ids, completion_ids, strict=True)):
        ids[i, P - len(p) : P] = torch.tensor(p, dtype=torch.long)
        attn[i, P - len(p) : P] = 1
        if c:
            ids[i, P : P + len(c)] = torch.tensor(c, dtype=torch.long)
            attn[i, P : P + len(c)] = 1
            cmask[i, : len(c)] = 1
    return ids, attn, cmask, P


def completion_logprobs(
    model,
    prompt_ids: list[list[int]],
    completion_ids: list[list[int]],
    pad_id: int,
    with_entropy: bool = True,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(logp [B,T], entropy [B,T] or None, mask [B,T]) of each completion token given its prompt.

    Gradients flow through logp when grad is enabled; entropy is always detached (it is only logged and
    used for STAPO's threshold).
    """
    from keel.llm.sampler import model_device

    ids, attn, cmask, P = pack(prompt_ids, completion_ids, pad_id)
    T = cmask.shape[1]
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    dev = model_device(model)
    out = model(input_ids=ids.to(dev), attention_mask=attn.to(dev), position_ids=pos.to(dev), use_cache=False,
                logits_to_keep=T + 1)
    logits = out.logits[:, :-1, :]  # positions P-1 .. P+T-2 predict completion tokens 0 .. T-1
    return _to_cpu(token_stats(logits, ids[:, P:].to(dev), cmask.to(dev), with_entropy, temperature))


def _to_cpu(stats):
    """The [B,T] results on the CPU, where the losses are taken (autograd follows the move)."""
    return tuple(None if x is None else x.cpu() for x in stats)


def token_stats(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, with_entropy: bool,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Masked log-prob of each target token and (detached) entropy of each predictive distribution,
    under softmax(logits / temperature) (temperature <= 0, greedy, means the untempered logits)."""
    logits = logits.float()
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, targets[..., None]).squeeze(-1) * mask
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1) * mask
    return logp, entropy, mask


def shared_prefix_logprobs(
    model,
    prompt_ids: list[list[int]],
    completion_ids: list[list[int]],
    pad_id: int,
    with_entropy: bool = True,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Same result as `completion_logprobs`, but each distinct prompt goes through the model once.

    A GRPO group is `group_size` completions of one prompt, and the prompt is usually most of the tokens.
    We run the distinct prompts once (with gradients), repeat their KV cache to the rows that continue
    them, then run only the completion tokens on top. Autograd sums the rows' gradients into the shared
    prompt pass, so the gradient is the same as the full pass's, at a fraction of the work.
    """
    from keel.llm.sampler import _cache_kw, left_pad, model_device

    kw = _cache_kw(model)
    dev = model_device(model)
    uniq: dict[tuple[int, ...], int] = {}
    src = torch.tensor([uniq.setdefault(tuple(p), len(uniq)) for p in prompt_ids], dtype=torch.long)
    pids, pmask = left_pad([list(k) for k in uniq], pad_id)
    pids, pmask, src = pids.to(dev), pmask.to(dev), src.to(dev)
    ppos = (pmask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=pids, attention_mask=pmask, position_ids=ppos, use_cache=True, logits_to_keep=1)
    cache = getattr(out, "cache", None)
    if cache is None:
        cache = out.past_key_values
    cache.reorder_cache(src)  # index_select: differentiable, so gradients flow back to the prompt pass
    first = out.logits[src, -1:, :]  # the prompt's last position predicts completion token 0

    B, T = len(completion_ids), max(max((len(c) for c in completion_ids), default=0), 1)
    cids = torch.full((B, T), pad_id, dtype=torch.long)
    cmask = torch.zeros((B, T), dtype=torch.long)
    for i, c in enumerate(completion_ids):
        if c:
            cids[i, : len(c)] = torch.tensor(c, dtype=torch.long)
            cmask[i, : len(c)] = 1
    cids, cmask = cids.to(dev), cmask.to(dev)
    attn = torch.cat([pmask[src], cmask], dim=1)
    pos = pmask.sum(-1)[src][:, None] + torch.arange(T, device=dev)[None, :]
    fmask = cmask.float()
    stats = token_stats(first, cids[:, :1], fmask[:, :1], with_entropy, temperature)
    if T > 1:  # tokens 0..T-2 predict tokens 1..T-1
        out2 = model(input_ids=cids[:, :-1], attention_mask=attn[:, :-1], position_ids=pos[:, :-1],
                     use_cache=True, **{kw: cache})
        # the stats of each part joined, not the logits: those are [B, T, vocab], and copying them (and their
        # gradient, back) cost ~10 ms of a ~55 ms GRPO update of the tiny model
        rest = token_stats(out2.logits, cids[:, 1:], fmask[:, 1:], with_entropy, temperature)
        stats = tuple(None if a is None else torch.cat([a, b], dim=1) for a, b in zip(stats, rest, strict=True))
    return _to_cpu(stats)
