"""Phase-aware mixture of LoRA experts (PA-MoE; Yang et al. 2026, arXiv 2602.17038).

One frozen base model carries E LoRA experts on its projection layers and a light phase router. A
trajectory is cut into segments, one per model turn; the router reads the observation that opens a
segment and sends the whole segment to ONE expert (top-1, never token by token), so an expert sees
temporally consistent stretches (a look-up turn, an acting turn, a confirming turn) and keeps what it
learns there. The router is trained by the RL objective itself, as in the paper, plus a load-balancing
term; no phase labels are given.

Segments, in the token layout of `keel.llm.conversation.Trajectory` (prompt, then model tokens with mask 1
and env/template tokens with mask 0):
  segment 0      = the prompt and the first turn's tokens;
  segment k >= 1 = the last token of turn k-1 (fed to the model together with the env message, see
                   `keel.llm.multiturn`), the env message (a maximal run of mask-0 tokens: the opener), and
                   turn k's tokens up to its last one.
So every token the model samples in turn k is predicted at a position that expert e_k processed. The
router's input is the mean of the frozen input embeddings of the opener's last `feature_tokens` tokens,
whitened by the vocabulary's embedding statistics and layer-normalised: what the agent has just been told.
The router starts at random or (`router_init: kmeans`) at the k-means centroids of the segments of some
expert demonstrations (latent phases found without labels; the authors' code too loads a pre-trained
router), and RL refines it.

Routing is deterministic (argmax), so sampling and training compute the same function and the stored
behaviour log-probs stay exact. The chosen expert's LoRA output is multiplied by p_e / stop_grad(p_e):
its value is 1 (the expert acts at full strength, like a single LoRA), its gradient is d log p_e, so the
policy loss tells the router whether to trust that expert more or less on such observations. Load balance
is Switch Transformer's auxiliary loss (Fedus et al. 2022): E * sum_e f_e * P_e over the segments of a
batch, f_e the share routed to e and P_e the mean router probability; it is 1 at uniform usage, E at
collapse.

`PhaseMoEPolicy` wraps a Hugging Face causal LM and speaks its forward, so the multi-turn sampler and the
GRPO update use it unchanged: while sampling, the expert of each row rides along in the KV cache
(`RoutedCache`, reordered with it); in the update, `planned(...)` gives the full-sequence segment plan.
With `experts=1` it is a plain single LoRA (no router): the same-size baseline.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from transformers import DynamicCache

from keel.config import KeelModel
from keel.errors import KeelError
from keel.llm.lora import LLAMA_TARGETS


class PhaseMoEConfig(KeelModel):
    experts: int = Field(3, ge=1)  # E; 1 = a single LoRA (the baseline), no router
    rank: int = Field(4, ge=1)  # per expert; a same-size single LoRA has rank experts * rank
    alpha_per_rank: float = 2.0  # LoRA scale alpha / r (keel.llm.lora uses alpha = 2r)
    targets: list[str] = Field(default_factory=lambda: list(LLAMA_TARGETS))
    balance_coef: float = Field(0.01, ge=0)  # weight of the load-balancing loss
    router_lr: float | None = Field(None, gt=0)  # the router's own learning rate (None: the trainer's)
    feature_tokens: int = Field(64, ge=1)  # the opener's last N tokens feed the router
    router_init_std: float = Field(0.02, gt=0)
    router_init: Literal["random", "kmeans"] = "random"  # kmeans: centroids of demo segments (no labels)
    router_init_demos: int = Field(64, ge=1)  # expert demonstrations whose segments k-means clusters


# --- segments ------------------------------------------------------------------------------------------
@dataclass
class Segments:
    """One sequence's plan: the segment of every token, and each segment's opener (token positions)."""

    of_token: list[int]
    openers: list[list[int]]


def segments(prompt_len: int, mask: list[int], feature_tokens: int) -> Segments:
    """The segments of a sequence of `prompt_len` prompt tokens followed by tokens with `mask` (1: the
    model sampled it, 0: env/template). See the module docstring for the rule."""
    n = prompt_len + len(mask)
    of_token = [0] * n
    openers = [list(range(max(0, prompt_len - feature_tokens), prompt_len))]
    seg, j = 0, 0
    while j < len(mask):
        if mask[j] == 0 and j > 0 and mask[j - 1] == 1:  # an env message opens the next segment
            end = j
            while end < len(mask) and mask[end] == 0:
                end += 1
            seg += 1
            run = list(range(prompt_len + j, prompt_len + end))
            openers.append(run[-feature_tokens:])
            of_token[prompt_len + j - 1] = seg  # the turn's last token is fed with the env message
            for p in run:
                of_token[p] = seg
            j = end
            continue
        of_token[prompt_len + j] = seg
        j += 1
    return Segments(of_token, openers)


def balance_loss(probs: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
    """Switch Transformer load balance, E * sum_e f_e * P_e, over S routed segments (probs [S, E]).
    f (the hard share) carries no gradient; P does, pushing probability away from crowded experts."""
    E = probs.shape[1]
    f = F.one_hot(choice, E).float().mean(0)
    return E * (f * probs.mean(0)).sum()


# --- the layers ----------------------------------------------------------------------------------------
class Routing:
    """What every expert layer of one policy reads during a forward pass: for each expert, the flat
    token rows it serves, and a gate per token (None while sampling: all ones)."""

    def __init__(self):
        self.groups: list[tuple[int, torch.Tensor]] = []
        self.gate: torch.Tensor | None = None

    def set(self, experts: torch.Tensor, gate: torch.Tensor | None) -> None:
        flat = experts.reshape(-1)
        self.groups = [(e, (flat == e).nonzero().squeeze(1)) for e in flat.unique().tolist() if e >= 0]
        self.gate = None if gate is None else gate.reshape(-1)


class MoELoRALinear(torch.nn.Module):
    """A frozen linear layer plus E low-rank experts: y = W x + s * g * B_e A_e x, e the token's expert."""

    def __init__(self, base: torch.nn.Linear, experts: int, rank: int, scale: float, routing: Routing,
                 gen: torch.Generator):
        super().__init__()
        self.base, self.scale, self.routing = base, scale, routing
        dev, dt = base.weight.device, base.weight.dtype
        a = torch.empty(experts, rank, base.in_features, dtype=dt)
        bound = 1.0 / math.sqrt(base.in_features)  # peft's kaiming-uniform(a=sqrt 5) bound for A
        a.uniform_(-bound, bound, generator=gen)
        self.lora_A = torch.nn.Parameter(a.to(dev))
        self.lora_B = torch.nn.Parameter(torch.zeros(experts, base.out_features, rank, dtype=dt, device=dev))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if not self.routing.groups:
            return y
        shape = y.shape
        xf, yf = x.reshape(-1, x.shape[-1]), y.reshape(-1, shape[-1])
        gate = self.routing.gate
        for e, rows in self.routing.groups:
            d = (xf.index_select(0, rows) @ self.lora_A[e].T) @ self.lora_B[e].T * self.scale
            if gate is not None:
                d = d * gate.index_select(0, rows)[:, None].to(d.dtype)
            yf = yf.index_add(0, rows, d)
        return yf.reshape(shape)


class PhaseRouter(torch.nn.Module):
    """Segment features -> expert probabilities: one linear map on the layer-normalised mean embedding."""

    def __init__(self, dim: int, experts: int, std: float, gen: torch.Generator):
        super().__init__()
        w = torch.empty(experts, dim).normal_(0.0, std, generator=gen)
        self.proj = torch.nn.Linear(dim, experts)
        with torch.no_grad():
            self.proj.weight.copy_(w)
            self.proj.bias.zero_()

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.proj(F.layer_norm(feats, feats.shape[-1:])).float(), dim=-1)

    @torch.no_grad()
    def set_centroids(self, centroids: torch.Tensor, scale: float) -> None:
        """Route to the nearest of these centroids (in layer-normed feature space): argmin ||z - c_e||^2 =
        argmax 2 c_e.z - ||c_e||^2, a linear map; `scale` sets how peaked the probabilities are."""
        self.proj.weight.copy_(2 * scale * centroids)
        self.proj.bias.copy_(-scale * (centroids * centroids).sum(-1))


class RoutedCache(DynamicCache):
    """A KV cache that also remembers each row's current expert, reordered with the rows."""

    experts: torch.Tensor | None = None

    def reorder_cache(self, beam_idx: torch.LongTensor):
        super().reorder_cache(beam_idx)
        if self.experts is not None:
            self.experts = self.experts[beam_idx.to(self.experts.device)]


@dataclass
class PlanRow:
    """One sequence of a training forward pass: its prompt, the tokens after it, and their 0/1 mask."""

    prompt_ids: list[int]
    completion_ids: list[int]
    mask: list[int]


# --- the policy ----------------------------------------------------------------------------------------
class PhaseMoEPolicy(torch.nn.Module):
    """A causal LM with phase-routed LoRA experts; called exactly like the LM it wraps."""

    def __init__(self, lm, cfg: PhaseMoEConfig, seed: int = 0):
        super().__init__()
        import inspect

        self.lm, self.cfg = lm, cfg
        lm.requires_grad_(False)
        self.routing = Routing()
        gen = torch.Generator().manual_seed(seed)
        n = 0
        for mod in list(lm.modules()):
            for child, sub in list(mod.named_children()):
                if child in cfg.targets and isinstance(sub, torch.nn.Linear):
                    setattr(mod, child, MoELoRALinear(sub, cfg.experts, cfg.rank, cfg.alpha_per_rank,
                                                      self.routing, gen))
                    n += 1
        if n == 0:
            raise KeelError(f"PA-MoE found none of the target layers {cfg.targets} in the model; "
                            "set moe.targets to its projection names")
        dim = lm.get_input_embeddings().weight.shape[1]
        self.router = PhaseRouter(dim, cfg.experts, cfg.router_init_std, gen) if cfg.experts > 1 else None
        if self.router is not None:
            self.router.to(lm.get_input_embeddings().weight.device)
        w = lm.get_input_embeddings().weight.detach().float()
        # features are whitened by the vocabulary's embedding statistics (fixed): the raw mean embedding of
        # any text points mostly one way, which makes every segment look alike to the router
        self.register_buffer("emb_mean", w.mean(0), persistent=False)
        self.register_buffer("emb_std", w.std(0).clamp(min=1e-6), persistent=False)
        params = inspect.signature(lm.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._plan: list[PlanRow] | None = None
        self.last_routing: tuple[torch.Tensor, torch.Tensor] | None = None  # (probs [S,E], choice [S])

    # what the sampler and the trainers read off a Hugging Face model
    @property
    def config(self):
        return self.lm.config

    @property
    def generation_config(self):
        return self.lm.generation_config

    def get_input_embeddings(self):
        return self.lm.get_input_embeddings()

    # --- parameter budget ---
    def lora_parameters(self) -> int:
        return sum(p.numel() for n, p in self.named_parameters() if "lora_" in n)

    def router_parameters(self) -> int:
        return 0 if self.router is None else sum(p.numel() for p in self.router.parameters())

    # --- routing ---
    @torch.no_grad()
    def features(self, openers: list[list[int]]) -> torch.Tensor:
        """[S, d] router inputs: each opener's mean input embedding, whitened per dimension."""
        emb = self.lm.get_input_embeddings()
        dev = emb.weight.device
        feats = torch.stack([emb(torch.tensor(o or [0], device=dev)).float().mean(0) for o in openers])
        return (feats - self.emb_mean) / self.emb_std

    def route(self, openers: list[list[int]]) -> torch.Tensor:
        """Expert probabilities [S, E] of segments whose openers are these token lists."""
        if self.router is None:
            return torch.ones(len(openers), 1, device=self.emb_mean.device)
        return self.router(self.features(openers))

    def init_router_kmeans(self, sequences: list[tuple[list[int], list[int], list[int]]], seed: int = 0) -> dict:
        """Start the router at k-means (E clusters) of the segments of these (prompt, ids, mask) sequences
        (e.g. expert demonstrations): latent phases found without labels, which RL then refines. The
        reference implementation also starts from a pre-trained router checkpoint."""
        from sklearn.cluster import KMeans

        if self.router is None:
            return {}
        openers = []
        for prompt, ids, mask in sequences:
            full = list(prompt) + list(ids)
            openers += [[full[p] for p in o] for o in segments(len(prompt), mask, self.cfg.feature_tokens).openers]
        if len(openers) < self.cfg.experts:
            raise KeelError(f"k-means router init needs at least {self.cfg.experts} segments, got {len(openers)}")
        z = F.layer_norm(self.features(openers), (self.emb_mean.shape[0],)).cpu().numpy()
        km = KMeans(self.cfg.experts, n_init=4, random_state=seed).fit(z)
        c = torch.tensor(km.cluster_centers_, dtype=torch.float32, device=self.emb_mean.device)
        self.router.set_centroids(c, scale=8.0 / z.shape[1])
        return {"segments": len(openers), "cluster_sizes": [int((km.labels_ == e).sum()) for e in range(len(c))]}

    def trajectory_experts(self, prompt_ids: list[int], ids: list[int], mask: list[int]) -> list[int]:
        """The expert of each segment (= each model turn) of a finished trajectory."""
        seg = segments(len(prompt_ids), mask, self.cfg.feature_tokens)
        full = list(prompt_ids) + list(ids)
        with torch.no_grad():
            probs = self.route([[full[p] for p in o] for o in seg.openers])
        return probs.argmax(-1).tolist()

    @contextlib.contextmanager
    def planned(self, rows: list[PlanRow]):
        """Forward passes inside see these full sequences (one row each, any padding) and route by them."""
        self._plan = rows
        try:
            yield self
        finally:
            self._plan = None
            self.routing.set(torch.zeros(0, dtype=torch.long), None)

    def _gates(self, probs: torch.Tensor, choice: torch.Tensor) -> torch.Tensor | None:
        """Per segment p_e / stop_grad(p_e) for the chosen e: value 1, gradient d log p_e (None: no router)."""
        if self.router is None:
            return None
        g = probs.gather(1, choice[:, None]).squeeze(1)
        return g / g.detach()

    def _route_rows(self, input_ids: torch.Tensor, am: torch.Tensor, skip: int) -> torch.Tensor:
        """Each row opens a segment: route it by its own real tokens (after the first `skip`); its expert."""
        openers = [input_ids[i][am[i].bool()].tolist()[skip:][-self.cfg.feature_tokens:]
                   for i in range(input_ids.shape[0])]
        probs = self.route(openers)
        choice = probs.argmax(-1)
        gates = self._gates(probs, choice)
        W = input_ids.shape[1]
        self.routing.set(choice.to(input_ids.device)[:, None].expand(-1, W),
                         None if gates is None or not torch.is_grad_enabled() else gates[:, None].expand(-1, W))
        return choice

    def _route_planned(self, input_ids: torch.Tensor, am: torch.Tensor, tail: bool) -> None:
        """Route a training pass by the plan: whole sequences (`tail=False`, any padding), or only the tokens
        after each prompt (`tail=True`, the second pass of `keel.llm.logprobs.shared_prefix_logprobs`)."""
        plan = self._plan
        if len(plan) != input_ids.shape[0]:
            raise KeelError(f"PA-MoE training pass: {input_ids.shape[0]} rows for a plan of {len(plan)}")
        openers, where = [], []
        for i, row in enumerate(plan):
            full = list(row.prompt_ids) + list(row.completion_ids)
            pos = am[i].nonzero().squeeze(1).cpu()
            first_tok = len(row.prompt_ids) if tail else 0
            if len(pos) > len(full) - first_tok or (not tail and len(pos) != len(full)):
                raise KeelError("PA-MoE training pass: the batch does not hold the planned sequences")
            seg = segments(len(row.prompt_ids), list(row.mask[: len(row.completion_ids)]),
                           self.cfg.feature_tokens)
            base = len(openers)
            openers += [[full[p] for p in o] for o in seg.openers]
            idx = torch.tensor(seg.of_token[first_tok : first_tok + len(pos)], dtype=torch.long) + base
            where.append((i, pos, idx))
        probs = self.route(openers)
        choice = probs.argmax(-1)
        gates = self._gates(probs, choice)
        experts = torch.full(input_ids.shape, -1, dtype=torch.long)
        gate = torch.ones(input_ids.shape, device=probs.device)
        for i, pos, idx in where:
            experts[i, pos] = choice.cpu()[idx]
            if gates is not None:
                gate = gate.index_put((torch.full_like(pos, i), pos), gates[idx.to(probs.device)])
        self.routing.set(experts.to(input_ids.device), gate if gates is not None else None)
        self.last_routing = (probs, choice)

    def _route_sampling(self, input_ids: torch.Tensor, am: torch.Tensor, cache) -> RoutedCache:
        if cache is None or input_ids.shape[1] > 1:  # a prompt or an env message: each row opens a segment
            with torch.no_grad():
                rows = self._route_rows(input_ids, am, skip=0 if cache is None else 1)  # 1: the turn's last token
            if cache is None:
                cache = RoutedCache()
            elif not isinstance(cache, RoutedCache):
                raise KeelError("PA-MoE sampling needs the cache it returned (RoutedCache)")
            cache.experts = rows.to(input_ids.device)
            return cache
        if not isinstance(cache, RoutedCache) or cache.experts is None:
            raise KeelError("PA-MoE sampling needs the cache it returned (RoutedCache)")
        self.routing.set(cache.experts[:, None], None)
        return cache

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, past_key_values=None,
                **kw):
        if input_ids is None:
            raise KeelError("PA-MoE routes by token ids: call it with input_ids")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        am = attention_mask[:, -input_ids.shape[1]:]  # the mask of the tokens fed now
        past = cache if cache is not None else past_key_values
        use_cache = kw.get("use_cache", True)
        if self._plan is not None:  # a training pass: keel.llm.logprobs, full or shared-prefix layout
            if past is None and use_cache:  # the shared-prefix prompt pass: distinct prompts, segment 0
                self._route_rows(input_ids, am, skip=0)
            else:
                self._route_planned(input_ids, am, tail=past is not None)
        elif use_cache or past is not None:
            past = self._route_sampling(input_ids, am, past)
            kw["use_cache"] = True
        else:
            raise KeelError("PA-MoE outside training needs a KV cache to carry each row's expert (use_cache)")
        if past is not None:
            kw[self._cache_kw] = past
        return self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kw)

    # --- saving ---
    def adapter_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.state_dict().items() if "lora_" in k or k.startswith("router.")}

    def load_adapter_state(self, state: dict[str, torch.Tensor]) -> None:
        missing = self.load_state_dict(state, strict=False)
        want = set(self.adapter_state())
        if missing.unexpected_keys or want - set(state):
            raise KeelError(f"PA-MoE weights do not fit this policy (unexpected {missing.unexpected_keys[:3]}, "
                            f"missing {sorted(want - set(state))[:3]}); same experts, rank and targets?")
